/** Human output of the CLI. Logs go through pino; this is for what a person reads. */
export interface Output {
  out: (line: string) => void;
  err: (line: string) => void;
}

export const stdio: Output = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
};

/** Left-aligned columns with a header row. */
export function table(
  header: readonly string[],
  rows: ReadonlyArray<readonly (string | number)[]>,
): string[] {
  const cells = [header, ...rows].map((r) => r.map(String));
  const widths = header.map((_, i) => Math.max(...cells.map((r) => r[i]!.length)));
  return cells.map((r) =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd(),
  );
}
