/**
 * A resumable WebSocket reader: connects to the URL its owner derives from the current cursor,
 * hands each text frame to `onFrame` one at a time (the next frame waits until the handler has
 * finished, so the owner advances its cursor only after handling), and reconnects after any
 * close or error with jittered exponential backoff (1 s doubling to 60 s, reset once a
 * connection has delivered a frame). A handler that throws leaves its frame unhandled: the
 * connection is dropped and the next one resumes from the owner's cursor, so a passing failure
 * skips nothing. A frame whose handler fails `maxHandlerFailures` times in a row is logged whole
 * at `error`, counted, and handed to `onSkip` so the owner moves its cursor past it: one poison
 * frame must not stop the stream for good.
 *
 * A frame over `maxFrameBytes` costs that frame and nothing else: the connection it arrived on
 * closes (1009, nothing buffered), and the next one, resumed from the owner's last good cursor,
 * reads one such frame with a larger allowance (`oversizeAllowanceBytes`) only so the owner can
 * learn where it is (its `created`) and move past exactly it; then the stream goes back to the
 * normal limit. A frame over even the allowance cannot be read at all: the owner is told so
 * without it, and decides.
 */
import { createHash } from 'node:crypto';
import { WebSocket } from 'ws';
import type { Logger } from '../logger.ts';

export interface StreamClientOptions {
  /**
   * The URL to dial, built anew for every attempt (it carries the cursor). `lastClose` is the
   * close code that ended the previous connection, if the peer sent one.
   */
  url: (context: { lastClose?: number }) => string;
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
   * A connection silent this long is pinged; one that then stays silent (no frame, no pong)
   * for as long again is half-open and is dropped and redialled (default 30 s, so a dead peer
   * is noticed within a minute).
   */
  idleTimeoutMs?: number;
  /** Consecutive handler failures of one frame after which it is skipped (default 5). */
  maxHandlerFailures?: number;
  /** A frame was given up after `maxHandlerFailures` failures: move the cursor past it. */
  onSkip?: (text: string) => void | Promise<void>;
  /** A frame over `maxFrameBytes` is read once, to be skipped, if it is at most this (default 64 MiB). */
  oversizeAllowanceBytes?: number;
  /**
   * A frame over `maxFrameBytes` was skipped: `text` is the frame (read under the allowance, so
   * the owner can move its cursor past exactly it), or absent when it was over even the
   * allowance. Runs before the next connection is dialled.
   */
  onOversized?: (frame: { bytes: number; text?: string }) => void | Promise<void>;
}

const GIVEN_UP_REMEMBERED = 1000;

function digestOf(text: string): string {
  return createHash('sha256').update(text).digest('base64url');
}

export class StreamClient {
  private readonly o: Required<Omit<StreamClientOptions, 'onOpen' | 'onOversized' | 'onSkip'>> &
    Pick<StreamClientOptions, 'onOpen' | 'onOversized' | 'onSkip'>;
  private ws: WebSocket | undefined;
  private stopped = false;
  private attempt = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private chain: Promise<void> = Promise.resolve();
  private closedWaiters: Array<() => void> = [];
  private lastClose: number | undefined;
  /** The next connection reads one oversized frame under the allowance, to skip it. */
  private allowance = false;
  /** The frame whose handler failed last, and how many times in a row. */
  private failing: { digest: string; count: number } | undefined;
  /** Frames given up after repeated handler failures, since start. */
  skippedFrames = 0;
  /** Digests of frames given up, so a replay does not fail them all over again. */
  private readonly givenUp = new Set<string>();
  /** Connections opened since start; every one after the first is a reconnect. */
  opens = 0;
  /** When the client was last without an open connection (undefined while connected). */
  private downSince: number | undefined;
  private waiting = false;

  constructor(options: StreamClientOptions) {
    this.o = {
      minBackoffMs: 1000,
      maxBackoffMs: 60_000,
      maxFrameBytes: 4 * 1024 * 1024,
      maxHandlerFailures: 5,
      idleTimeoutMs: 30_000,
      oversizeAllowanceBytes: 64 * 1024 * 1024,
      connectTimeoutMs: 10_000,
      // An option given as undefined keeps its default.
      ...(Object.fromEntries(
        Object.entries(options).filter(([, v]) => v !== undefined),
      ) as StreamClientOptions),
    };
  }

  start(): void {
    this.stopped = false;
    this.downSince = Date.now();
    this.connect();
  }

  get connected(): boolean {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  /** Where the client is: connected, dialling, waiting out a backoff, or stopped. */
  get state(): 'connected' | 'connecting' | 'backoff' | 'stopped' {
    if (this.stopped || this.downSince === undefined) return this.connected ? 'connected' : 'stopped';
    if (this.connected) return 'connected';
    return this.waiting ? 'backoff' : 'connecting';
  }

  /** How long the client has been without an open connection (0 while connected). */
  downForMs(now = Date.now()): number {
    return this.connected || this.downSince === undefined ? 0 : now - this.downSince;
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
    this.waiting = false;
    if (this.stopped) return;
    const url = this.o.url({ lastClose: this.lastClose });
    const allowance = this.allowance;
    const ws = new WebSocket(url, {
      maxPayload: allowance
        ? Math.max(this.o.oversizeAllowanceBytes, this.o.maxFrameBytes)
        : this.o.maxFrameBytes,
      handshakeTimeout: this.o.connectTimeoutMs,
    });
    this.ws = ws;
    let delivered = false;
    let failed = false;
    /** Reconnect at once (not after a backoff): this connection ended on purpose. */
    let resumeNow = false;
    // Liveness: any frame, ping or pong counts; silence gets a ping, and silence after it a redial.
    let lastHeard = Date.now();
    let pingedAt: number | undefined;
    const heard = () => {
      lastHeard = Date.now();
      pingedAt = undefined;
    };
    const idle = this.o.idleTimeoutMs;
    const watchdog = setInterval(
      () => {
        if (ws.readyState !== WebSocket.OPEN) return;
        // While a handler runs the socket is paused and cannot read a pong: not silence.
        if (ws.isPaused) return heard();
        const now = Date.now();
        if (pingedAt !== undefined && now - pingedAt >= idle) {
          this.o.log.warn({ url, silentMs: now - lastHeard }, 'stream silent after a ping; reconnecting');
          ws.terminate();
        } else if (pingedAt === undefined && now - lastHeard >= idle) {
          pingedAt = now;
          ws.ping();
        }
      },
      Math.max(10, Math.floor(idle / 4)),
    );
    watchdog.unref();
    ws.on('pong', heard);
    ws.on('ping', heard);
    ws.on('open', () => {
      heard();
      this.opens++;
      this.downSince = undefined;
      this.o.log.info({ url: url }, 'stream connected');
      this.o.onOpen?.(url);
    });
    ws.on('message', (data, isBinary) => {
      heard();
      if (isBinary) return;
      if (!delivered) {
        delivered = true;
        this.attempt = 0;
      }
      const bytes = (data as Buffer).length;
      const text = data.toString();
      // One frame at a time: pause reading while the handler runs so frames queue in the socket.
      ws.pause();
      if (bytes > this.o.maxFrameBytes) {
        // Only an allowance connection gets here: hand the frame over to be skipped, then go
        // back to the normal limit.
        this.chain = this.chain
          .then(() => (failed ? undefined : this.o.onOversized?.({ bytes, text })))
          .then(() => {
            this.allowance = false;
            resumeNow = true;
            // The socket is paused (a clean close would wait for a close frame it cannot read).
            ws.terminate();
          })
          .catch((err: unknown) => {
            failed = true;
            this.o.log.error({ err }, 'skipping an oversized frame failed; reconnecting to retry it');
            ws.terminate();
          });
        return;
      }
      this.chain = this.chain
        .then(async () => {
          if (failed) return;
          // A frame given up earlier comes back after a reconnect's rewind: pass it by.
          if (this.givenUp.size > 0 && this.givenUp.has(digestOf(text))) return;
          await this.o.onFrame(text);
          if (this.failing && this.failing.digest === digestOf(text)) this.failing = undefined;
        })
        .catch(async (err: unknown) => {
          const digest = digestOf(text);
          const count = this.failing?.digest === digest ? this.failing.count + 1 : 1;
          this.failing = { digest, count };
          if (count >= this.o.maxHandlerFailures) {
            this.o.log.error(
              { err, failures: count, bytes: text.length, frame: text },
              'stream frame failed every time it was handled; skipping it',
            );
            this.skippedFrames++;
            this.failing = undefined;
            this.givenUp.add(digest);
            if (this.givenUp.size > GIVEN_UP_REMEMBERED)
              this.givenUp.delete(this.givenUp.values().next().value!);
            await this.o.onSkip?.(text);
            return;
          }
          // The frame was not handled, so the cursor did not move: reconnect and read it again
          // rather than handling later frames past it.
          failed = true;
          this.o.log.error({ err, failures: count }, 'stream frame handler failed; reconnecting to retry it');
          ws.terminate();
        })
        .catch((err: unknown) => {
          failed = true;
          this.o.log.error({ err }, 'moving past a failing frame failed; reconnecting');
          ws.terminate();
        })
        .finally(() => {
          if (ws.readyState === WebSocket.OPEN) ws.resume();
        });
    });
    ws.on('error', (err: Error & { code?: string }) => {
      if (err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') {
        if (!allowance) {
          // Nothing of it was buffered. Read it once more, from the last good cursor, to skip it.
          this.o.log.warn(
            { url, maxFrameBytes: this.o.maxFrameBytes },
            'frame over the size limit; reconnecting to skip exactly it',
          );
          this.allowance = true;
          resumeNow = true;
          return;
        }
        const bytes = this.o.oversizeAllowanceBytes;
        this.o.log.error({ url, oversizeAllowanceBytes: bytes }, 'frame over even the oversize allowance');
        this.chain = this.chain
          .then(() => this.o.onOversized?.({ bytes }))
          .then(() => {
            this.allowance = false;
          });
        resumeNow = true;
        return;
      }
      this.o.log.warn({ err: err.message, url: url }, 'stream error');
    });
    ws.on('close', (code) => {
      clearInterval(watchdog);
      this.lastClose = code;
      for (const resolve of this.closedWaiters.splice(0)) resolve();
      this.downSince ??= Date.now();
      if (this.stopped) return;
      const delay = resumeNow ? 0 : this.backoff();
      this.o.log.info({ code, url: url, retryInMs: delay }, 'stream closed; reconnecting');
      // The chain first: the owner moves its cursor before the next URL is built.
      this.waiting = true;
      this.retryTimer = setTimeout(() => void this.chain.then(() => this.connect()), delay);
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
