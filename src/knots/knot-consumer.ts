/**
 * One WebSocket per knot that serves at least one of our repos: `wss://<knot>/events`
 * (`ws://` in dev) resumed from a Unix-ns cursor stored per knot and rewound a few seconds on
 * reconnect (replays are harmless: intake deduplicates). Each frame treadle cares about is
 * published to the durable queue before the cursor moves past it, so nothing is lost.
 */
import type { CursorStore } from '../db/cursor-store.ts';
import { wallClockNs } from '../events/nano-clock.ts';
import type { Logger } from '../logger.ts';
import { StreamClient } from '../net/stream-client.ts';
import { type KnotFrame, parseKnotFrame } from './knot-frame.ts';

export interface KnotConsumerOptions {
  dev: boolean;
  cursors: CursorStore;
  log: Logger;
  /** Handles a valid frame durably (publishes it); the cursor advances after it returns. */
  onFrame: (knot: string, frame: KnotFrame) => void | Promise<void>;
  /** How far to rewind the stored cursor on reconnect (default 5 s). */
  rewindNs?: bigint;
  /** How far for a knot that sends no `created`, or has not yet (default 5 min: clock skew). */
  legacyRewindNs?: bigint;
  minBackoffMs?: number;
  maxBackoffMs?: number;
  onOpen?: (knot: string, url: string) => void;
  /** Largest frame read from a knot (default 4 MiB). */
  maxFrameBytes?: number;
  /** A larger frame is read once, to learn its place and skip it, up to this (default 64 MiB). */
  oversizeAllowanceBytes?: number;
}

const FUTURE_SLACK_NS = 3_600_000_000_000n;

const WANTED = new Set([
  'sh.tangled.pipeline',
  'sh.tangled.git.refUpdate',
  'sh.tangled.repo.collaboratorUpdate',
  'sh.tangled.repo.didAssign',
]);

export class KnotConsumers {
  private readonly o: KnotConsumerOptions;
  private readonly streams = new Map<string, StreamClient>();
  private stopped = false;
  /** Connections opened again after one ended, over every knot, since start. */
  reconnects = 0;

  constructor(options: KnotConsumerOptions) {
    this.o = options;
  }

  get knots(): string[] {
    return [...this.streams.keys()].sort();
  }

  /** How many knot streams are in each state. */
  states(): Record<'connected' | 'connecting' | 'backoff' | 'stopped', number> {
    const counts = { connected: 0, connecting: 0, backoff: 0, stopped: 0 };
    for (const s of this.streams.values()) counts[s.state]++;
    return counts;
  }

  /** Each followed knot's connection state, and how long it has been without one (ms). */
  connections(now = Date.now()): Array<{ knot: string; state: string; downForMs: number }> {
    return [...this.streams].map(([knot, s]) => ({ knot, state: s.state, downForMs: s.downForMs(now) }));
  }

  /** Knots that have been without a connection for at least `ms`. */
  downFor(ms: number, now = Date.now()): string[] {
    return [...this.streams].filter(([, s]) => s.downForMs(now) >= ms).map(([k]) => k);
  }

  /** Opens streams for knots newly needed and closes those no repo needs any more. */
  async reconcile(wanted: Iterable<string>): Promise<void> {
    if (this.stopped) return;
    const want = new Set(wanted);
    const closing: Promise<void>[] = [];
    for (const [knot, stream] of this.streams) {
      if (want.has(knot)) continue;
      this.streams.delete(knot);
      this.o.log.info({ knot }, 'knot no longer needed; closing its stream');
      closing.push(stream.stop());
    }
    for (const knot of want) if (!this.streams.has(knot)) this.open(knot);
    await Promise.all(closing);
  }

  /** Closes every stream; later reconcile() calls do nothing. */
  async stop(): Promise<void> {
    this.stopped = true;
    const all = [...this.streams.values()];
    this.streams.clear();
    await Promise.all(all.map((s) => s.stop()));
  }

  /**
   * Moves the knot's cursor past a handled frame: to its `created`, or our clock for legacy
   * knots that send none (as stock does). Never backwards (a replay or a knot's clock stepping
   * back must not make the next reconnect replay more than the rewind), and never past our own
   * clock by more than an hour (a bogus far-future `created` must not make a reconnect skip
   * everything). A provisional cursor (our clock at first contact) gives way to the knot's own.
   */
  private advance(key: string, frame: KnotFrame, log: Logger, provisional: boolean): void {
    const now = wallClockNs();
    let at = frame.created ?? now;
    if (at > now + FUTURE_SLACK_NS) {
      log.warn(
        { rkey: frame.rkey.slice(0, 80), created: at.toString() },
        'knot frame dated over an hour ahead of our clock; cursor kept at our clock',
      );
      at = now;
    }
    const stored = this.o.cursors.get(key);
    if (provisional || stored === undefined || at > stored) this.o.cursors.set(key, at);
    else if (at < stored)
      log.debug(
        { rkey: frame.rkey.slice(0, 80), created: at.toString() },
        'knot frame older than the cursor',
      );
  }

  private open(knot: string): void {
    const key = `knot:${knot}`;
    const log = this.o.log.child({ knot });
    const rewind = this.o.rewindNs ?? 5_000_000_000n;
    let floor: bigint | undefined;
    // Legacy knots send no `created`: their cursors are our clock against theirs, so resuming
    // rewinds further to ride out clock skew (replays are deduplicated by intake).
    let sentNoCreated = false;
    const legacyRewind = this.o.legacyRewindNs ?? 300_000_000_000n;
    /** The stored cursor is our clock at the first connection, not yet a frame's `created`. */
    let provisional = false;
    const stream = new StreamClient({
      log,
      minBackoffMs: this.o.minBackoffMs,
      maxBackoffMs: this.o.maxBackoffMs,
      onOpen: (url) => {
        // A first connection asks for no backfill (as stock). Remember where it began, so a
        // reconnect (after an oversized frame, say) resumes from there, not from a later "now".
        if (this.o.cursors.get(key) === undefined) {
          this.o.cursors.set(key, wallClockNs());
          provisional = true;
        }
        if (stream.opens > 1) this.reconnects++;
        this.o.onOpen?.(knot, url);
      },
      maxFrameBytes: this.o.maxFrameBytes,
      oversizeAllowanceBytes: this.o.oversizeAllowanceBytes,
      // A knot replays from our cursor, so a frame we do not move past would come back forever.
      // Move past exactly it, and never rewind to before it again on this run.
      onOversized: ({ bytes, text }) => {
        const frame = text === undefined ? undefined : parseKnotFrame(text);
        if (frame?.created !== undefined) {
          floor = frame.created;
          this.o.cursors.set(key, frame.created);
          log.error(
            { bytes, created: frame.created.toString(), nsid: frame.nsid, rkey: frame.rkey.slice(0, 80) },
            'knot frame over the size limit skipped',
          );
          return;
        }
        // Its place is unknown (a legacy knot sends no `created`, or the frame was over even the
        // allowance): resume from now, and say what may have been missed.
        const from = this.o.cursors.get(key);
        const now = wallClockNs();
        floor = now;
        this.o.cursors.set(key, now);
        log.error(
          {
            bytes,
            over: text === undefined ? 'the oversize allowance' : 'the size limit',
            from: from?.toString(),
            to: now.toString(),
          },
          'knot frame over the size limit skipped without its place; resuming from now, events in between may be skipped',
        );
      },
      url: ({ lastClose }) => {
        const stored = this.o.cursors.get(key);
        // A knot that closed with 1013 (overloaded) is resumed exactly where we are: rewinding
        // would hand it the same backlog again, and it would close again.
        // A cursor that only marks where the first contact began (our clock) gets the short
        // rewind: enough for the two clocks to disagree a little, not so much that history from
        // well before we followed this knot (which stock never runs) comes back.
        const back = lastClose === 1013 ? 0n : sentNoCreated && !provisional ? legacyRewind : rewind;
        let cursor = stored !== undefined && stored > back ? stored - back : undefined;
        // Not back past a frame skipped as oversized: the knot would send it again.
        if (floor !== undefined && (cursor === undefined || cursor < floor)) cursor = floor;
        return `${this.o.dev ? 'ws' : 'wss'}://${knot}/events${cursor !== undefined ? `?cursor=${cursor}` : ''}`;
      },
      // A frame its handler keeps failing on is moved past (logged whole by the stream).
      onSkip: (text) => {
        const frame = parseKnotFrame(text);
        this.o.cursors.set(key, frame?.created ?? wallClockNs());
      },
      onFrame: async (text) => {
        const frame = parseKnotFrame(text);
        if (!frame) {
          log.warn({ bytes: text.length, start: text.slice(0, 80) }, 'malformed knot frame skipped');
          return;
        }
        sentNoCreated = frame.created === undefined;
        if (WANTED.has(frame.nsid)) await this.o.onFrame(knot, frame);
        this.advance(key, frame, log, provisional);
        provisional = false;
      },
    });
    this.streams.set(knot, stream);
    stream.start();
  }
}
