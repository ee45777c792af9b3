/**
 * The durable topic queue (spec greenness-and-landing §5.1) on SQLite: publish with dedup,
 * consumer groups with per-partition FIFO, backoff, hold, dead-lettering, redelivery after a
 * visibility timeout, and garbage collection of consumed messages past retention.
 */
import { loadAdminConfig, type QueueSettings } from '../config.ts';
import { dataVersion } from '../db/database.ts';
import { type DeadLetter, DLQ_SUFFIX, type QueueStore } from '../db/queue-store.ts';
import { UnitOfWork } from '../db/unit-of-work.ts';
import { InvalidRequestError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { Consumer } from './consumer.ts';
import type { ConsumerOptions, Handler, PublishOptions, PublishRequest, PublishResult } from './types.ts';
import { checkName, checkPublish } from './validate.ts';

/** The documented defaults (spec greenness-and-landing §9), from the settings table. */
export const QUEUE_DEFAULTS: QueueSettings = loadAdminConfig({}).config.queue;

/** Dead-letter subscriptions: no further DLQ, many attempts, every error retryable. */
const DLQ_MAX_ATTEMPTS = 1000;
const GC_INTERVAL_MS = 60_000;
const GC_BATCH = 1000;
const GC_MAX_BATCHES_PER_TICK = 20;

export class Queue {
  readonly store: QueueStore;
  private readonly consumers = new Map<string, Consumer[]>();
  private readonly settings: QueueSettings;
  private started = false;
  private pollTimer: NodeJS.Timeout | undefined;
  private lastDataVersion = -1;
  private lastGcAt = 0;

  private readonly log: Logger;
  private readonly uow: UnitOfWork;

  /** `uow`: publishes inside an open unit of work wake consumers only once it commits. */
  constructor(store: QueueStore, log: Logger, settings: Partial<QueueSettings> = {}, uow?: UnitOfWork) {
    this.store = store;
    this.log = log;
    this.settings = { ...QUEUE_DEFAULTS, ...settings };
    this.uow = uow ?? new UnitOfWork(store.db);
  }

  /** Stores one message; a repeat of (topic, partitionKey, id) stores nothing and reports `published: false`. */
  publish<T>(
    topic: string,
    partitionKey: string,
    id: string,
    payload: T,
    options: PublishOptions = {},
  ): PublishResult {
    return this.publishBatch([{ topic, partitionKey, id, payload, metadata: options.metadata }])[0]!;
  }

  /** Stores several messages in one transaction: all of them, or (on a bad one) none. */
  publishBatch(requests: readonly PublishRequest[]): PublishResult[] {
    const checked = requests.map(checkPublish);
    const results = this.store.publish(checked, Date.now());
    this.uow.afterCommit(() =>
      results.forEach((r, i) => {
        if (r.published) this.notify(checked[i]!.topic, checked[i]!.partitionKey);
      }),
    );
    return results;
  }

  /** Dead letters of `topic` (or of `topic` given with its `_dlq` suffix), oldest first. */
  deadLetters(topic: string): DeadLetter[] {
    return this.store.deadLetters(dlqTopicOf(topic));
  }

  /** Puts dead letters (all, or those with `id`) back on their original topic; returns how many. */
  replayDeadLetters(topic: string, id?: string): number {
    const n = this.store.replay(dlqTopicOf(topic), id, Date.now());
    if (n > 0) for (const c of this.allConsumers()) c.sweep();
    return n;
  }

  dropDeadLetters(topic: string, id: string): number {
    return this.store.drop(dlqTopicOf(topic), id);
  }

  /**
   * Redelivers now what a previous process left in flight (it died mid-delivery), instead of
   * after the visibility timeout. Call only while holding the instance lock, before `start()`.
   */
  recoverAbandoned(): number {
    // Only the groups this process consumes: another process (a CLI, an external consumer)
    // may hold deliveries of its own groups right now.
    let n = 0;
    for (const c of this.allConsumers()) n += this.store.recover(c.topic, c.group);
    if (n > 0)
      this.log.info({ deliveries: n }, 'deliveries left in flight by a previous process redelivered');
    return n;
  }

  /**
   * Ends any `hold()` on the partition's messages now, e.g. when a webhook says the build a
   * held dispatch message polls has changed. Returns whether anything was held.
   */
  wake(topic: string, partitionKey: string): boolean {
    const woken = this.store.wake(topic, partitionKey, Date.now());
    if (woken > 0) this.notify(topic, partitionKey);
    return woken > 0;
  }

  private notify(topic: string, partitionKey: string): void {
    for (const c of this.consumers.get(topic) ?? []) c.notify(partitionKey);
  }

  /**
   * Subscribes `group` to `topic`. The subscription is stored at once, so every message
   * published from now on is kept for the group, also while the process is down.
   */
  consume<T>(topic: string, group: string, handler: Handler<T>, options: ConsumerOptions = {}): Consumer<T> {
    checkName('topic', topic);
    checkName('consumer group', group);
    const list = this.consumers.get(topic) ?? [];
    if (list.some((c) => c.group === group)) {
      throw new InvalidRequestError(`consumer group ${group} already consumes ${topic} in this process`);
    }
    const deadLetterTopic = topic.endsWith(DLQ_SUFFIX);
    const s = this.settings;
    const consumer = new Consumer<T>(
      this.store,
      topic,
      group,
      handler,
      {
        concurrency: options.concurrency ?? s.concurrency,
        maxAttempts: options.maxAttempts ?? (deadLetterTopic ? DLQ_MAX_ATTEMPTS : s.maxAttempts),
        initialBackoffMs: options.initialBackoffMs ?? s.initialBackoffMs,
        backoffMultiplier: options.backoffMultiplier ?? s.backoffMultiplier,
        maxBackoffMs: options.maxBackoffMs ?? s.maxBackoffMs,
        visibilityTimeoutMs: options.visibilityTimeoutMs ?? s.visibilityTimeoutMs,
        deadLetterTopic,
      },
      this.log.child({ topic, group }),
      (pk) => this.notify(topic + DLQ_SUFFIX, pk),
    );
    this.store.subscribe(topic, group, Date.now());
    list.push(consumer as Consumer);
    this.consumers.set(topic, list);
    if (this.started) consumer.start();
    return consumer;
  }

  /** Whether the consumers' workers are running (between start and stop). */
  get running(): boolean {
    return this.started;
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    this.lastDataVersion = dataVersion(this.store.db);
    for (const c of this.allConsumers()) c.start();
    this.pollTimer = setInterval(() => this.poll(), this.settings.pollIntervalMs);
    this.pollTimer.unref();
  }

  /** Stops every consumer; deliveries still running after `timeoutMs` are abandoned for redelivery. */
  async stop(timeoutMs: number): Promise<void> {
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.pollTimer = undefined;
    await Promise.all(this.allConsumers().map((c) => c.stop(timeoutMs)));
    this.started = false;
  }

  /** Deletes consumed messages older than the retention; returns how many. */
  collectGarbage(now = Date.now()): number {
    const cutoff = now - this.settings.dedupRetentionMs;
    let total = 0;
    for (let i = 0; i < GC_MAX_BATCHES_PER_TICK; i++) {
      const n = this.store.gc(cutoff, GC_BATCH);
      total += n;
      if (n < GC_BATCH) break;
    }
    if (total > 0) this.log.info({ deleted: total }, 'queue garbage collected');
    return total;
  }

  private poll(): void {
    try {
      // Another connection (the CLI replaying dead letters) committed: look at every partition.
      const version = dataVersion(this.store.db);
      if (version !== this.lastDataVersion) {
        this.lastDataVersion = version;
        for (const c of this.allConsumers()) c.sweep();
      }
      const now = Date.now();
      if (now - this.lastGcAt >= GC_INTERVAL_MS) {
        this.lastGcAt = now;
        this.collectGarbage(now);
      }
    } catch (err) {
      this.log.error({ err }, 'queue poll failed');
    }
  }

  private allConsumers(): Consumer[] {
    return [...this.consumers.values()].flat();
  }
}

export function dlqTopicOf(topic: string): string {
  checkName('topic', topic);
  return topic.endsWith(DLQ_SUFFIX) ? topic : topic + DLQ_SUFFIX;
}
