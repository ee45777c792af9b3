/** LogLine JSON exactly as a stock spindle writes it (spindle protocol §9.2). */
import type { LogLine } from '../../providers/runner.ts';

/**
 * One frame's text, keys in stock's order (`kind, content, time, step_id, stream, step_status,
 * step_kind, step_command`), empty optional keys omitted; `step_kind` is omitted when 0.
 */
export function encodeLogLine(line: LogLine): string {
  const out: Record<string, unknown> = {
    kind: line.kind === 'control' ? 'control' : 'data',
    content:
      typeof line.content === 'string' ? line.content.replace(/[\r\n]+$/, '') : String(line.content ?? ''),
    time: validTime(line.time),
    step_id: Number.isInteger(line.step_id) ? line.step_id : 0,
  };
  if (out.kind === 'data') {
    if (line.stream === 'stdout' || line.stream === 'stderr') out.stream = line.stream;
  } else {
    if (line.step_status === 'start' || line.step_status === 'end') out.step_status = line.step_status;
    if (line.step_kind === 1) out.step_kind = 1;
    if (line.step_command) out.step_command = line.step_command;
  }
  return JSON.stringify(out);
}

function validTime(time: unknown): string {
  if (typeof time === 'string' && !Number.isNaN(Date.parse(time))) return time;
  return new Date().toISOString();
}

/**
 * What /logs sends for a workflow that failed before producing any output: a control `start`
 * line (so the appview opens a block the browser shows, spindle protocol §16.9), the error as
 * a data line, and the matching `end`.
 */
export function errorOnlyLog(error: string, time: string): string[] {
  const control = { content: 'Error', time, step_id: 0, step_kind: 1 as const };
  return [
    encodeLogLine({ kind: 'control', ...control, step_status: 'start' }),
    encodeLogLine({ kind: 'data', content: error, time, step_id: 0, stream: 'stderr' }),
    encodeLogLine({ kind: 'control', ...control, step_status: 'end' }),
  ];
}
