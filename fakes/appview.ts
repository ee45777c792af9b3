/**
 * An appview-like consumer of a spindle, decoding exactly as spindle protocol §8.2 and §9.3
 * describe: `/events` frames become `pipeline_statuses` rows (insert-or-ignore on rkey,
 * `created` = min(now, createdAt) at second precision), a frame that does not decode would
 * kill a worker (counted, so tests can assert it never happens), the cursor is the frame's
 * `created` when present (current appview) or the wall clock at pickup (older appview).
 * `/logs` lines are rendered into steps the way the browser fragments are.
 */
import { WebSocket } from 'ws';

export interface StatusRow {
  id: number;
  rkey: string;
  pipelineKnot: string;
  pipelineRkey: string;
  workflow: string;
  status: string;
  error: string | null;
  /** As the appview stores it: a missing exitCode becomes 0. */
  exitCode: number;
  /** The record's exitCode as sent, or undefined when it had none. */
  wireExitCode: unknown;
  /** Unix seconds. */
  created: number;
}

export class AppviewEvents {
  /** Every text frame received, in order. */
  readonly frames: string[] = [];
  readonly statuses = new Map<string, StatusRow>();
  /** Pipelines announced on the stream (rkey → record). */
  readonly pipelines = new Map<string, unknown>();
  /** Frames that would have killed an appview worker. */
  fatal = 0;
  binaryFrames = 0;
  cursor: bigint;
  private ws: WebSocket | undefined;
  private nextId = 1;
  private readonly mode: 'created' | 'wallclock';

  constructor(options: { cursor?: bigint; mode?: 'created' | 'wallclock' } = {}) {
    this.cursor = options.cursor ?? 0n;
    this.mode = options.mode ?? 'created';
  }

  /** Connects to `<base>/events`, with `?cursor=` only when the stored cursor is non-zero. */
  async connect(base: string): Promise<void> {
    const url = `${base.replace(/^http/, 'ws')}/events${this.cursor !== 0n ? `?cursor=${this.cursor}` : ''}`;
    const ws = new WebSocket(url);
    this.ws = ws;
    ws.on('message', (data, isBinary) => {
      if (isBinary) {
        this.binaryFrames++;
        return;
      }
      this.onFrame(data.toString());
    });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
  }

  close(): Promise<void> {
    const ws = this.ws;
    if (!ws || ws.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => {
      ws.once('close', () => resolve());
      ws.close();
    });
  }

  /** The UI's latest status per workflow of a pipeline: sorted by created seconds, then insert id. */
  latest(pipelineRkey: string): Record<string, StatusRow> {
    const out: Record<string, StatusRow> = {};
    const rows = [...this.statuses.values()]
      .filter((r) => r.pipelineRkey === pipelineRkey)
      .sort((a, b) => a.created - b.created || a.id - b.id);
    for (const r of rows) out[r.workflow] = r;
    return out;
  }

  /** Statuses of one workflow in the order the UI would list them. */
  history(pipelineRkey: string, workflow: string): string[] {
    return [...this.statuses.values()]
      .filter((r) => r.pipelineRkey === pipelineRkey && r.workflow === workflow)
      .sort((a, b) => a.created - b.created || a.id - b.id)
      .map((r) => r.status);
  }

  private onFrame(text: string): void {
    this.frames.push(text);
    let f: unknown;
    try {
      f = JSON.parse(text, (key, v, ctx?: { source?: string }) =>
        key === 'created' && typeof v === 'number' && ctx?.source ? BigInt(ctx.source) : v,
      );
    } catch {
      this.fatal++;
      return;
    }
    if (typeof f !== 'object' || f === null || Array.isArray(f)) {
      this.fatal++;
      return;
    }
    const frame = f as { rkey?: unknown; nsid?: unknown; event?: unknown; created?: unknown };
    if (typeof frame.rkey !== 'string' || typeof frame.nsid !== 'string') {
      this.fatal++;
      return;
    }
    this.cursor =
      this.mode === 'created' && typeof frame.created === 'bigint'
        ? frame.created
        : BigInt(Date.now()) * 1_000_000n;
    if (frame.nsid === 'sh.tangled.pipeline') {
      this.pipelines.set(frame.rkey, frame.event);
      return;
    }
    if (frame.nsid !== 'sh.tangled.pipeline.status') return;
    const e = frame.event as Record<string, unknown>;
    if (this.statuses.has(frame.rkey)) return;
    const uri = /^at:\/\/([^/]+)\/sh\.tangled\.pipeline\/([^/]+)$/.exec(String(e.pipeline));
    if (!uri) return;
    const createdAt = Date.parse(String(e.createdAt));
    this.statuses.set(frame.rkey, {
      id: this.nextId++,
      rkey: frame.rkey,
      pipelineKnot: uri[1]!.replace(/^did:web:/, ''),
      pipelineRkey: uri[2]!,
      workflow: String(e.workflow),
      status: String(e.status),
      error: typeof e.error === 'string' ? e.error : null,
      exitCode: typeof e.exitCode === 'number' ? e.exitCode : 0,
      wireExitCode: e.exitCode,
      created: Math.floor(Math.min(Date.now(), createdAt) / 1000),
    });
  }
}

export interface RenderedStep {
  id: number;
  title: string;
  command?: string;
  collapsed: boolean;
  ended: boolean;
  body: string[];
}

export interface LogsResult {
  /** HTTP status when the upgrade was refused. */
  refused?: number;
  /** Each frame decoded as a LogLine (frames that fail to decode are skipped, as the appview does). */
  lines: Array<Record<string, unknown>>;
  /** Text frames that did not decode as a LogLine (the appview drops them silently). */
  dropped: number;
  closeCode?: number;
  /** What a browser would show. */
  steps: RenderedStep[];
}

/** Reads `/logs/<knot>/<rkey>/<workflow>` until the server closes (or `timeoutMs`). */
export function readLogs(
  base: string,
  path: { knot: string; rkey: string; workflow: string },
  options: { timeoutMs?: number; onLine?: (line: Record<string, unknown>) => void } = {},
): Promise<LogsResult> {
  const url = `${base.replace(/^http/, 'ws')}/logs/${encodeURIComponent(path.knot)}/${encodeURIComponent(path.rkey)}/${encodeURIComponent(path.workflow)}`;
  const result: LogsResult = { lines: [], dropped: 0, steps: [] };
  return new Promise((resolve) => {
    const ws = new WebSocket(url);
    const timer = setTimeout(() => ws.terminate(), options.timeoutMs ?? 15_000);
    ws.on('unexpected-response', (_req, res) => {
      result.refused = res.statusCode;
      clearTimeout(timer);
      resolve(result);
    });
    ws.on('error', () => {});
    ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      let line: Record<string, unknown>;
      try {
        line = JSON.parse(data.toString());
      } catch {
        result.dropped++;
        return;
      }
      if (!validLine(line)) {
        result.dropped++;
        return;
      }
      result.lines.push(line);
      render(result.steps, line);
      options.onLine?.(line);
    });
    ws.on('close', (code) => {
      clearTimeout(timer);
      result.closeCode = code;
      resolve(result);
    });
  });
}

function validLine(l: Record<string, unknown>): boolean {
  return (
    (l.kind === 'data' || l.kind === 'control') &&
    typeof l.content === 'string' &&
    Number.isInteger(l.step_id) &&
    (l.time === undefined || (typeof l.time === 'string' && !Number.isNaN(Date.parse(l.time)))) &&
    (l.step_kind === undefined || Number.isInteger(l.step_kind))
  );
}

function render(steps: RenderedStep[], l: Record<string, unknown>): void {
  const id = l.step_id as number;
  if (l.kind === 'control') {
    if (l.step_status === 'start') {
      steps.push({
        id,
        title: l.content as string,
        command: l.step_command as string | undefined,
        collapsed: (l.step_kind ?? 0) === 0,
        ended: false,
        body: [],
      });
    } else if (l.step_status === 'end') {
      const step = steps.findLast((s) => s.id === id);
      if (step) step.ended = true;
    }
    return;
  }
  // A data line for a step with no earlier start has no element to land in: invisible.
  steps.findLast((s) => s.id === id)?.body.push(l.content as string);
}
