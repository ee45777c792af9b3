/**
 * `sh.tangled.ci.subscribePipelineLogs` (2026 spec §3.8): a WebSocket in atproto event-stream
 * framing, each message one binary frame of a CBOR header (`{op: 1, t: "#control" | "#data"}`)
 * followed by a CBOR body. The pipeline's workflows (or the ones named by `workflows`) are
 * followed concurrently: stored lines replay, new ones tail live, and the stream closes 1000
 * once every selected workflow is finished. Bad parameters are answered before the upgrade, as
 * upstream does: JSON 400 `BadRequest` (no or a malformed pipeline TID) or 404 `NotFound` (no
 * such pipeline, or a workflow it does not have).
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { cborEncode } from '@atproto/lex-cbor';
import type { LexValue } from '@atproto/lex-data';
import { type WebSocket, WebSocketServer } from 'ws';
import type { LogStore } from '../db/log-store.ts';
import type { PipelineStore } from '../db/pipeline-store.ts';
import type { Logger } from '../logger.ts';
import { followLog, sendAll } from '../logs/follow.ts';
import type { LogCollector } from '../logs/log-collector.ts';
import { TID } from './ci-api.ts';

export const SUBSCRIBE_LOGS_PATH = '/xrpc/sh.tangled.ci.subscribePipelineLogs';

interface StoredLine {
  kind: 'control' | 'data';
  content: string;
  time: string;
  step_id: number;
  stream?: string;
  step_status?: string;
  step_kind?: number;
  step_command?: string;
}

/** One message: header and body, concatenated. */
export function messageFrame(t: '#control' | '#data', body: { [key: string]: LexValue }): Uint8Array {
  return concat(cborEncode({ op: 1, t }), cborEncode(body));
}

/** A stored LogLine as a `#control` or `#data` message of `workflow`. */
export function logMessage(workflow: string, text: string): Uint8Array {
  const l = JSON.parse(text) as StoredLine;
  if (l.kind === 'control') {
    return messageFrame('#control', {
      time: l.time,
      workflow,
      step: l.step_id,
      content: l.content,
      ...(l.step_command ? { command: l.step_command } : {}),
      status: l.step_status === 'end' ? 'end' : 'start',
      kind: l.step_kind === 1 ? 'user' : 'system',
    });
  }
  return messageFrame('#data', {
    time: l.time,
    workflow,
    step: l.step_id,
    content: l.content,
    stream: l.stream === 'stderr' ? 'stderr' : 'stdout',
  });
}

function refuseJson(socket: Duplex, status: 400 | 404, body: { error: string; message: string }): void {
  const text = JSON.stringify(body);
  socket.end(
    `HTTP/1.1 ${status} ${status === 400 ? 'Bad Request' : 'Not Found'}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`,
  );
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

export class PipelineLogSubscriptions {
  private readonly wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 4096 });
  private readonly d: {
    store: PipelineStore;
    lines: LogStore;
    collector: LogCollector;
    log: Logger;
    pingIntervalMs: number;
  };

  constructor(deps: PipelineLogSubscriptions['d']) {
    this.d = deps;
  }

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const selected = this.select(new URL(req.url ?? '/', 'http://localhost').searchParams);
    if ('refused' in selected) {
      const [status, error, message] = selected.refused;
      refuseJson(socket, status, { error, message });
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      ws.on('error', (err) => this.d.log.debug({ err: err.message }, 'subscribePipelineLogs client error'));
      this.serve(ws, selected.pipeline, selected.names).catch((err: unknown) => {
        this.d.log.warn({ err }, 'subscribePipelineLogs failed; closing');
        ws.terminate();
      });
    });
  }

  /** The pipeline (by TID) and the workflows to follow (all by default), or why not. */
  private select(
    params: URLSearchParams,
  ):
    | { pipeline: { knot: string; rkey: string }; names: string[] }
    | { refused: [400 | 404, 'BadRequest' | 'NotFound', string] } {
    const tid = params.get('pipeline');
    if (!tid || !TID.test(tid)) return { refused: [400, 'BadRequest', 'pipeline: expected a TID'] };
    const pipeline = this.d.store.pipelineByTid(tid);
    if (!pipeline) return { refused: [404, 'NotFound', `no pipeline ${tid}`] };
    const all = this.d.store.workflowsOf(pipeline.knot, pipeline.rkey).map((w) => w.name);
    const wanted = params.getAll('workflows');
    const unknown = wanted.find((w) => !all.includes(w));
    if (unknown !== undefined)
      return { refused: [404, 'NotFound', `pipeline ${tid} has no workflow ${JSON.stringify(unknown)}`] };
    return { pipeline, names: wanted.length > 0 ? [...new Set(wanted)] : all };
  }

  async close(): Promise<void> {
    for (const ws of this.wss.clients) ws.close(1001, 'server shutting down');
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }

  private async serve(
    ws: WebSocket,
    pipeline: { knot: string; rkey: string },
    names: string[],
  ): Promise<void> {
    const deps = { ...this.d };
    const done = await Promise.all(
      names.map((name) =>
        followLog(deps, ws, { knot: pipeline.knot, rkey: pipeline.rkey, name }, (lines) =>
          sendAll(
            ws,
            lines.map((l) => logMessage(name, l)),
          ),
        ),
      ),
    );
    if (done.every(Boolean) && ws.readyState === ws.OPEN) ws.close(1000, 'log stream complete');
  }
}
