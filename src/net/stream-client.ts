/**
 * A resumable WebSocket reader: connects to the URL its owner derives from the current cursor,
 * hands each text frame to `onFrame` one at a time (the next frame waits until the handler has
 * finished, so the owner advances its cursor only after handling), and reconnects after any
 * close or error with jittered exponential backoff (1 s doubling to 60 s, reset once a
 * connection has delivered a frame). Frames past `maxFrameBytes` close the connection (1009).
 * A handler that throws leaves its frame unhandled: the connection is dropped and the next one
 * resumes from the owner's cursor, so no frame is skipped.
 */
import { WebSocket } from 'ws';
import type { Logger } from '../logger.ts';

export interface StreamClientOptions {
  /** The URL to dial, built anew for every attempt (it carries the cursor). */
  url: () => string;
  onFrame: (text: string) => Promise<void> | void;
  log: Logger;
  minBackoffMs?: number;
  maxBackoffMs?: number;
  maxFrameBytes?: number;
  /** Dial timeout (default 10 s). */
  connectTimeoutMs?: number;
  /** Called when a connection opens (for tests and metrics). */
  onOpen?: (url: string) => void;
  /**
   * Called when a frame exceeded `maxFrameBytes` and the connection was dropped, before the
   * reconnect: the owner must move its cursor past the frame, or it would be sent again.
   */
  onOversized?: () => void;
}

export class StreamClient {
  private readonly o: Required<Omit<StreamClientOptions, 'onOpen' | 'onOversized'>> &
    Pick<StreamClientOptions, 'onOpen' | 'onOversized'>;
  private ws: WebSocket | undefined;
  private stopped = false;
  private attempt = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private chain: Promise<void> = Promise.resolve();
  private closedWaiters: Array<() => void> = [];

  constructor(options: StreamClientOptions) {
    this.o = {
      minBackoffMs: 1000,
      maxBackoffMs: 60_000,
      maxFrameBytes: 4 * 1024 * 1024,
      connectTimeoutMs: 10_000,
      // An option given as undefined keeps its default.
      ...(Object.fromEntries(
        Object.entries(options).filter(([, v]) => v !== undefined),
      ) as StreamClientOptions),
    };
  }

  start(): void {
    this.stopped = false;
    this.connect();
  }

  get connected(): boolean {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  /** Closes the connection and waits for the frame being handled, if any. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    const ws = this.ws;
    if (ws && ws.readyState !== WebSocket.CLOSED) {
      const closed = new Promise<void>((resolve) => this.closedWaiters.push(resolve));
      ws.close(1000);
      const timer = setTimeout(() => ws.terminate(), 1000);
      await closed;
      clearTimeout(timer);
    }
    await this.chain;
  }

  private connect(): void {
    if (this.stopped) return;
    const url = this.o.url();
    const ws = new WebSocket(url, {
      maxPayload: this.o.maxFrameBytes,
      handshakeTimeout: this.o.connectTimeoutMs,
    });
    this.ws = ws;
    let delivered = false;
    let failed = false;
    ws.on('open', () => {
      this.o.log.info({ url: url }, 'stream connected');
      this.o.onOpen?.(url);
    });
    ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      if (!delivered) {
        delivered = true;
        this.attempt = 0;
      }
      const text = data.toString();
      // One frame at a time: pause reading while the handler runs so frames queue in the socket.
      ws.pause();
      this.chain = this.chain
        .then(() => (failed ? undefined : this.o.onFrame(text)))
        .catch((err: unknown) => {
          // The frame was not handled, so the cursor did not move: reconnect and read it again
          // rather than handling later frames past it.
          failed = true;
          this.o.log.error({ err }, 'stream frame handler failed; reconnecting to retry it');
          ws.terminate();
        })
        .finally(() => {
          if (ws.readyState === WebSocket.OPEN) ws.resume();
        });
    });
    ws.on('error', (err: Error & { code?: string }) => {
      if (err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') {
        this.o.log.error({ url, maxFrameBytes: this.o.maxFrameBytes }, 'frame too large; skipping it');
        // The frame was not handled: let the owner move past it before the next connection.
        this.chain = this.chain.then(() => this.o.onOversized?.());
        return;
      }
      this.o.log.warn({ err: err.message, url: url }, 'stream error');
    });
    ws.on('close', (code) => {
      for (const resolve of this.closedWaiters.splice(0)) resolve();
      if (this.stopped) return;
      const delay = this.backoff();
      this.o.log.info({ code, url: url, retryInMs: delay }, 'stream closed; reconnecting');
      this.retryTimer = setTimeout(() => this.connect(), delay);
      this.retryTimer.unref();
    });
  }

  private backoff(): number {
    const base = Math.min(this.o.maxBackoffMs, this.o.minBackoffMs * 2 ** this.attempt);
    this.attempt++;
    // Full jitter over the upper half, so many clients do not reconnect in step.
    return Math.round(base / 2 + (Math.random() * base) / 2);
  }
}
