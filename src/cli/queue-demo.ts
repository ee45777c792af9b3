import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDatabase } from '../db/database.ts';
import { QueueStore } from '../db/queue-store.ts';
import { PermanentError, RetryableError } from '../errors.ts';
import { createLogger } from '../logger.ts';
import { Queue } from '../queue/index.ts';
import { EXIT } from './exit-codes.ts';
import { type Output, table } from './output.ts';

interface Job {
  repo: string;
  id: string;
  kind: 'ok' | 'flaky' | 'wait' | 'broken';
}

const JOBS: Job[] = [
  { repo: 'alice/app', id: 'push-1', kind: 'ok' },
  { repo: 'alice/app', id: 'push-2', kind: 'ok' },
  { repo: 'bob/lib', id: 'flaky-1', kind: 'flaky' },
  { repo: 'carol/site', id: 'wait-1', kind: 'wait' },
  { repo: 'carol/site', id: 'after-wait', kind: 'ok' },
  { repo: 'dave/tool', id: 'broken-1', kind: 'broken' },
];

/**
 * `treadle demo queue`: the durable queue every processing step runs on, shown on a temporary
 * database: per-repository order, retry with backoff, hold, dead-letter and replay, dedup.
 */
export async function queueDemo(io: Output): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'treadle-demo-'));
  const db = openDatabase(join(dir, 'demo.db'));
  const queue = new Queue(new QueueStore(db), createLogger('silent'), {
    initialBackoffMs: 200,
    maxAttempts: 3,
    pollIntervalMs: 100,
  });
  const t0 = Date.now();
  const at = () => `+${String(Date.now() - t0).padStart(5)} ms`;
  const say = (repo: string, id: string, text: string) =>
    io.out(`  ${at()}  ${repo.padEnd(10)}  ${id.padEnd(10)}  ${text}`);
  let fixed = false;
  let handled = 0;
  const flakyFailed = new Set<string>();
  const held = new Set<string>();

  io.out('treadle demo: the durable queue that every step of treadle runs on');
  io.out(`temporary database ${join(dir, 'demo.db')}; topic "demo.build", one partition per repository\n`);
  queue.consume<Job>('demo.build', 'builds', async (m, d) => {
    const job = m.payload;
    const tag = `attempt ${d.attempt}`;
    await new Promise((r) => setTimeout(r, 30));
    if (job.kind === 'flaky' && !flakyFailed.has(job.id)) {
      flakyFailed.add(job.id);
      say(job.repo, job.id, `${tag}: runner busy → retry after 200 ms backoff`);
      throw new RetryableError('runner busy');
    }
    if (job.kind === 'wait' && !held.has(job.id)) {
      held.add(job.id);
      say(job.repo, job.id, `${tag}: build still running → hold 400 ms (repo's later work waits)`);
      d.hold(400);
      return;
    }
    if (job.kind === 'broken' && !fixed) {
      say(job.repo, job.id, `${tag}: workflow is invalid → dead-lettered`);
      throw new PermanentError('invalid workflow: steps must be a list');
    }
    handled++;
    say(job.repo, job.id, `${tag}: done`);
  });
  queue.start();

  for (const job of JOBS) queue.publish('demo.build', job.repo, job.id, job);
  const again = queue.publish('demo.build', 'alice/app', 'push-1', JOBS[0]);
  io.out(
    `published ${JOBS.length} jobs; publishing alice/app push-1 again: ${again.published ? 'stored' : 'ignored (same id)'}\n`,
  );

  await until(() => handled === JOBS.length - 1 && queue.deadLetters('demo.build').length === 1);
  io.out('');
  printStats(queue, io);
  const [letter] = queue.deadLetters('demo.build');
  io.out(`\ndead letter: ${letter?.partitionKey} ${letter?.id}: ${letter?.lastError}`);
  io.out('fixing the workflow and replaying it (treadle queue dlq replay demo.build):');
  fixed = true;
  queue.replayDeadLetters('demo.build');
  await until(() => handled === JOBS.length);
  io.out('');
  printStats(queue, io);
  await queue.stop(1000);
  db.close();
  rmSync(dir, { recursive: true, force: true });
  io.out(`\nall ${JOBS.length} jobs handled exactly once in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return EXIT.ok;
}

function printStats(queue: Queue, io: Output): void {
  const { groups, dead } = queue.store.stats(Date.now());
  const rows = groups.map((g) => [
    g.topic,
    g.group,
    g.ready,
    g.retrying,
    g.inFlight,
    g.held,
    dead.get(g.topic) ?? 0,
  ]);
  for (const line of table(['TOPIC', 'GROUP', 'READY', 'RETRYING', 'IN FLIGHT', 'HELD', 'DEAD'], rows))
    io.out(line);
}

async function until(cond: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('demo did not finish in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}
