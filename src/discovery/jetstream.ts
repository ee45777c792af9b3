/**
 * The Jetstream subscription (spindle protocol §3.1–3.2, 2026 spec §3.2): `wantedCollections`
 * for members, repos and collaborators, and for pull requests and their status changes (with
 * no DID filter: anyone may author those), resumed from a µs cursor that advances only after an event is
 * handled, rewound a few seconds on every reconnect (handling is idempotent). A cursor that
 * is missing or older than Jetstream keeps (~36 h) cannot be resumed: the consumer starts
 * from now and asks for a backfill from the PDSes instead.
 */
import type { CursorStore } from '../db/cursor-store.ts';
import type { Logger } from '../logger.ts';
import { StreamClient } from '../net/stream-client.ts';
import type { RecordEvent } from './records.ts';

export const JETSTREAM_CURSOR = 'jetstream';
const HOUR_US = 3_600_000_000n;

export interface JetstreamOptions {
  url: string;
  /** The `wantedCollections`; commits to others are skipped. */
  collections: readonly string[];
  cursors: CursorStore;
  log: Logger;
  onEvent: (ev: RecordEvent) => void | Promise<void>;
  /** The cursor could not be resumed: records may have been missed. */
  onGap: (reason: 'first start' | 'cursor too old') => void | Promise<void>;
  rewindUs?: bigint;
  maxAgeUs?: bigint;
  minBackoffMs?: number;
  maxBackoffMs?: number;
  nowUs?: () => bigint;
  onOpen?: (url: string) => void;
}

export class JetstreamConsumer {
  private readonly o: JetstreamOptions;
  private readonly client: StreamClient;

  constructor(options: JetstreamOptions) {
    this.o = options;
    this.client = new StreamClient({
      log: options.log,
      url: () => this.url(),
      onFrame: (text) => this.onFrame(text),
      // An event whose handler keeps failing is moved past (logged whole by the stream).
      onSkip: (text) => {
        const ev = parseJetstreamEvent(text, this.o.collections);
        if (ev) this.o.cursors.set(JETSTREAM_CURSOR, ev.timeUs);
      },
      minBackoffMs: options.minBackoffMs,
      maxBackoffMs: options.maxBackoffMs,
      onOpen: options.onOpen,
    });
  }

  /** Checks the stored cursor (asking for a backfill when it cannot be resumed), then connects. */
  async start(): Promise<void> {
    await this.checkGap();
    this.client.start();
  }

  stop(): Promise<void> {
    return this.client.stop();
  }

  /** The connection's state, how long it has been down, and reconnects since start. */
  status(now = Date.now()): { state: StreamClient['state']; downForMs: number; reconnects: number } {
    return {
      state: this.client.state,
      downForMs: this.client.downForMs(now),
      reconnects: Math.max(0, this.client.opens - 1),
    };
  }

  private nowUs(): bigint {
    return this.o.nowUs?.() ?? BigInt(Date.now()) * 1000n;
  }

  private async checkGap(): Promise<void> {
    const stored = this.o.cursors.get(JETSTREAM_CURSOR);
    const now = this.nowUs();
    const maxAge = this.o.maxAgeUs ?? 36n * HOUR_US;
    if (stored !== undefined && now - stored <= maxAge) return;
    const reason = stored === undefined ? 'first start' : 'cursor too old';
    this.o.log.info(
      { reason, cursor: stored?.toString() },
      'jetstream cannot resume; backfilling from PDSes',
    );
    await this.o.onGap(reason);
    this.o.cursors.set(JETSTREAM_CURSOR, now);
  }

  private url(): string {
    const q = new URLSearchParams();
    for (const c of this.o.collections) q.append('wantedCollections', c);
    const stored = this.o.cursors.get(JETSTREAM_CURSOR) ?? this.nowUs();
    const rewound = stored - (this.o.rewindUs ?? 5_000_000n);
    q.set('cursor', String(rewound > 0n ? rewound : 0n));
    return `${this.o.url}?${q}`;
  }

  private async onFrame(text: string): Promise<void> {
    const ev = parseJetstreamEvent(text, this.o.collections);
    if (!ev) {
      this.o.log.warn({ bytes: text.length, start: text.slice(0, 80) }, 'malformed jetstream event skipped');
      return;
    }
    if (ev.record) await this.o.onEvent(ev.record);
    this.o.cursors.set(JETSTREAM_CURSOR, ev.timeUs);
  }
}

/** A Jetstream event: its time, and the record change if it is a commit to a wanted collection. */
export function parseJetstreamEvent(
  text: string,
  collections: readonly string[],
): { timeUs: bigint; record?: RecordEvent } | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const e = v as { did?: unknown; time_us?: unknown; kind?: unknown; commit?: Record<string, unknown> };
  if (typeof e.did !== 'string' || typeof e.time_us !== 'number' || !Number.isSafeInteger(e.time_us))
    return undefined;
  const timeUs = BigInt(e.time_us);
  if (e.kind !== 'commit') return { timeUs };
  const c = e.commit;
  if (typeof c !== 'object' || c === null) return undefined;
  const op = c.operation;
  if (typeof c.collection !== 'string' || typeof c.rkey !== 'string') return undefined;
  if (op !== 'create' && op !== 'update' && op !== 'delete') return undefined;
  if (!collections.includes(c.collection)) return { timeUs };
  return {
    timeUs,
    record: { did: e.did, collection: c.collection, rkey: c.rkey, operation: op, record: c.record },
  };
}
