/**
 * Retention on a real SQLite file with an injected clock: what each window removes and what it
 * keeps, and a simulated 24 h of constant load whose database size stays flat once the windows
 * are full.
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from '../../test/support/temp.ts';
import { type Db, openDatabase } from '../db/database.ts';
import { EventStore } from '../db/event-store.ts';
import { LogStore } from '../db/log-store.ts';
import { PipelineStore } from '../db/pipeline-store.ts';
import { RetentionStore } from '../db/retention-store.ts';
import { createLogger } from '../logger.ts';
import { Pruner, type RetentionWindows } from './pruner.ts';

const MIN = 60_000;
const HOUR = 60 * MIN;
let cleanup = () => {};
afterEach(() => cleanup());

function setup(windows: RetentionWindows, batch = 500) {
  const t = tempDir('treadle-retention-');
  cleanup = t.cleanup;
  const file = join(t.dir, 'treadle.db');
  const db = openDatabase(file);
  let now = Date.UTC(2026, 11, 1);
  const pruner = new Pruner({
    store: new RetentionStore(db),
    windows,
    log: createLogger('silent'),
    batch,
    clock: () => now,
    rest: () => Promise.resolve(),
  });
  const pipelines = new PipelineStore(db);
  const lines = new LogStore(db);
  const events = new EventStore(db);
  let n = 0;
  /** One finished (or, with `running`, unfinished) pipeline of two workflows at `now`. */
  const run = (linesPerWorkflow: number, running = false) => {
    const rkey = `3k${String(++n).padStart(11, '0')}`;
    const knot = 'knot.example.com';
    db.transaction(() => {
      const created = BigInt(now) * 1_000_000n + BigInt(n) * 10n;
      events.insert({ created, nsid: 'sh.tangled.pipeline', rkey, event: `{"n":${n}}` });
      pipelines.insertPipeline({
        knot,
        rkey,
        repoOwner: 'did:plc:owner',
        repoName: 'repo',
        repoDid: 'did:plc:repo',
        kind: 'push',
        commit: n.toString(16).padStart(40, '0'),
        created,
        origin: 'knot',
        record: '{}',
        receivedAt: now,
      });
      for (const name of ['build', 'test']) {
        const k = { knot, rkey, name };
        pipelines.insertWorkflow({ ...k, engine: 'nixery', runner: 'stub', options: '{}' }, now);
        lines.appendMany(
          k,
          0,
          Array.from(
            { length: linesPerWorkflow },
            (_, i) => `{"kind":"data","content":"line ${i} of ${rkey}"}`,
          ),
        );
        pipelines.setStatus(
          k,
          { status: running ? 'running' : 'success', statusAt: Math.floor(now / 1000) },
          now,
        );
        events.insert({
          created: created + (name === 'build' ? 1n : 2n),
          nsid: 'sh.tangled.pipeline.status',
          rkey: `${rkey}${name}`,
          event: '{}',
        });
        if (!running) pipelines.setLogsDone(k, now);
      }
    })();
    return rkey;
  };
  const count = (table: string) =>
    (db.prepare(`SELECT COUNT(*) AS c FROM ${table}`).get() as { c: number }).c;
  return {
    db,
    file,
    pruner,
    pipelines,
    run,
    count,
    advance: (ms: number) => {
      now += ms;
    },
  };
}

function size(db: Db, file: string): number {
  db.pragma('wal_checkpoint(TRUNCATE)');
  return statSync(file).size;
}

describe('Pruner', () => {
  it('removes events, log lines and finished runs past their windows, in batches, and nothing newer', async () => {
    const t = setup({ eventsMs: 2 * HOUR, logsMs: HOUR, runsMs: 3 * HOUR }, 7);
    const old = Array.from({ length: 20 }, () => t.run(5));
    const stuck = t.run(5, true);
    t.advance(90 * MIN);
    const mid = t.run(5);
    t.advance(60 * MIN);
    const fresh = t.run(5);

    // now: old runs are 150 min old, mid 60 min, fresh 0.
    const first = await t.pruner.prune();
    expect(first.events).toBe(21 * 3); // the 21 oldest pipelines' events (> 2 h)
    expect(first.logWorkflows).toBe(40); // the old finished ones; mid is exactly 1 h old: kept
    expect(first.logLines).toBe(40 * 5);
    expect(first.runs).toBe(0);
    expect(t.count('log_lines')).toBe(3 * 2 * 5); // stuck (unfinished), mid and fresh
    expect(t.count('log_streams')).toBe(3 * 2); // a pruned log's stream goes with its lines
    expect(t.pipelines.pipeline('knot.example.com', mid)).toBeDefined();

    t.advance(31 * MIN); // old runs 181 min old: past 3 h; the stuck one is unfinished and stays
    const second = await t.pruner.prune();
    expect(second.runs).toBe(20);
    expect(second.logWorkflows).toBe(2); // mid's, now past the hour
    for (const r of old) expect(t.pipelines.pipeline('knot.example.com', r)).toBeUndefined();
    expect(t.pipelines.pipeline('knot.example.com', stuck)).toBeDefined();
    expect(t.pipelines.workflowsOf('knot.example.com', fresh)).toHaveLength(2);
    expect(t.count('workflows')).toBe(6);
    expect(t.count('log_streams')).toBe(2 * 2); // stuck and fresh
    expect((await t.pruner.prune()).logWorkflows).toBe(0); // pruned logs are not visited again
  });

  it('keeps everything with windows of 0', async () => {
    const t = setup({ eventsMs: 0, logsMs: 0, runsMs: 0 });
    t.run(3);
    t.advance(1000 * HOUR);
    expect(await t.pruner.prune()).toEqual({ events: 0, logWorkflows: 0, logLines: 0, runs: 0, builds: {} });
    expect(t.count('log_lines')).toBe(6);
  });

  it('keeps the database size flat within 10% over a simulated 24 h of constant load', async () => {
    const t = setup({ eventsMs: 3 * HOUR, logsMs: HOUR, runsMs: 4 * HOUR });
    const sizes: number[] = [];
    for (let minute = 1; minute <= 24 * 60; minute++) {
      for (let i = 0; i < 4; i++) t.run(20);
      t.advance(MIN);
      if (minute % 10 === 0) await t.pruner.prune();
      if (minute % 60 === 0) sizes.push(size(t.db, t.file));
    }
    // Every window is full after 4 h; from then on the file reuses the pages prunes free.
    const steady = sizes.slice(5);
    const ratio = Math.max(...steady) / Math.min(...steady);
    expect(ratio).toBeLessThanOrEqual(1.1);
    expect(t.count('pipelines')).toBeLessThanOrEqual(4 * (4 * 60 + 10));
  }, 120_000);
});
