/**
 * One consumer group reading one topic. SQLite holds every fact about a delivery; this object
 * only remembers what is in flight in this process, which partitions need a look, and when.
 *
 * Partition scan (oldest first): a row in backoff is skipped (later messages keep flowing); a
 * held row or a row in flight is a barrier; the first visible row is delivered. So per
 * partition: FIFO, at most one in flight, holds block, retries do not.
 */
import type { DeliveryKey, DeliveryRow, QueueStore, StoredMessage } from '../db/queue-store.ts';
import { errorMessage, InvalidRequestError, PermanentError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { backoffMs } from './backoff.ts';
import type { Delivery, Handler, QueueMessage, RetryPolicy } from './types.ts';
import { WakeSchedule } from './wake-schedule.ts';

const HEAD_BATCH = 32;
const SCAN_ERROR_RETRY_MS = 1000;

interface InFlight {
  key: DeliveryKey;
  attempt: number;
  controller: AbortController;
  timer: NodeJS.Timeout;
  holdMs: number | undefined;
  lost: boolean;
}

type Outcome = { threw: false } | { threw: true; error: unknown };

export interface ConsumerSettings extends RetryPolicy {
  concurrency: number;
  /** Dead-letter topics: no further DLQ, every error retryable. */
  deadLetterTopic: boolean;
}

export class Consumer<T = unknown> {
  private readonly dirty = new Set<string>();
  private readonly inFlight = new Map<string, InFlight>();
  private readonly wakes = new WakeSchedule((pk) => this.notify(pk));
  private state: 'idle' | 'running' | 'stopping' | 'stopped' = 'idle';
  private pumpQueued = false;
  private idleWaiters: Array<() => void> = [];

  private readonly store: QueueStore;
  readonly topic: string;
  readonly group: string;
  private readonly handler: Handler<T>;
  readonly settings: ConsumerSettings;
  private readonly log: Logger;
  private readonly onDeadLetter: (partitionKey: string) => void;

  constructor(
    store: QueueStore,
    topic: string,
    group: string,
    handler: Handler<T>,
    settings: ConsumerSettings,
    log: Logger,
    onDeadLetter: (partitionKey: string) => void,
  ) {
    this.store = store;
    this.topic = topic;
    this.group = group;
    this.handler = handler;
    this.settings = settings;
    this.log = log;
    this.onDeadLetter = onDeadLetter;
  }

  start(): void {
    if (this.state !== 'idle') return;
    this.state = 'running';
    this.sweep();
  }

  /** A partition may have deliverable work (a publish, a wake-up, a finished delivery). */
  notify(partitionKey: string): void {
    if (this.state !== 'running') return;
    this.dirty.add(partitionKey);
    this.schedulePump();
  }

  /** Looks at every partition with pending rows (start-up, or another process wrote). */
  sweep(): void {
    if (this.state !== 'running') return;
    for (const pk of this.store.partitions(this.group, this.topic)) this.dirty.add(pk);
    this.schedulePump();
  }

  /**
   * Stops taking work, waits up to `timeoutMs` for deliveries in flight, then abandons the rest:
   * their rows become visible at once (the attempt stays counted) for the next start.
   */
  async stop(timeoutMs: number): Promise<void> {
    if (this.state === 'stopped') return;
    this.state = 'stopping';
    this.wakes.clear();
    this.dirty.clear();
    if (this.inFlight.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => this.idleWaiters.push(resolve)),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, timeoutMs);
        }),
      ]);
      clearTimeout(timer);
    }
    const abandoned = [...this.inFlight.values()];
    for (const d of abandoned) this.loseDelivery(d, new Error('queue stopped'));
    if (abandoned.length > 0) {
      this.log.warn({ count: abandoned.length }, 'abandoned deliveries still running at shutdown');
      this.store.release(
        abandoned.map((d) => d.key),
        Date.now(),
      );
    }
    this.state = 'stopped';
  }

  private schedulePump(): void {
    if (this.pumpQueued) return;
    this.pumpQueued = true;
    setImmediate(() => {
      this.pumpQueued = false;
      this.pump();
    });
  }

  private pump(): void {
    while (
      this.state === 'running' &&
      this.inFlight.size < this.settings.concurrency &&
      this.dirty.size > 0
    ) {
      const pk = this.dirty.values().next().value as string;
      this.dirty.delete(pk);
      if (this.inFlight.has(pk)) continue; // looked at again when its delivery ends
      try {
        this.scan(pk);
      } catch (err) {
        this.log.error({ err, partitionKey: pk }, 'queue scan failed; retrying the partition shortly');
        this.wakes.at(pk, Date.now() + SCAN_ERROR_RETRY_MS);
      }
    }
  }

  private scan(pk: string): void {
    const now = Date.now();
    let wakeAt = Number.POSITIVE_INFINITY;
    let after = -1;
    for (;;) {
      const rows = this.store.head(this.group, this.topic, pk, after, HEAD_BATCH);
      for (const row of rows) {
        if (row.invisibleUntil > now) {
          wakeAt = Math.min(wakeAt, row.invisibleUntil);
          if (row.inFlight || row.postponed) {
            this.wakes.at(pk, wakeAt);
            return;
          }
          continue;
        }
        this.deliver(pk, row, now);
        return;
      }
      if (rows.length < HEAD_BATCH) break;
      after = rows[rows.length - 1]!.offset;
    }
    if (wakeAt !== Number.POSITIVE_INFINITY) this.wakes.at(pk, wakeAt);
  }

  private deliver(pk: string, row: DeliveryRow, now: number): void {
    const key: DeliveryKey = { group: this.group, topic: this.topic, partitionKey: pk, offset: row.offset };
    const { settings } = this;
    if (row.inFlight && row.attemptCount >= settings.maxAttempts && !settings.deadLetterTopic) {
      // The last attempt's lease ran out: its handler crashed or never answered.
      this.deadLetter(key, row.attemptCount, 'exceeded retry limit', now);
      return;
    }
    const attempt = this.store.claim(key, now, now + settings.visibilityTimeoutMs);
    if (attempt === undefined) {
      this.notify(pk);
      return;
    }
    const stored = this.store.message(row.offset);
    const message = stored ? decode<T>(stored) : new Error(`message at offset ${row.offset} is missing`);
    if (message instanceof Error) {
      this.deadLetter(key, attempt, message.message, now);
      return;
    }
    const d: InFlight = {
      key,
      attempt,
      controller: new AbortController(),
      timer: setTimeout(() => this.expire(pk, d), settings.visibilityTimeoutMs),
      holdMs: undefined,
      lost: false,
    };
    d.timer.unref();
    this.inFlight.set(pk, d);
    const delivery: Delivery = {
      attempt,
      signal: d.controller.signal,
      hold(ms: number) {
        if (!Number.isFinite(ms) || ms < 0)
          throw new InvalidRequestError(`hold(${ms}): expected milliseconds ≥ 0`);
        d.holdMs = Math.ceil(ms);
      },
    };
    Promise.resolve()
      .then(() => this.handler(message, delivery))
      .then(
        () => this.settle(pk, d, { threw: false }),
        (error: unknown) => this.settle(pk, d, { threw: true, error }),
      );
  }

  private settle(pk: string, d: InFlight, outcome: Outcome): void {
    clearTimeout(d.timer);
    if (d.lost) {
      this.log.warn(
        { partitionKey: pk, offset: d.key.offset, attempt: d.attempt },
        'late result of a lost delivery ignored',
      );
      return;
    }
    this.inFlight.delete(pk);
    const now = Date.now();
    try {
      this.record(d, outcome, now);
    } catch (err) {
      // The row stays in flight; its lease runs out and it is delivered again.
      this.log.error({ err, partitionKey: pk, offset: d.key.offset }, 'could not record delivery outcome');
    }
    if (this.inFlight.size === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
    this.notify(pk);
  }

  private record(d: InFlight, outcome: Outcome, now: number): void {
    const { key, attempt } = d;
    const { settings } = this;
    if (!outcome.threw) {
      if (d.holdMs === undefined) this.store.ack(key, attempt);
      else this.store.hold(key, attempt, now + d.holdMs);
      return;
    }
    const reason = errorMessage(outcome.error);
    const ctx = { partitionKey: key.partitionKey, offset: key.offset, attempt, reason };
    if (!settings.deadLetterTopic && outcome.error instanceof PermanentError) {
      this.deadLetter(key, attempt, reason, now);
    } else if (!settings.deadLetterTopic && attempt >= settings.maxAttempts) {
      this.deadLetter(key, attempt, reason, now);
    } else {
      const delay = backoffMs(settings, attempt);
      if (attempt >= settings.maxAttempts) this.log.error(ctx, 'dead letter still failing; retrying');
      else this.log.info({ ...ctx, retryInMs: delay }, 'delivery failed; will retry');
      this.store.nack(key, attempt, now + delay);
    }
  }

  private deadLetter(key: DeliveryKey, attempt: number, reason: string, now: number): void {
    if (this.store.deadLetter(key, attempt, reason, now)) {
      this.log.warn(
        { partitionKey: key.partitionKey, offset: key.offset, attempt, reason, dlq: `${this.topic}_dlq` },
        'message dead-lettered',
      );
      this.onDeadLetter(key.partitionKey);
    }
    this.notify(key.partitionKey);
  }

  /** The visibility timeout passed with the handler still running: presume the delivery lost. */
  private expire(pk: string, d: InFlight): void {
    if (this.inFlight.get(pk) !== d) return;
    this.log.warn(
      {
        partitionKey: pk,
        offset: d.key.offset,
        attempt: d.attempt,
        timeoutMs: this.settings.visibilityTimeoutMs,
      },
      'delivery exceeded the visibility timeout; it will be delivered again',
    );
    this.loseDelivery(d, new Error('visibility timeout exceeded'));
    this.notify(pk);
  }

  private loseDelivery(d: InFlight, reason: Error): void {
    d.lost = true;
    clearTimeout(d.timer);
    this.inFlight.delete(d.key.partitionKey);
    d.controller.abort(reason);
    if (this.inFlight.size === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
  }
}

function decode<T>(stored: StoredMessage): QueueMessage<T> | Error {
  try {
    return {
      topic: stored.topic,
      partitionKey: stored.partitionKey,
      id: stored.id,
      payload: JSON.parse(stored.payload) as T,
      metadata: JSON.parse(stored.metadata) as Record<string, string>,
      offset: stored.offset,
      publishedAt: stored.publishedAt,
    };
  } catch (err) {
    return new Error(`corrupt message (offset ${stored.offset}): ${errorMessage(err)}`);
  }
}
