/**
 * Queue benchmark: publish throughput (single and batched) and publish→handler latency at
 * 2,000 msg/s over 1, 64 and 1024 partitions, each beside a baseline of plain INSERTs into a
 * bare table with the same pragmas (for latency: those inserts read back by a tight poller).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { type Db, openDatabase } from '../src/db/database.ts';
import { QueueStore } from '../src/db/queue-store.ts';
import { createLogger } from '../src/logger.ts';
import { Queue } from '../src/queue/index.ts';
import { fmt, percentile, printTable } from './stats.ts';

const SINGLE_N = 20_000;
const BATCH_N = 100_000;
const BATCH_SIZE = 100;
const RATE = 2000; // msg/s for the latency runs
const LATENCY_SECONDS = 5;
const PAYLOAD = {
  repo: 'did:plc:abcdefghijklmnop/app',
  sha: 'a'.repeat(40),
  workflow: 'build.yml',
  status: 'running',
};

export async function queueBench(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'treadle-bench-'));
  try {
    const single = [publishSingle(dir), bareSingle(dir)];
    const batched = [publishBatched(dir), bareBatched(dir)];
    console.log(
      `publish throughput (msg/s; ${fmt(SINGLE_N)} single publishes, ${fmt(BATCH_N)} in batches of ${BATCH_SIZE})`,
    );
    printTable(
      ['', 'treadle queue', 'bare INSERT', 'ratio'],
      [
        ['single', fmt(single[0]!), fmt(single[1]!), `${fmt((100 * single[0]!) / single[1]!)}%`],
        ['batched', fmt(batched[0]!), fmt(batched[1]!), `${fmt((100 * batched[0]!) / batched[1]!)}%`],
      ],
    );
    console.log(`\npublish → handler latency (ms) at ${fmt(RATE)} msg/s for ${LATENCY_SECONDS} s`);
    const rows: Array<Array<string | number>> = [];
    const base = await bareLatency(dir);
    for (const partitions of [1, 64, 1024]) {
      const l = await queueLatency(dir, partitions);
      rows.push([
        `${partitions} partition${partitions === 1 ? '' : 's'}`,
        fmt(l.p50, 2),
        fmt(l.p99, 2),
        fmt(l.max, 2),
        fmt(base.p50, 2),
        fmt(base.p99, 2),
        fmt(l.rate),
      ]);
    }
    printTable(['', 'p50', 'p99', 'max', 'bare p50', 'bare p99', 'handled/s'], rows);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function freshQueue(dir: string, name: string): { db: Db; queue: Queue } {
  const db = openDatabase(join(dir, `${name}.db`));
  return { db, queue: new Queue(new QueueStore(db), createLogger('silent')) };
}

function freshBare(dir: string, name: string): { db: Db; insert: (i: number) => void } {
  const db = openDatabase(join(dir, `${name}.db`), { migrate: false });
  db.exec(
    'CREATE TABLE bare (id INTEGER PRIMARY KEY, topic TEXT, partition_key TEXT, mid TEXT, payload TEXT, at REAL)',
  );
  const stmt = db.prepare('INSERT INTO bare (topic, partition_key, mid, payload, at) VALUES (?, ?, ?, ?, ?)');
  return {
    db,
    insert: (i) => stmt.run('bench', `p${i % 64}`, `m${i}`, JSON.stringify(PAYLOAD), performance.now()),
  };
}

function publishSingle(dir: string): number {
  const { db, queue } = freshQueue(dir, 'single');
  queue.consume('bench', 'g', () => {}); // a subscribed group, so each publish also fans out
  const t0 = performance.now();
  for (let i = 0; i < SINGLE_N; i++) queue.publish('bench', `p${i % 64}`, `m${i}`, PAYLOAD);
  const rate = SINGLE_N / ((performance.now() - t0) / 1000);
  db.close();
  return rate;
}

function bareSingle(dir: string): number {
  const { db, insert } = freshBare(dir, 'bare-single');
  const t0 = performance.now();
  for (let i = 0; i < SINGLE_N; i++) insert(i);
  const rate = SINGLE_N / ((performance.now() - t0) / 1000);
  db.close();
  return rate;
}

function publishBatched(dir: string): number {
  const { db, queue } = freshQueue(dir, 'batched');
  queue.consume('bench', 'g', () => {});
  const t0 = performance.now();
  for (let i = 0; i < BATCH_N; i += BATCH_SIZE) {
    const batch = [];
    for (let j = i; j < i + BATCH_SIZE; j++)
      batch.push({ topic: 'bench', partitionKey: `p${j % 64}`, id: `m${j}`, payload: PAYLOAD });
    queue.publishBatch(batch);
  }
  const rate = BATCH_N / ((performance.now() - t0) / 1000);
  db.close();
  return rate;
}

function bareBatched(dir: string): number {
  const { db, insert } = freshBare(dir, 'bare-batched');
  const batch = db.transaction((from: number) => {
    for (let j = from; j < from + BATCH_SIZE; j++) insert(j);
  });
  const t0 = performance.now();
  for (let i = 0; i < BATCH_N; i += BATCH_SIZE) batch(i);
  const rate = BATCH_N / ((performance.now() - t0) / 1000);
  db.close();
  return rate;
}

interface Latency {
  p50: number;
  p99: number;
  max: number;
  rate: number;
}

/** Publishes at RATE for LATENCY_SECONDS, paced per millisecond, and waits for every delivery. */
async function paced(publish: (i: number) => void, received: () => number): Promise<number> {
  const total = RATE * LATENCY_SECONDS;
  const t0 = performance.now();
  let sent = 0;
  while (sent < total) {
    const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * RATE));
    while (sent < due) publish(sent++);
    await new Promise((r) => setTimeout(r, 1));
  }
  while (received() < total) await new Promise((r) => setTimeout(r, 5));
  return total / ((performance.now() - t0) / 1000);
}

async function queueLatency(dir: string, partitions: number): Promise<Latency> {
  const { db, queue } = freshQueue(dir, `latency-${partitions}`);
  const samples: number[] = [];
  queue.consume<{ at: number }>('bench', 'g', (m) => {
    samples.push(performance.now() - m.payload.at);
  });
  queue.start();
  const rate = await paced(
    (i) => queue.publish('bench', `p${i % partitions}`, `m${i}`, { ...PAYLOAD, at: performance.now() }),
    () => samples.length,
  );
  await queue.stop(1000);
  db.close();
  return { p50: percentile(samples, 50), p99: percentile(samples, 99), max: Math.max(...samples), rate };
}

/** Baseline: plain INSERTs read back by a poller that loops as fast as the event loop allows. */
async function bareLatency(dir: string): Promise<Latency> {
  const { db, insert } = freshBare(dir, 'bare-latency');
  const read = db.prepare('SELECT id, at FROM bare WHERE id > ? ORDER BY id LIMIT 100');
  const samples: number[] = [];
  let last = 0;
  let polling = true;
  let stopped: () => void = () => {};
  const done = new Promise<void>((resolve) => {
    stopped = resolve;
  });
  const poll = () => {
    for (const row of read.all(last) as Array<{ id: number; at: number }>) {
      samples.push(performance.now() - row.at);
      last = row.id;
    }
    if (polling) setImmediate(poll);
    else stopped();
  };
  poll();
  const rate = await paced(insert, () => samples.length);
  polling = false;
  await done;
  db.close();
  return { p50: percentile(samples, 50), p99: percentile(samples, 99), max: Math.max(...samples), rate };
}
