/**
 * All SQL of the durable queue. Synchronous, short transactions; no I/O besides SQLite.
 * The semantics (which row may be delivered, what an outcome does) live in src/queue/.
 */
import type { Statement } from 'better-sqlite3';
import type { Db } from './database.ts';

export interface StoredMessageInput {
  topic: string;
  partitionKey: string;
  id: string;
  payload: string;
  metadata: string;
}

export interface PublishOutcome {
  /** False when (topic, partitionKey, id) was already stored: nothing was written. */
  published: boolean;
  offset: number;
}

export interface DeliveryRow {
  offset: number;
  invisibleUntil: number;
  attemptCount: number;
  postponed: boolean;
  inFlight: boolean;
}

export interface StoredMessage {
  offset: number;
  topic: string;
  partitionKey: string;
  id: string;
  payload: string;
  metadata: string;
  publishedAt: number;
}

export interface DeadLetter extends StoredMessage {
  originalTopic: string;
  failedAt: number;
  failureCount: number;
  lastError: string;
}

export interface GroupStats {
  topic: string;
  group: string;
  ready: number;
  retrying: number;
  inFlight: number;
  held: number;
}

export interface DeliveryKey {
  group: string;
  topic: string;
  partitionKey: string;
  offset: number;
}

export const DLQ_SUFFIX = '_dlq';
const GROUPS_KEY = 'dlq.consumer_groups';

export class QueueStore {
  readonly db: Db;
  private readonly s: Record<string, Statement>;
  private readonly publishTx: (messages: readonly StoredMessageInput[], now: number) => PublishOutcome[];

  constructor(db: Db) {
    this.db = db;
    const p = (sql: string) => db.prepare(sql);
    this.s = {
      insert: p(`INSERT INTO queue_messages (topic, partition_key, id, payload, metadata, published_at)
                 VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (topic, partition_key, id) DO NOTHING`),
      existing: p(`SELECT "offset" FROM queue_messages WHERE topic = ? AND partition_key = ? AND id = ?`),
      unlisted: p(`DELETE FROM queue_delivery WHERE topic = ? AND partition_key = ? AND msg_offset = ?
                   AND consumer_group NOT IN (SELECT value FROM json_each(?))`),
      subscribe: p(`INSERT INTO queue_subscriptions (topic, consumer_group, created_at) VALUES (?, ?, ?)
                    ON CONFLICT DO NOTHING`),
      groupsOf: p(`SELECT consumer_group AS g FROM queue_subscriptions WHERE topic = ?`),
      partitions: p(`WITH RECURSIVE p(k) AS (
                       SELECT (SELECT partition_key FROM queue_delivery WHERE consumer_group = @group AND topic = @topic
                               ORDER BY partition_key LIMIT 1)
                       UNION ALL
                       SELECT (SELECT partition_key FROM queue_delivery WHERE consumer_group = @group AND topic = @topic
                               AND partition_key > p.k ORDER BY partition_key LIMIT 1) FROM p WHERE p.k IS NOT NULL)
                     SELECT k FROM p WHERE k IS NOT NULL`),
      head: p(`SELECT msg_offset AS offset, invisible_until AS invisibleUntil, attempt_count AS attemptCount,
                      postponed, in_flight AS inFlight
               FROM queue_delivery WHERE consumer_group = ? AND topic = ? AND partition_key = ? AND msg_offset > ?
               ORDER BY msg_offset LIMIT ?`),
      claim: p(`UPDATE queue_delivery SET in_flight = 1, postponed = 0, attempt_count = attempt_count + 1,
                       invisible_until = ?
                WHERE consumer_group = ? AND topic = ? AND partition_key = ? AND msg_offset = ? AND invisible_until <= ?
                RETURNING attempt_count AS attempt`),
      message: p(`SELECT "offset" AS offset, topic, partition_key AS partitionKey, id, payload, metadata,
                         published_at AS publishedAt FROM queue_messages WHERE "offset" = ?`),
      ack: p(`DELETE FROM queue_delivery WHERE consumer_group = ? AND topic = ? AND partition_key = ? AND msg_offset = ?
              AND in_flight = 1 AND attempt_count = ?`),
      nack: p(`UPDATE queue_delivery SET in_flight = 0, invisible_until = ?
               WHERE consumer_group = ? AND topic = ? AND partition_key = ? AND msg_offset = ?
               AND in_flight = 1 AND attempt_count = ?`),
      hold: p(`UPDATE queue_delivery SET in_flight = 0, postponed = 1, attempt_count = 0, invisible_until = ?
               WHERE consumer_group = ? AND topic = ? AND partition_key = ? AND msg_offset = ?
               AND in_flight = 1 AND attempt_count = ?`),
      wake: p(`UPDATE queue_delivery SET invisible_until = 0
               WHERE topic = ? AND partition_key = ? AND postponed = 1 AND in_flight = 0 AND invisible_until > ?`),
      recover: p(`UPDATE queue_delivery SET in_flight = 0, invisible_until = 0
                  WHERE topic = ? AND consumer_group = ? AND in_flight = 1`),
      release: p(`UPDATE queue_delivery SET invisible_until = ?
                  WHERE consumer_group = ? AND topic = ? AND partition_key = ? AND msg_offset = ? AND in_flight = 1`),
      removeDelivery:
        p(`DELETE FROM queue_delivery WHERE consumer_group = ? AND topic = ? AND partition_key = ?
                         AND msg_offset = ?`),
      dlqExisting: p(
        `SELECT "offset" AS offset, metadata FROM queue_messages WHERE topic = ? AND partition_key = ? AND id = ?`,
      ),
      dlqInsert:
        p(`INSERT INTO queue_messages (topic, partition_key, id, payload, metadata, published_at, failed_at,
                      failure_count, last_error, original_topic) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
      dlqUpdate: p(`UPDATE queue_messages SET metadata = ?, failed_at = ?, failure_count = ?, last_error = ?
                    WHERE "offset" = ?`),
      dlqList: p(`SELECT "offset" AS offset, topic, partition_key AS partitionKey, id, payload, metadata,
                         published_at AS publishedAt, original_topic AS originalTopic, failed_at AS failedAt,
                         failure_count AS failureCount, last_error AS lastError
                  FROM queue_messages WHERE topic = ? AND original_topic IS NOT NULL ORDER BY "offset"`),
      deleteMessage: p(`DELETE FROM queue_messages WHERE "offset" = ?`),
      deleteDeliveries: p(
        `DELETE FROM queue_delivery WHERE topic = ? AND partition_key = ? AND msg_offset = ?`,
      ),
      redeliver:
        p(`INSERT INTO queue_delivery (consumer_group, topic, partition_key, msg_offset) VALUES (?, ?, ?, ?)
                    ON CONFLICT DO UPDATE SET invisible_until = 0, attempt_count = 0, postponed = 0, in_flight = 0`),
      firstFrom: p(`SELECT "offset" AS offset, published_at AS publishedAt FROM queue_messages
                    WHERE "offset" >= ? ORDER BY "offset" LIMIT 1`),
      bounds: p(`SELECT MIN("offset") AS lo, MAX("offset") AS hi FROM queue_messages`),
      gc: p(`DELETE FROM queue_messages WHERE "offset" IN (
               SELECT m."offset" FROM queue_messages m
               WHERE m."offset" <= ? AND m.published_at < ?
                 AND NOT EXISTS (SELECT 1 FROM queue_delivery d WHERE d.topic = m.topic
                                 AND d.partition_key = m.partition_key AND d.msg_offset = m."offset")
                 AND (m.original_topic IS NULL
                      OR EXISTS (SELECT 1 FROM queue_subscriptions s WHERE s.topic = m.topic))
               LIMIT ?)`),
      stats: p(`SELECT topic, consumer_group AS "group",
                  SUM(invisible_until <= @now) AS ready,
                  SUM(invisible_until > @now AND in_flight = 0 AND postponed = 0) AS retrying,
                  SUM(invisible_until > @now AND in_flight = 1) AS inFlight,
                  SUM(invisible_until > @now AND postponed = 1) AS held
                FROM queue_delivery GROUP BY topic, consumer_group`),
      subscriptions: p(
        `SELECT topic, consumer_group AS "group" FROM queue_subscriptions ORDER BY topic, consumer_group`,
      ),
      deadCounts: p(`SELECT original_topic AS topic, COUNT(*) AS dead FROM queue_messages
                     WHERE original_topic IS NOT NULL GROUP BY original_topic`),
    };
    this.publishTx = db.transaction((messages: readonly StoredMessageInput[], now: number) =>
      messages.map((m) => this.publishOne(m, now)),
    );
  }

  /**
   * Stores the messages atomically; the schema's trigger fans each new one out to the topic's
   * groups. One message is one autocommit statement: no BEGIN/COMMIT round trips.
   */
  publish(messages: readonly StoredMessageInput[], now: number): PublishOutcome[] {
    return messages.length === 1 ? [this.publishOne(messages[0]!, now)] : this.publishTx(messages, now);
  }

  private publishOne(m: StoredMessageInput, now: number): PublishOutcome {
    const res = this.s.insert!.run(m.topic, m.partitionKey, m.id, m.payload, m.metadata, now);
    if (res.changes === 0) {
      const existing = this.s.existing!.get(m.topic, m.partitionKey, m.id) as { offset: number };
      return { published: false, offset: existing.offset };
    }
    return { published: true, offset: Number(res.lastInsertRowid) };
  }

  subscribe(topic: string, group: string, now: number): void {
    this.s.subscribe!.run(topic, group, now);
  }

  partitions(group: string, topic: string): string[] {
    return (this.s.partitions!.all({ group, topic }) as { k: string }[]).map((r) => r.k);
  }

  head(
    group: string,
    topic: string,
    partitionKey: string,
    afterOffset: number,
    limit: number,
  ): DeliveryRow[] {
    const rows = this.s.head!.all(group, topic, partitionKey, afterOffset, limit) as Array<
      Omit<DeliveryRow, 'postponed' | 'inFlight'> & { postponed: number; inFlight: number }
    >;
    return rows.map((r) => ({ ...r, postponed: r.postponed === 1, inFlight: r.inFlight === 1 }));
  }

  /** Marks a visible row in flight until `leaseUntil`; returns the new attempt number. */
  claim(key: DeliveryKey, now: number, leaseUntil: number): number | undefined {
    const row = this.s.claim!.get(leaseUntil, key.group, key.topic, key.partitionKey, key.offset, now) as
      | { attempt: number }
      | undefined;
    return row?.attempt;
  }

  message(offset: number): StoredMessage | undefined {
    return this.s.message!.get(offset) as StoredMessage | undefined;
  }

  /** The outcomes below apply only to the delivery `attempt` still in flight; false if stale. */
  ack(key: DeliveryKey, attempt: number): boolean {
    return this.s.ack!.run(key.group, key.topic, key.partitionKey, key.offset, attempt).changes === 1;
  }

  nack(key: DeliveryKey, attempt: number, invisibleUntil: number): boolean {
    const r = this.s.nack!.run(invisibleUntil, key.group, key.topic, key.partitionKey, key.offset, attempt);
    return r.changes === 1;
  }

  hold(key: DeliveryKey, attempt: number, invisibleUntil: number): boolean {
    const r = this.s.hold!.run(invisibleUntil, key.group, key.topic, key.partitionKey, key.offset, attempt);
    return r.changes === 1;
  }

  /** Ends the holds of a partition's postponed deliveries (every group); returns how many. */
  wake(topic: string, partitionKey: string, now: number): number {
    return this.s.wake!.run(topic, partitionKey, now).changes;
  }

  /**
   * Every in-flight delivery becomes visible now (attempts stay counted). Only for a process that
   * knows no other consumer is alive, i.e. the instance-lock holder at startup.
   */
  /** Makes the group's in-flight rows of `topic` visible now (their holder died). */
  recover(topic: string, group: string): number {
    return this.s.recover!.run(topic, group).changes;
  }

  /** Makes abandoned in-flight rows visible now (the attempt stays counted). */
  release(keys: readonly DeliveryKey[], now: number): void {
    this.db.transaction(() => {
      for (const k of keys) this.s.release!.run(now, k.group, k.topic, k.partitionKey, k.offset);
    })();
  }

  /**
   * Moves the group's delivery of a message to `<topic>_dlq` atomically: the delivery row goes,
   * the dead letter (same partition key and id, with dlq.* metadata) is stored and fanned out to
   * the DLQ's own groups. A second group failing the same message joins the existing letter.
   * Returns false when the delivery was already resolved (a stale outcome).
   */
  deadLetter(key: DeliveryKey, failureCount: number, reason: string, now: number): boolean {
    return this.db.transaction(() => {
      if (this.s.removeDelivery!.run(key.group, key.topic, key.partitionKey, key.offset).changes !== 1)
        return false;
      const msg = this.message(key.offset);
      if (!msg) return true;
      const dlqTopic = key.topic + DLQ_SUFFIX;
      const prior = this.s.dlqExisting!.get(dlqTopic, msg.partitionKey, msg.id) as
        | { offset: number; metadata: string }
        | undefined;
      const groups = new Set(
        prior ? (parseMeta(prior.metadata)[GROUPS_KEY] ?? '').split(',').filter(Boolean) : [],
      );
      groups.add(key.group);
      const metadata = JSON.stringify({
        ...dlqBaseMetadata(msg.metadata),
        'dlq.original_topic': key.topic,
        'dlq.failure_count': String(failureCount),
        'dlq.last_error': reason,
        'dlq.failed_at': new Date(now).toISOString(),
        [GROUPS_KEY]: [...groups].join(','),
      });
      if (prior) {
        this.s.dlqUpdate!.run(metadata, now, failureCount, reason, prior.offset);
      } else {
        this.s.dlqInsert!.run(
          dlqTopic,
          msg.partitionKey,
          msg.id,
          msg.payload,
          metadata,
          now,
          now,
          failureCount,
          reason,
          key.topic,
        );
      }
      return true;
    })();
  }

  deadLetters(dlqTopic: string): DeadLetter[] {
    return this.s.dlqList!.all(dlqTopic) as DeadLetter[];
  }

  /**
   * Puts dead letters back on their original topic for the groups that failed them (all
   * current groups if unrecorded), attempts reset. The original message keeps its place in
   * the partition if it is still retained; otherwise it is published again at the tail.
   */
  replay(dlqTopic: string, id: string | undefined, now: number): number {
    return this.db.transaction(() => {
      let count = 0;
      for (const letter of this.deadLetters(dlqTopic)) {
        if (id !== undefined && letter.id !== id) continue;
        const meta = parseMeta(letter.metadata);
        let groups = (meta[GROUPS_KEY] ?? '').split(',').filter(Boolean);
        if (groups.length === 0)
          groups = (this.s.groupsOf!.all(letter.originalTopic) as { g: string }[]).map((r) => r.g);
        const original = this.s.existing!.get(letter.originalTopic, letter.partitionKey, letter.id) as
          | { offset: number }
          | undefined;
        let offset = original?.offset;
        if (offset === undefined) {
          // Collected meanwhile: publish it again, narrowing the trigger's fan-out to the groups below.
          const stripped = JSON.stringify(stripDlqKeys(meta));
          const res = this.s.insert!.run(
            letter.originalTopic,
            letter.partitionKey,
            letter.id,
            letter.payload,
            stripped,
            now,
          );
          offset = Number(res.lastInsertRowid);
          this.s.unlisted!.run(letter.originalTopic, letter.partitionKey, offset, JSON.stringify(groups));
        }
        for (const g of groups) this.s.redeliver!.run(g, letter.originalTopic, letter.partitionKey, offset);
        this.removeMessage(letter);
        count++;
      }
      return count;
    })();
  }

  drop(dlqTopic: string, id: string): number {
    return this.db.transaction(() => {
      const letters = this.deadLetters(dlqTopic).filter((l) => l.id === id);
      for (const l of letters) this.removeMessage(l);
      return letters.length;
    })();
  }

  private removeMessage(m: StoredMessage): void {
    this.s.deleteDeliveries!.run(m.topic, m.partitionKey, m.offset);
    this.s.deleteMessage!.run(m.offset);
  }

  /** Deletes up to `limit` messages published before `cutoff` that no group still has pending. */
  gc(cutoff: number, limit: number): number {
    const bound = this.lastOffsetBefore(cutoff);
    return bound === undefined ? 0 : this.s.gc!.run(bound, cutoff, limit).changes;
  }

  /**
   * The highest offset published before `cutoff`, by bisection over the log: offsets grow with
   * publish time, so the old messages are a prefix of it (a clock step back only blurs the
   * edge, and the published_at test in the delete keeps newer messages safe).
   */
  private lastOffsetBefore(cutoff: number): number | undefined {
    const { lo, hi } = this.s.bounds!.get() as { lo: number | null; hi: number | null };
    if (lo === null || hi === null) return undefined;
    let best: number | undefined;
    let low = lo;
    let high = hi;
    while (low <= high) {
      const mid = Math.floor((low + high) / 2);
      const row = this.s.firstFrom!.get(mid) as { offset: number; publishedAt: number } | undefined;
      if (row && row.offset <= high && row.publishedAt < cutoff) {
        best = row.offset;
        low = row.offset + 1;
      } else {
        high = mid - 1;
      }
    }
    return best;
  }

  stats(now: number): { groups: GroupStats[]; dead: Map<string, number> } {
    const byKey = new Map<string, GroupStats>();
    for (const sub of this.s.subscriptions!.all() as { topic: string; group: string }[]) {
      byKey.set(`${sub.topic}\0${sub.group}`, { ...sub, ready: 0, retrying: 0, inFlight: 0, held: 0 });
    }
    for (const row of this.s.stats!.all({ now }) as GroupStats[])
      byKey.set(`${row.topic}\0${row.group}`, row);
    const dead = new Map<string, number>();
    for (const row of this.s.deadCounts!.all() as { topic: string; dead: number }[])
      dead.set(row.topic, row.dead);
    return { groups: [...byKey.values()], dead };
  }
}

/** Stored metadata as an object; undefined when the text is not a JSON object. */
function metaObject(text: string): Record<string, string> | undefined {
  try {
    const v = JSON.parse(text) as unknown;
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, string>) : undefined;
  } catch {
    return undefined;
  }
}

function parseMeta(text: string): Record<string, string> {
  return metaObject(text) ?? {};
}

/** The original metadata of a letter; kept verbatim under a key when it cannot be parsed. */
function dlqBaseMetadata(text: string): Record<string, string> {
  return metaObject(text) ?? { 'dlq.original_metadata': text };
}

function stripDlqKeys(meta: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(meta).filter(([k]) => !k.startsWith('dlq.')));
}
