/**
 * The /events log: an append-only, durable sequence of frames keyed by strictly increasing
 * Unix-ns `created`, with the newest events kept in memory so that live readers (every
 * connected appview) are served without touching SQLite.
 */
import type { EventStore, StoredEvent } from '../db/event-store.ts';
import { UnitOfWork } from '../db/unit-of-work.ts';
import { NanoClock } from './nano-clock.ts';

export interface LoggedEvent extends StoredEvent {
  /** The wire frame, built once and shared by every reader. */
  frame: string;
  /** The frame as UTF-8, encoded once for live events rather than once per reader. */
  bytes?: Buffer;
}

export interface EventLogOptions {
  /** How many of the newest events stay in memory (default 10,000). */
  recent?: number;
  clock?: NanoClock;
  /** The unit of work appends join (readers see an event once its unit commits). */
  uow?: UnitOfWork;
}

type Listener = (e: LoggedEvent) => void;

export class EventLog {
  private readonly store: EventStore;
  private readonly clock: NanoClock;
  private readonly recentLimit: number;
  private readonly trimChunk: number;
  private recent: LoggedEvent[] = [];
  /** Every event with `created` above this is in `recent`. */
  private memoryFloor: bigint;
  private readonly listeners = new Set<Listener>();
  private readonly uow: UnitOfWork;

  constructor(store: EventStore, options: EventLogOptions = {}) {
    this.store = store;
    const last = store.lastCreated();
    this.clock = options.clock ?? new NanoClock(last ?? 0n);
    this.recentLimit = options.recent ?? 10_000;
    this.trimChunk = Math.max(1, Math.floor(this.recentLimit / 10));
    this.memoryFloor = last ?? -1n;
    this.uow = options.uow ?? new UnitOfWork(store.db);
  }

  /**
   * Appends a record unless (nsid, rkey) was appended before, in which case the stored event is
   * returned unchanged: a redelivered write neither duplicates a frame nor changes its cursor.
   */
  append(nsid: string, rkey: string, record: object): LoggedEvent {
    const existing = this.store.find(nsid, rkey);
    if (existing) return withFrame(existing, false);
    const e = withFrame({ created: this.clock.next(), nsid, rkey, event: sortedJson(record) }, true);
    this.store.insert(e);
    this.uow.afterCommit(() => this.publish(e));
    return e;
  }

  private publish(e: LoggedEvent): void {
    this.recent.push(e);
    // Trim in chunks: shifting the whole array on every append would cost O(recent) each time.
    if (this.recent.length > this.recentLimit + this.trimChunk) {
      const dropped = this.recent.splice(0, this.recent.length - this.recentLimit);
      this.memoryFloor = dropped.at(-1)!.created;
    }
    for (const listener of this.listeners) listener(e);
  }

  /** Up to `limit` events with `created > cursor`, oldest first. */
  readAfter(cursor: bigint, limit: number): LoggedEvent[] {
    if (cursor >= this.memoryFloor) {
      const from = firstAfter(this.recent, cursor);
      return this.recent.slice(from, from + limit);
    }
    return this.store.after(cursor, limit).map((e) => withFrame(e, false));
  }

  /** The cursor meaning "from now on": the newest event, or the clock if later. */
  now(): bigint {
    return this.clock.now();
  }

  /** Calls `listener` after each append; returns the unsubscribe function. */
  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

/** `{"created":…,"event":…,"nsid":…,"rkey":…}`: keys sorted as stock's re-marshalled frames are. */
function withFrame(e: StoredEvent, encode: boolean): LoggedEvent {
  const frame = `{"created":${e.created},"event":${e.event},"nsid":${JSON.stringify(e.nsid)},"rkey":${JSON.stringify(e.rkey)}}`;
  const out: LoggedEvent = { created: e.created, nsid: e.nsid, rkey: e.rkey, event: e.event, frame };
  if (encode) out.bytes = Buffer.from(frame);
  return out;
}

function firstAfter(events: LoggedEvent[], cursor: bigint): number {
  let lo = 0;
  let hi = events.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (events[mid]!.created <= cursor) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** JSON with object keys sorted at every level, as Go's map marshalling writes records. */
export function sortedJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(
          Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
        )
      : v,
  );
}
