/**
 * Buildkite job logs → text lines (buildkite spec §7.4–7.5). The raw log arrives in byte chunks
 * that may end anywhere: inside a UTF-8 sequence, an escape or a line. `LogLineSplitter` keeps
 * that carry and yields only whole lines, each with the time of its first `ESC _bk;t=<ms> BEL`
 * marker, stripped of escapes (string escapes, CSI, charset designations, two-byte), with CRLF normalised and bare CR
 * treated as a terminal overwrite (the text after the last one wins).
 */

// biome-ignore-all lint/suspicious/noControlCharactersInRegex: terminal escapes are what these patterns match
const TIMESTAMP = /\x1b_bk;t=(\d+)(?:\x07|\x1b\\)/g;
const STRING_ESCAPE = /\x1b[\]PX^_][^\x07\x1b]*(?:\x07|\x1b\\)/g;
const CSI = /\x1b\[[0-?]*[ -/]*[@-~]/g;
const NF_ESCAPE = /\x1b[ -/]+[0-~]/g;
const TWO_BYTE = /\x1b[@-Z\\-_]/g;

export interface ParsedLine {
  text: string;
  /** Unix ms of the line's first timestamp marker, if it had one. */
  timeMs?: number;
}

/** One line of raw log text (no trailing newline) → its plain text and time. */
export function parseLine(raw: string): ParsedLine {
  let timeMs: number | undefined;
  let text = raw.replace(TIMESTAMP, (_m, ms: string) => {
    timeMs ??= Number(ms);
    return '';
  });
  text = text.replace(STRING_ESCAPE, '').replace(CSI, '').replace(NF_ESCAPE, '').replace(TWO_BYTE, '');
  text = text.replace(/\r+$/, '');
  const cr = text.lastIndexOf('\r');
  if (cr >= 0) text = text.slice(cr + 1);
  return timeMs === undefined ? { text } : { text, timeMs };
}

export class LogLineSplitter {
  private readonly decoder = new TextDecoder('utf-8');
  private carry = '';

  /** The whole lines completed by `chunk`. */
  push(chunk: Uint8Array): ParsedLine[] {
    this.carry += this.decoder.decode(chunk, { stream: true });
    const end = this.carry.lastIndexOf('\n');
    if (end < 0) return [];
    const whole = this.carry.slice(0, end);
    this.carry = this.carry.slice(end + 1);
    return whole.split('\n').map(parseLine);
  }

  /** The last, unterminated line (once the log is complete). */
  flush(): ParsedLine[] {
    const rest = this.carry + this.decoder.decode();
    this.carry = '';
    return rest.length > 0 ? [parseLine(rest)] : [];
  }
}
