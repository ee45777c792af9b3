/**
 * Replaces a repository's secret values in log text with `***` (2026 spec §2, 2025-12-21):
 * each value, and its base64 forms (standard and URL-safe, padded or not) for values of 4 bytes
 * or more, longest first so a value containing another is masked whole. Values shorter than 4
 * bytes are masked as they are, but not in base64 (their encodings are too short to be told
 * from ordinary text).
 */
const MIN_BASE64 = 4;

export class Masker {
  private readonly pattern: RegExp | undefined;

  constructor(values: Iterable<string>) {
    const needles = new Set<string>();
    for (const v of values) {
      if (v.length === 0) continue;
      needles.add(v);
      if (Buffer.byteLength(v) >= MIN_BASE64) {
        const b64 = Buffer.from(v, 'utf8').toString('base64');
        needles.add(b64);
        needles.add(b64.replace(/=+$/, ''));
        needles.add(Buffer.from(v, 'utf8').toString('base64url'));
      }
    }
    const sorted = [...needles].sort((a, b) => b.length - a.length);
    this.pattern =
      sorted.length > 0
        ? new RegExp(sorted.map((n) => n.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|'), 'g')
        : undefined;
  }

  get empty(): boolean {
    return this.pattern === undefined;
  }

  mask(text: string): string {
    return this.pattern ? text.replace(this.pattern, '***') : text;
  }
}
