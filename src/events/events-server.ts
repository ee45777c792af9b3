/**
 * The spindle's `/events` WebSocket (spindle protocol §8, with §16's fixes): backfill of every
 * stored event after the client's cursor (no 100-row cap), then live events, each as one text
 * frame; a ping after 30 s of silence; per-client flow control so a slow reader falls behind
 * (and catches up from the log) instead of growing the server's memory.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { type WebSocket, WebSocketServer } from 'ws';
import type { Logger } from '../logger.ts';
import type { EventLog } from './event-log.ts';

export interface EventsServerOptions {
  /** Silence after which the server pings (default 30 s). */
  pingIntervalMs?: number;
  /** Events read from the log at a time (default 1000). */
  batch?: number;
}

/** `?cursor=`: missing, unparsable or 0 → now; negative → the beginning; else created > N. */
export function parseCursor(raw: string | null, now: bigint): bigint {
  if (raw === null || !/^-?\d{1,19}$/.test(raw)) return now;
  const n = BigInt(raw);
  if (n === 0n) return now;
  return n < 0n ? -1n : n;
}

class EventsClient {
  private cursor: bigint;
  private draining = false;
  private again = false;
  private lastSent = Date.now();
  private readonly ws: WebSocket;
  private readonly log: EventLog;
  private readonly batch: number;
  private readonly onError: (err: unknown) => void;

  constructor(ws: WebSocket, log: EventLog, cursor: bigint, batch: number, onError: (err: unknown) => void) {
    this.ws = ws;
    this.log = log;
    this.cursor = cursor;
    this.batch = batch;
    this.onError = onError;
  }

  /** Something was appended (or the client just connected): send what it has not seen. */
  wake(): void {
    if (this.draining) {
      this.again = true;
      return;
    }
    this.draining = true;
    this.drain()
      .catch(this.onError)
      .finally(() => {
        this.draining = false;
      });
  }

  pingIfIdle(intervalMs: number): void {
    if (Date.now() - this.lastSent >= intervalMs && this.ws.readyState === this.ws.OPEN) {
      this.ws.ping();
      this.lastSent = Date.now();
    }
  }

  private async drain(): Promise<void> {
    do {
      this.again = false;
      for (;;) {
        if (this.ws.readyState !== this.ws.OPEN) return;
        const events = this.log.readAfter(this.cursor, this.batch);
        if (events.length === 0) break;
        const last = events.length - 1;
        for (let i = 0; i < last; i++) this.ws.send(events[i]!.bytes ?? events[i]!.frame, TEXT);
        // One callback per batch: it fires once the whole batch has been handed to the socket.
        const flushed = new Promise<void>((resolve, reject) => {
          this.ws.send(events[last]!.bytes ?? events[last]!.frame, TEXT, (err) =>
            err ? reject(err) : resolve(),
          );
        });
        this.cursor = events[last]!.created;
        this.lastSent = Date.now();
        // Flow control: a client that does not read keeps at most about HIGH_WATER bytes here;
        // the rest stays in the log until it catches up.
        if (this.ws.bufferedAmount > HIGH_WATER) await flushed;
        else flushed.catch(this.onError);
      }
    } while (this.again);
  }
}

const HIGH_WATER = 1 << 20;
/** Pre-encoded frames still go out as text frames. */
const TEXT = { binary: false } as const;

export class EventsServer {
  private readonly wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 4096 });
  private readonly clients = new Set<EventsClient>();
  private readonly log: EventLog;
  private readonly logger: Logger;
  private readonly batch: number;
  private readonly pingTimer: NodeJS.Timeout;
  private readonly unsubscribe: () => void;

  constructor(log: EventLog, logger: Logger, options: EventsServerOptions = {}) {
    this.log = log;
    this.logger = logger;
    this.batch = options.batch ?? 1000;
    const pingIntervalMs = options.pingIntervalMs ?? 30_000;
    this.pingTimer = setInterval(
      () => {
        for (const c of this.clients) c.pingIfIdle(pingIntervalMs);
      },
      Math.max(50, Math.floor(pingIntervalMs / 3)),
    );
    this.pingTimer.unref();
    // Appends come in bursts (one per status): wake the clients once per turn of the event loop.
    let scheduled = false;
    this.unsubscribe = log.subscribe(() => {
      if (scheduled) return;
      scheduled = true;
      setImmediate(() => {
        scheduled = false;
        for (const c of this.clients) c.wake();
      });
    });
  }

  get connections(): number {
    return this.clients.size;
  }

  /** Takes over an HTTP upgrade of `/events`. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const cursor = parseCursor(url.searchParams.get('cursor'), this.log.now());
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      const client = new EventsClient(ws, this.log, cursor, this.batch, (err) => {
        this.logger.warn({ err }, '/events client send failed; closing');
        ws.terminate();
      });
      this.clients.add(client);
      ws.on('close', () => this.clients.delete(client));
      ws.on('error', (err) => this.logger.debug({ err }, '/events client error'));
      // The protocol has no client messages; anything received is ignored.
      this.logger.debug({ cursor: String(cursor), clients: this.clients.size }, '/events client connected');
      client.wake();
    });
  }

  /** Closes every client with 1001 (going away) and stops. */
  async close(): Promise<void> {
    clearInterval(this.pingTimer);
    this.unsubscribe();
    for (const ws of this.wss.clients) ws.close(1001, 'server shutting down');
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }
}
