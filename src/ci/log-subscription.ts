/**
 * `sh.tangled.ci.subscribePipelineLogs` (2026 spec §3.8): a WebSocket in atproto event-stream
 * framing, each message one binary frame of a CBOR header (`{op: 1, t: "#control" | "#data"}`)
 * followed by a CBOR body. The pipeline's workflows (or the ones named by `workflows`) are
 * followed concurrently: stored lines replay, new ones tail live, and the stream closes 1000
 * once every selected workflow is finished. Problems are error frames (`{op: -1}` and
 * `{error, message}`: `InvalidRequest`, `PipelineNotFound`, `WorkflowNotFound`), then a close.
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

export function errorFrame(error: string, message: string): Uint8Array {
  return concat(cborEncode({ op: -1 }), cborEncode({ error, message }));
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
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      ws.on('error', (err) => this.d.log.debug({ err: err.message }, 'subscribePipelineLogs client error'));
      this.serve(ws, new URL(req.url ?? '/', 'http://localhost').searchParams).catch((err: unknown) => {
        this.d.log.warn({ err }, 'subscribePipelineLogs failed; closing');
        ws.terminate();
      });
    });
  }

  async close(): Promise<void> {
    for (const ws of this.wss.clients) ws.close(1001, 'server shutting down');
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }

  private async serve(ws: WebSocket, params: URLSearchParams): Promise<void> {
    const fail = async (error: string, message: string) => {
      await sendAll(ws, [errorFrame(error, message)]);
      ws.close(1008, error);
    };
    const tid = params.get('pipeline');
    if (!tid || !TID.test(tid)) return fail('InvalidRequest', 'pipeline: expected a TID');
    const pipeline = this.d.store.pipelineByTid(tid);
    if (!pipeline) return fail('PipelineNotFound', `no pipeline ${tid}`);
    const all = this.d.store.workflowsOf(pipeline.knot, pipeline.rkey).map((w) => w.name);
    const wanted = params.getAll('workflows');
    const unknown = wanted.find((w) => !all.includes(w));
    if (unknown !== undefined)
      return fail('WorkflowNotFound', `pipeline ${tid} has no workflow ${JSON.stringify(unknown)}`);
    const names = wanted.length > 0 ? [...new Set(wanted)] : all;
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
