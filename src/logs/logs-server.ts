/**
 * `/logs/{knot}/{rkey}/{workflow}` (spindle protocol §9, with §16's fixes): every stored
 * LogLine of the workflow in write order, one text frame each, then new lines as the runner
 * produces them; a close 1000 once the workflow is terminal and its lines are drained. An
 * unknown workflow gets HTTP 404 before any upgrade; malformed paths get 400. A failure with
 * an error and no output shows the error as a step the browser renders (§16.9).
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { type WebSocket, WebSocketServer } from 'ws';
import type { LogStore } from '../db/log-store.ts';
import type { PipelineStore, WorkflowKey } from '../db/pipeline-store.ts';
import type { Logger } from '../logger.ts';
import { followLog, sendAll } from './follow.ts';
import type { LogCollector } from './log-collector.ts';

export const LOGS_PREFIX = '/logs/';
const KNOT = /^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?(?::\d{1,5})?$/;
const RKEY = /^[A-Za-z0-9._~:-]{1,512}$/;
const MAX_NAME = 255;

export interface LogsServerOptions {
  pingIntervalMs?: number;
}

/** The workflow a `/logs/...` path names, or a reason it is not a valid one. */
export function parseLogsPath(pathname: string): WorkflowKey | { invalid: string } {
  if (!pathname.startsWith(LOGS_PREFIX)) return { invalid: 'not a /logs path' };
  const parts = pathname.slice(LOGS_PREFIX.length).split('/');
  if (parts.length !== 3) return { invalid: 'expected /logs/{knot}/{rkey}/{workflow}' };
  let decoded: string[];
  try {
    decoded = parts.map((p) => decodeURIComponent(p));
  } catch {
    return { invalid: 'bad percent-encoding' };
  }
  const [knot, rkey, name] = decoded as [string, string, string];
  if (!KNOT.test(knot)) return { invalid: 'bad knot host' };
  if (!RKEY.test(rkey) || rkey === '.' || rkey === '..') return { invalid: 'bad record key' };
  if (
    name.length === 0 ||
    name.length > MAX_NAME ||
    name === '.' ||
    name === '..' ||
    /[/\\]/.test(name) ||
    [...name].some((ch) => ch.charCodeAt(0) < 0x20 || ch.charCodeAt(0) === 0x7f)
  ) {
    return { invalid: 'bad workflow name' };
  }
  return { knot, rkey, name };
}

export class LogsServer {
  private readonly wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 4096 });
  private readonly store: PipelineStore;
  private readonly lines: LogStore;
  private readonly collector: LogCollector;
  private readonly log: Logger;
  private readonly pingIntervalMs: number;

  constructor(
    deps: { store: PipelineStore; lines: LogStore; collector: LogCollector; log: Logger },
    options: LogsServerOptions = {},
  ) {
    this.store = deps.store;
    this.lines = deps.lines;
    this.collector = deps.collector;
    this.log = deps.log;
    this.pingIntervalMs = options.pingIntervalMs ?? 30_000;
  }

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    const key = parseLogsPath(path);
    if ('invalid' in key) {
      refuse(socket, 400, 'Bad Request', `${key.invalid}\n`);
      return;
    }
    if (!this.store.workflow(key)) {
      refuse(socket, 404, 'Not Found', '404 page not found\n');
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      ws.on('error', (err) => this.log.debug({ err: err.message }, '/logs client error'));
      this.stream(ws, key).catch((err: unknown) => {
        this.log.warn({ err, ...key }, '/logs stream failed; closing');
        ws.terminate();
      });
    });
  }

  get connections(): number {
    return this.wss.clients.size;
  }

  async close(): Promise<void> {
    for (const ws of this.wss.clients) ws.close(1001, 'server shutting down');
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }

  private async stream(ws: WebSocket, key: WorkflowKey): Promise<void> {
    const deps = {
      store: this.store,
      lines: this.lines,
      collector: this.collector,
      pingIntervalMs: this.pingIntervalMs,
    };
    if (await followLog(deps, ws, key, (lines) => sendAll(ws, lines))) ws.close(1000, 'log stream complete');
  }
}

export function refuse(socket: Duplex, code: number, reason: string, body: string): void {
  socket.end(
    `HTTP/1.1 ${code} ${reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}
