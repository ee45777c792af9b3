import { afterEach, describe, expect, it } from 'vitest';
import { openTestQueue, type TestQueue } from '../../test/support/queue.ts';
import { sleep, waitFor } from '../../test/support/wait.ts';
import { InvalidRequestError, PermanentError, RetryableError } from '../errors.ts';
import type { QueueMessage } from './types.ts';

let t: TestQueue;
afterEach(async () => {
  await t?.close();
});

function count(sql: string): number {
  return (t.db.prepare(sql).get() as { n: number }).n;
}

describe('publish', () => {
  it('stores a repeated (topic, partition, id) once, also after the first was consumed', async () => {
    t = openTestQueue();
    const seen: string[] = [];
    t.queue.consume<{ n: number }>('ci.event', 'ingest', (m) => {
      seen.push(`${m.id}:${m.payload.n}`);
    });
    t.queue.start();
    expect(t.queue.publish('ci.event', 'p1', 'a', { n: 1 }).published).toBe(true);
    expect(t.queue.publish('ci.event', 'p1', 'a', { n: 2 }).published).toBe(false);
    await waitFor(() => seen.length === 1, 'first delivery');
    await waitFor(() => count('SELECT COUNT(*) AS n FROM queue_delivery') === 0, 'ack');
    expect(t.queue.publish('ci.event', 'p1', 'a', { n: 3 }).published).toBe(false);
    // Same id in another partition or topic is a different message.
    expect(t.queue.publish('ci.event', 'p2', 'a', { n: 4 }).published).toBe(true);
    await waitFor(() => seen.length === 2, 'second delivery');
    await waitFor(() => count('SELECT COUNT(*) AS n FROM queue_delivery') === 0, 'every delivery acked');
    expect(seen).toEqual(['a:1', 'a:4']);
    expect(count("SELECT COUNT(*) AS n FROM queue_messages WHERE topic = 'ci.event'")).toBe(2);
  });

  it.each([
    ['an empty topic', () => t.queue.publish('', 'pk', 'id', {}), /topic/],
    ['an empty partition key', () => t.queue.publish('t', '', 'id', {}), /partition key/],
    ['an empty id', () => t.queue.publish('t', 'pk', '', {}), /message id/],
    ['a bigint', () => t.queue.publish('t', 'pk', 'id', { n: 1n }), /payload\.n is a bigint/],
    ['undefined', () => t.queue.publish('t', 'pk', 'id', undefined), /payload is undefined/],
    ['a function', () => t.queue.publish('t', 'pk', 'id', { f: () => 1 }), /payload\.f is a function/],
    ['NaN', () => t.queue.publish('t', 'pk', 'id', [1, Number.NaN]), /payload\[1\] is NaN/],
    ['a Date', () => t.queue.publish('t', 'pk', 'id', { d: new Date() }), /payload\.d is a Date/],
    [
      'non-string metadata',
      () => t.queue.publish('t', 'pk', 'id', {}, { metadata: { a: 1 as never } }),
      /metadata\.a/,
    ],
    ['a dead-letter topic', () => t.queue.publish('t_dlq', 'pk', 'id', {}), /dead-letter topic/],
  ])('refuses %s with a clear error and stores nothing', (_what, publish, message) => {
    t = openTestQueue();
    expect(publish).toThrow(InvalidRequestError);
    expect(publish).toThrow(message);
    expect(count('SELECT COUNT(*) AS n FROM queue_messages')).toBe(0);
  });

  it('refuses a cyclic payload', () => {
    t = openTestQueue();
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => t.queue.publish('t', 'pk', 'id', cyclic)).toThrow(/cycle/);
  });

  it('stores a batch with one bad message not at all', () => {
    t = openTestQueue();
    expect(() =>
      t.queue.publishBatch([
        { topic: 't', partitionKey: 'pk', id: '1', payload: {} },
        { topic: 't', partitionKey: 'pk', id: '2', payload: { bad: Symbol('x') } },
      ]),
    ).toThrow(/payload\.bad is a symbol/);
    expect(count('SELECT COUNT(*) AS n FROM queue_messages')).toBe(0);
  });

  it('fans a message out to every consumer group of the topic', async () => {
    t = openTestQueue();
    const got: string[] = [];
    t.queue.consume('land.merge.result', 'promotion', (m) => {
      got.push(`promotion:${m.id}`);
    });
    t.queue.consume('land.merge.result', 'clients', (m) => {
      got.push(`clients:${m.id}`);
    });
    t.queue.start();
    t.queue.publish('land.merge.result', 'repo/main', 'r1', { ok: true }, { metadata: { source: 'test' } });
    await waitFor(() => got.length === 2, 'both groups');
    expect(got.sort()).toEqual(['clients:r1', 'promotion:r1']);
  });
});

describe('delivery order', () => {
  it('delivers one partition in order, one at a time, while partitions run in parallel', async () => {
    t = openTestQueue();
    const order: Record<string, number[]> = { A: [], B: [] };
    const running: Record<string, number> = { A: 0, B: 0 };
    let maxPerPartition = 0;
    let maxOverall = 0;
    let overall = 0;
    t.queue.consume<{ n: number }>('work', 'g', async (m) => {
      running[m.partitionKey]! += 1;
      overall += 1;
      maxPerPartition = Math.max(maxPerPartition, running[m.partitionKey]!);
      maxOverall = Math.max(maxOverall, overall);
      await sleep(20);
      order[m.partitionKey]!.push(m.payload.n);
      running[m.partitionKey]! -= 1;
      overall -= 1;
    });
    for (let n = 0; n < 8; n++) {
      t.queue.publish('work', 'A', `a${n}`, { n });
      t.queue.publish('work', 'B', `b${n}`, { n });
    }
    t.queue.start();
    await waitFor(() => order.A!.length === 8 && order.B!.length === 8, 'all deliveries');
    expect(order.A).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(order.B).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(maxPerPartition).toBe(1);
    expect(maxOverall).toBe(2);
  });

  it('never runs more handlers at once than the concurrency', async () => {
    t = openTestQueue({ concurrency: 3 });
    let running = 0;
    let max = 0;
    let done = 0;
    t.queue.consume('work', 'g', async () => {
      running++;
      max = Math.max(max, running);
      await sleep(10);
      running--;
      done++;
    });
    for (let i = 0; i < 20; i++) t.queue.publish('work', `p${i}`, 'm', {});
    t.queue.start();
    await waitFor(() => done === 20, 'all deliveries');
    expect(max).toBe(3);
  });
});

describe('failures', () => {
  it('redelivers a retryable failure after 1000 ms then 2000 ms without blocking later messages', async () => {
    t = openTestQueue();
    const attempts: number[] = [];
    const events: string[] = [];
    t.queue.consume('work', 'g', (m, d) => {
      if (m.id === 'bad') {
        attempts.push(Date.now());
        events.push(`bad#${d.attempt}`);
        throw new RetryableError('remote unreachable');
      }
      events.push(m.id);
    });
    t.queue.start();
    t.queue.publish('work', 'P', 'bad', {});
    await waitFor(() => attempts.length === 1, 'first attempt');
    t.queue.publish('work', 'P', 'later', {});
    await waitFor(() => attempts.length === 3, 'third attempt', 8000);
    const gap1 = attempts[1]! - attempts[0]!;
    const gap2 = attempts[2]! - attempts[1]!;
    // Lower bounds only: a loaded machine may run late, never early.
    expect(gap1).toBeGreaterThanOrEqual(1000);
    expect(gap2).toBeGreaterThanOrEqual(2000);
    expect(gap2).toBeGreaterThan(gap1);
    // The later message went through while the failing one waited out its first backoff.
    expect(events.slice(0, 3)).toEqual(['bad#1', 'later', 'bad#2']);
  });

  it('dead-letters the message on the third failure with dlq.last_error set', async () => {
    t = openTestQueue({ initialBackoffMs: 10 });
    let calls = 0;
    t.queue.consume('work', 'g', () => {
      calls++;
      throw new Error(`boom ${calls}`);
    });
    t.queue.start();
    t.queue.publish('work', 'P', 'm1', { x: 1 }, { metadata: { trace: 'abc' } });
    await waitFor(() => t.queue.deadLetters('work').length === 1, 'dead letter');
    // Dead-lettering removed the delivery in the same transaction: nothing is left to call again.
    expect(t.db.prepare(`SELECT count(*) AS n FROM queue_delivery WHERE topic = 'work'`).get()).toEqual({
      n: 0,
    });
    expect(calls).toBe(3);
    const [letter] = t.queue.deadLetters('work');
    const meta = JSON.parse(letter!.metadata);
    expect(letter).toMatchObject({ topic: 'work_dlq', partitionKey: 'P', id: 'm1', failureCount: 3 });
    expect(JSON.parse(letter!.payload)).toEqual({ x: 1 });
    expect(meta).toMatchObject({
      trace: 'abc',
      'dlq.original_topic': 'work',
      'dlq.failure_count': '3',
      'dlq.last_error': 'boom 3',
      'dlq.consumer_groups': 'g',
    });
    expect(Date.parse(meta['dlq.failed_at'])).toBeGreaterThan(0);
    expect(count('SELECT COUNT(*) AS n FROM queue_delivery')).toBe(0);
  });

  it('dead-letters a PermanentError on the first attempt', async () => {
    t = openTestQueue();
    let calls = 0;
    t.queue.consume('work', 'g', () => {
      calls++;
      throw new PermanentError('malformed payload');
    });
    t.queue.start();
    t.queue.publish('work', 'P', 'm1', {});
    await waitFor(() => t.queue.deadLetters('work').length === 1, 'dead letter');
    expect(calls).toBe(1);
    expect(t.queue.deadLetters('work')[0]).toMatchObject({ failureCount: 1, lastError: 'malformed payload' });
  });

  it('dead-letters a corrupt stored payload instead of crashing, and keeps serving the partition', async () => {
    t = openTestQueue();
    const seen: string[] = [];
    t.queue.consume('work', 'g', (m) => {
      seen.push(m.id);
    });
    t.queue.publish('work', 'P', 'corrupt', { ok: true });
    t.queue.publish('work', 'P', 'fine', { ok: true });
    t.db.prepare(`UPDATE queue_messages SET payload = '{"ok": tru' WHERE id = 'corrupt'`).run();
    t.queue.start();
    await waitFor(() => seen.includes('fine'), 'the next message');
    expect(seen).toEqual(['fine']);
    const [letter] = t.queue.deadLetters('work');
    expect(letter?.lastError).toMatch(/corrupt message/);
    expect(letter?.payload).toBe('{"ok": tru');
  });
});

describe('hold', () => {
  it('redelivers a held message after the hold with attempt 1, and blocks its partition meanwhile', async () => {
    t = openTestQueue();
    const log: Array<{ id: string; attempt: number; at: number }> = [];
    let heldOnce = false;
    let heldAt = 0;
    t.queue.consume('work', 'g', (m, d) => {
      log.push({ id: m.id, attempt: d.attempt, at: Date.now() });
      if (m.id === 'first' && !heldOnce) {
        heldOnce = true;
        heldAt = Date.now();
        d.hold(300);
      }
    });
    t.queue.start();
    t.queue.publish('work', 'P', 'first', {});
    t.queue.publish('work', 'P', 'second', {});
    t.queue.publish('work', 'Q', 'other', {});
    await waitFor(() => log.length === 4, 'all deliveries');
    const ids = log.map((e) => e.id);
    expect(ids.indexOf('second')).toBeGreaterThan(ids.lastIndexOf('first'));
    const redelivery = log.filter((e) => e.id === 'first')[1]!;
    expect(redelivery.attempt).toBe(1);
    expect(redelivery.at - heldAt).toBeGreaterThanOrEqual(300);
    // Another partition is not held up: it went through while 'first' was held.
    expect(ids.indexOf('other')).toBeLessThan(ids.lastIndexOf('first'));
  });

  it('wake() ends a hold early, only for held messages of that partition', async () => {
    t = openTestQueue();
    const held = () =>
      (
        t.db
          .prepare(
            `SELECT count(*) AS n FROM queue_delivery WHERE postponed = 1 AND in_flight = 0 AND invisible_until > ?`,
          )
          .get(Date.now()) as { n: number }
      ).n;
    const pending = () => (t.db.prepare(`SELECT count(*) AS n FROM queue_delivery`).get() as { n: number }).n;
    const seen: string[] = [];
    t.queue.consume('work', 'g', (m, d) => {
      seen.push(m.id);
      if (seen.filter((id) => id === m.id).length === 1) d.hold(60_000);
    });
    t.queue.start();
    t.queue.publish('work', 'P', 'a', {});
    t.queue.publish('work', 'Q', 'b', {});
    await waitFor(() => seen.length === 2, 'first deliveries');
    await waitFor(() => held() === 2, 'both held');
    expect(t.queue.wake('work', 'R')).toBe(false);
    expect(t.queue.wake('work', 'P')).toBe(true);
    await waitFor(() => seen.length === 3, 'the woken delivery');
    await waitFor(() => held() === 1 && pending() === 1, 'a handled, b still held');
    expect(seen.sort()).toEqual(['a', 'a', 'b']);
  });

  it('resets the attempt counter: a message failing after a hold starts again at attempt 1', async () => {
    t = openTestQueue({ initialBackoffMs: 10 });
    const attempts: number[] = [];
    t.queue.consume('work', 'g', (_m, d) => {
      attempts.push(d.attempt);
      if (attempts.length === 1) throw new Error('fail first');
      if (attempts.length === 2) d.hold(10);
    });
    t.queue.start();
    t.queue.publish('work', 'P', 'm', {});
    await waitFor(() => attempts.length === 3, 'three deliveries');
    expect(attempts).toEqual([1, 2, 1]);
  });

  it('lets a thrown error win over a recorded hold', async () => {
    t = openTestQueue({ initialBackoffMs: 10, maxAttempts: 2 });
    const attempts: number[] = [];
    t.queue.consume('work', 'g', (_m, d) => {
      attempts.push(d.attempt);
      d.hold(60_000);
      throw new Error('failed after hold');
    });
    t.queue.start();
    t.queue.publish('work', 'P', 'm', {});
    await waitFor(() => t.queue.deadLetters('work').length === 1, 'dead letter');
    expect(attempts).toEqual([1, 2]);
  });
});

describe('lost deliveries', () => {
  it('redelivers a message whose handler never answers after the visibility timeout, as the next attempt', async () => {
    t = openTestQueue({ visibilityTimeoutMs: 300 });
    const deliveries: Array<{ attempt: number; at: number; signal: AbortSignal }> = [];
    t.queue.consume('work', 'g', (_m, d) => {
      deliveries.push({ attempt: d.attempt, at: Date.now(), signal: d.signal });
      if (d.attempt === 1) return new Promise<void>(() => {}); // hangs forever
    });
    t.queue.start();
    t.queue.publish('work', 'P', 'm', {});
    await waitFor(() => deliveries.length === 2, 'redelivery');
    expect(deliveries[1]!.attempt).toBe(2);
    expect(deliveries[1]!.at - deliveries[0]!.at).toBeGreaterThanOrEqual(300);
    expect(deliveries[0]!.signal.aborted).toBe(true);
    await waitFor(() => count('SELECT COUNT(*) AS n FROM queue_delivery') === 0, 'ack of attempt 2');
  });

  it('dead-letters with "exceeded retry limit" when the last attempt is lost', async () => {
    t = openTestQueue({ visibilityTimeoutMs: 100, maxAttempts: 2 });
    let calls = 0;
    t.queue.consume('work', 'g', () => {
      calls++;
      return new Promise<void>(() => {});
    });
    t.queue.start();
    t.queue.publish('work', 'P', 'm', {});
    await waitFor(() => t.queue.deadLetters('work').length === 1, 'dead letter');
    expect(calls).toBe(2);
    expect(t.queue.deadLetters('work')[0]!.lastError).toBe('exceeded retry limit');
  });

  it('on stop, waits for running handlers and leaves unfinished ones visible for the next start', async () => {
    t = openTestQueue();
    let finished = 0;
    let started = 0;
    t.queue.consume('work', 'g', async (m) => {
      started++;
      await sleep(m.id === 'slow' ? 10_000 : 50);
      finished++;
    });
    t.queue.start();
    t.queue.publish('work', 'A', 'quick', {});
    t.queue.publish('work', 'B', 'slow', {});
    await waitFor(() => started === 2, 'both handlers running');
    await t.queue.stop(300);
    expect(finished).toBe(1);
    const rows = t.db
      .prepare('SELECT partition_key AS pk, in_flight, invisible_until FROM queue_delivery')
      .all() as Array<{
      pk: string;
      in_flight: number;
      invisible_until: number;
    }>;
    expect(rows).toHaveLength(1);
    expect(rows[0]!.pk).toBe('B');
    expect(rows[0]!.invisible_until).toBeLessThanOrEqual(Date.now());
  });
});

describe('dead-letter topics', () => {
  it('replays a dead letter to its original topic and group, attempts reset', async () => {
    t = openTestQueue({ initialBackoffMs: 10, maxAttempts: 1 });
    let fail = true;
    const delivered: Array<QueueMessage & { attempt: number }> = [];
    t.queue.consume('work', 'g', (m, d) => {
      delivered.push({ ...m, attempt: d.attempt });
      if (fail) throw new Error('down');
    });
    t.queue.start();
    t.queue.publish('work', 'P', 'm', { v: 1 });
    await waitFor(() => t.queue.deadLetters('work').length === 1, 'dead letter');
    fail = false;
    expect(t.queue.replayDeadLetters('work', 'other-id')).toBe(0);
    expect(t.queue.replayDeadLetters('work', 'm')).toBe(1);
    await waitFor(() => delivered.length === 2, 'replayed delivery');
    expect(delivered[1]).toMatchObject({ id: 'm', partitionKey: 'P', payload: { v: 1 }, attempt: 1 });
    expect(delivered[1]!.offset).toBe(delivered[0]!.offset);
    expect(t.queue.deadLetters('work')).toHaveLength(0);
    await waitFor(() => count('SELECT COUNT(*) AS n FROM queue_delivery') === 0, 'ack');
  });

  it('replays a letter whose original was collected to the failed group only', async () => {
    t = openTestQueue({ maxAttempts: 1, dedupRetentionMs: 1000 });
    let fail = true;
    const got: string[] = [];
    t.queue.consume('work', 'flaky', (m) => {
      if (fail) throw new Error('down');
      got.push(`flaky:${m.id}`);
    });
    t.queue.consume('work', 'steady', (m) => {
      got.push(`steady:${m.id}`);
    });
    t.queue.start();
    t.queue.publish('work', 'P', 'm', { v: 1 });
    await waitFor(() => t.queue.deadLetters('work').length === 1 && got.length === 1, 'dead letter and ack');
    expect(t.queue.collectGarbage(Date.now() + 5000)).toBe(1); // the original; the letter stays
    fail = false;
    expect(t.queue.replayDeadLetters('work')).toBe(1);
    await waitFor(() => got.length === 2, 'replayed delivery');
    // Replayed to the group that failed it only: nothing is left for 'steady' to get again.
    await waitFor(() => count('SELECT COUNT(*) AS n FROM queue_delivery') === 0, 'every delivery acked');
    expect(got).toEqual(['steady:m', 'flaky:m']);
  });

  it('drops a dead letter', async () => {
    t = openTestQueue({ maxAttempts: 1 });
    t.queue.consume('work', 'g', () => {
      throw new Error('down');
    });
    t.queue.start();
    t.queue.publish('work', 'P', 'm', {});
    await waitFor(() => t.queue.deadLetters('work').length === 1, 'dead letter');
    expect(t.queue.dropDeadLetters('work', 'nope')).toBe(0);
    expect(t.queue.dropDeadLetters('work_dlq', 'm')).toBe(1);
    expect(t.queue.deadLetters('work')).toHaveLength(0);
  });

  it('retries a failing dead-letter consumer instead of dead-lettering again', async () => {
    t = openTestQueue({ initialBackoffMs: 5, maxBackoffMs: 5, maxAttempts: 1 });
    t.queue.consume('work', 'g', () => {
      throw new PermanentError('bad');
    });
    let reconcilerCalls = 0;
    t.queue.consume('work_dlq', 'reconciler', () => {
      reconcilerCalls++;
      if (reconcilerCalls < 5) throw new PermanentError('still bad');
    });
    t.queue.start();
    t.queue.publish('work', 'P', 'm', {});
    await waitFor(() => reconcilerCalls === 5, 'reconciler retries');
    await waitFor(() => count('SELECT COUNT(*) AS n FROM queue_delivery') === 0, 'reconciler ack');
    expect(count("SELECT COUNT(*) AS n FROM queue_messages WHERE topic = 'work_dlq_dlq'")).toBe(0);
  });
});

describe('garbage collection', () => {
  it('deletes consumed messages past retention and keeps pending ones and dead letters', async () => {
    t = openTestQueue({ dedupRetentionMs: 1000, maxAttempts: 1 });
    t.queue.consume('work', 'g', (m) => {
      if (m.id === 'dead') throw new Error('x');
    });
    t.queue.start();
    t.queue.publish('work', 'P', 'done', {});
    t.queue.publish('work', 'P', 'dead', {});
    await waitFor(() => t.queue.deadLetters('work').length === 1, 'dead letter');
    await waitFor(() => count('SELECT COUNT(*) AS n FROM queue_delivery') === 0, 'acks');
    await t.queue.stop(100);
    t.queue.publish('work', 'P', 'pending', {});
    const later = Date.now() + 5000;
    expect(t.queue.collectGarbage(later)).toBe(2);
    const left = t.db.prepare('SELECT topic, id FROM queue_messages ORDER BY "offset"').all();
    expect(left).toEqual([
      { topic: 'work_dlq', id: 'dead' },
      { topic: 'work', id: 'pending' },
    ]);
    // Within retention a repeat is still ignored; after collection it is a new message.
    expect(t.queue.publish('work', 'P', 'done', {}).published).toBe(true);
  });
});
