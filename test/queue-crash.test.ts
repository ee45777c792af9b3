import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { ROOT, type Spawned, spawnNode } from './support/process.ts';
import { tempDir } from './support/temp.ts';
import { waitFor } from './support/wait.ts';

const WORKER = join(ROOT, 'test/fixtures/queue-worker.ts');
const running: Spawned[] = [];
let cleanup = () => {};
afterEach(() => {
  for (const p of running) p.child.kill('SIGKILL');
  running.length = 0;
  cleanup();
});

function deliveries(file: string): Array<{ id: string; attempt: number; pid: number }> {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [id, attempt, pid] = line.split(' ');
      return { id: id!, attempt: Number(attempt), pid: Number(pid) };
    });
}

async function startWorker(db: string, record: string, mode: 'ack' | 'hang', publish = ''): Promise<Spawned> {
  const p = spawnNode(WORKER, [db, record, mode, publish]);
  running.push(p);
  await waitFor(() => p.stdout().includes('ready') || p.child.exitCode !== null, 'worker start');
  expect(p.stdout(), p.stderr()).toContain('ready');
  return p;
}

function pendingDeliveries(path: string): number {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    return (db.prepare('SELECT COUNT(*) AS n FROM queue_delivery').get() as { n: number }).n;
  } finally {
    db.close();
  }
}

async function kill9(p: Spawned): Promise<void> {
  p.child.kill('SIGKILL');
  expect(await p.exited).toBe('SIGKILL');
}

describe('queue across process crashes', () => {
  it('keeps an acked message acked and redelivers an in-flight one exactly once after SIGKILL', async () => {
    const t = tempDir();
    cleanup = t.cleanup;
    const db = join(t.dir, 'treadle.db');
    const record = join(t.dir, 'deliveries.txt');

    // 1. A message published and acked, then the process is killed.
    const a = await startWorker(db, record, 'ack', 'acked-1');
    await waitFor(() => deliveries(record).some((d) => d.id === 'acked-1'), 'first delivery');
    await waitFor(() => pendingDeliveries(db) === 0, 'the ack to be committed');
    await kill9(a);

    // 2. A message in flight (its handler hangs) when the process is killed.
    const b = await startWorker(db, record, 'hang', 'inflight-1');
    await waitFor(() => deliveries(record).some((d) => d.id === 'inflight-1'), 'in-flight delivery');
    await kill9(b);

    // 3. After restart: the in-flight message comes back once (after the 500 ms visibility
    //    timeout, as the next attempt); the acked one never does, and republishing it is a no-op.
    const c = await startWorker(db, record, 'ack', 'acked-1');
    const republish = JSON.parse(c.stdout().split('\n')[0]!);
    expect(republish).toMatchObject({ id: 'acked-1', published: false });
    await waitFor(() => deliveries(record).filter((d) => d.id === 'inflight-1').length === 2, 'redelivery');
    // Every delivery is acked: nothing is left that could arrive again.
    await waitFor(() => pendingDeliveries(db) === 0, 'every delivery acked');
    c.child.kill('SIGTERM');
    expect(await c.exited).toBe(0);

    const all = deliveries(record);
    expect(all.filter((d) => d.id === 'acked-1')).toEqual([{ id: 'acked-1', attempt: 1, pid: a.child.pid }]);
    expect(all.filter((d) => d.id === 'inflight-1')).toEqual([
      { id: 'inflight-1', attempt: 1, pid: b.child.pid },
      { id: 'inflight-1', attempt: 2, pid: c.child.pid },
    ]);
  });
});
