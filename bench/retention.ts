/**
 * `npm run bench -- retention`: does pruning disturb serving? The daemon (in process, stub
 * runner) delivers pipelines from a fake knot to a live `/events` client at 50 a second; the
 * latency from the knot's frame to the client's is measured with no prune running (before and
 * after), and while 1,000,000 expired `/events` rows are pruned in the daemon's own batches.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { WebSocket } from 'ws';
import { FakeKnot } from '../fakes/knot.ts';
import { loadConfig } from '../src/config.ts';
import { openDatabase } from '../src/db/database.ts';
import { EventStore } from '../src/db/event-store.ts';
import { RetentionStore } from '../src/db/retention-store.ts';
import { createLogger } from '../src/logger.ts';
import { Pruner } from '../src/retention/pruner.ts';
import { Service } from '../src/service.ts';
import { env, seed } from './spindle.ts';
import { fmt, percentile, printTable } from './stats.ts';

const EXPIRED = Number(process.env.BENCH_RETENTION_EVENTS ?? 1_000_000);
const RATE = 50;
const SECONDS = Number(process.env.BENCH_RETENTION_SECONDS ?? 10);
const RAW =
  'engine: nixery\nsteps:\n  - name: test\n    command: echo hi\ntreadle:\n  stub:\n    duration: 0s\n';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function retentionBench(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'treadle-bench-retention-'));
  const knot = await FakeKnot.start();
  try {
    // The daemon itself keeps everything; the prune below is started by hand, when measured.
    const e = env(dir, { TREADLE_RETAIN_EVENTS: '0', TREADLE_RETAIN_LOGS: '0', TREADLE_RETAIN_RUNS: '0' });
    seed(e.TREADLE_DB!, [knot.host], 1);
    const fill = performance.now();
    const db = openDatabase(e.TREADLE_DB!);
    const events = new EventStore(db);
    const old = BigInt(Date.now() - 7 * 86_400_000) * 1_000_000n;
    db.transaction(() => {
      for (let i = 0; i < EXPIRED; i++)
        events.insert({
          created: old + BigInt(i),
          nsid: 'sh.tangled.pipeline.status',
          rkey: `old${i}`,
          event: '{"status":"success","workflow":"ci"}',
        });
    })();
    db.close();
    console.log(
      `${EXPIRED.toLocaleString('en')} expired events written in ${fmt((performance.now() - fill) / 1000, 1)} s`,
    );

    const service = Service.create(loadConfig(e).config, createLogger('silent'));
    await service.start();
    while (knot.connected === 0) await sleep(10);
    const sent = new Map<string, number>();
    const latencies: number[] = [];
    const ws = new WebSocket(`ws://127.0.0.1:${service.port}/events`);
    await new Promise((r) => ws.once('open', r));
    ws.on('message', (data) => {
      const m = /"nsid":"sh\.tangled\.pipeline","rkey":"([^"]+)"/.exec(data.toString());
      const at = m ? sent.get(m[1]!) : undefined;
      if (at !== undefined) latencies.push(performance.now() - at);
    });
    let n = 0;
    /** Sends at RATE for SECONDS (or, with `until`, while it says so); the latencies of what it sent. */
    const phase = async (until?: () => boolean): Promise<number[]> => {
      const from = latencies.length;
      let total = 0;
      for (let i = 0; until ? until() : i < RATE * SECONDS; i++) {
        total++;
        const rkey = `3kret${String(++n).padStart(8, '0')}`;
        sent.set(rkey, performance.now());
        knot.emit('sh.tangled.pipeline', rkey, {
          $type: '',
          triggerMetadata: {
            kind: 'push',
            push: {
              newSha: n.toString(16).padStart(40, '0'),
              oldSha: '0'.repeat(40),
              ref: 'refs/heads/main',
            },
            repo: { defaultBranch: '', did: e.TREADLE_OWNER, knot: knot.host, repo: 'repo0' },
          },
          workflows: [
            { name: 'ci', engine: 'nixery', clone: { depth: 0, skip: false, submodules: false }, raw: RAW },
          ],
        });
        await sleep(1000 / RATE);
      }
      while (latencies.length - from < total) await sleep(20);
      return latencies.slice(from, from + total);
    };
    const before = await phase();
    const pruner = new Pruner({
      store: new RetentionStore(service.ctx.db),
      windows: { eventsMs: 86_400_000, logsMs: 0, runsMs: 0 },
      log: createLogger('silent'),
    });
    const pruneStart = performance.now();
    let pruned = 0;
    let pruneMs = 0;
    let pruneDone = false;
    const pruning = pruner.prune().then((c) => {
      pruned = c.events;
      pruneMs = performance.now() - pruneStart;
      pruneDone = true;
    });
    // Only what was sent while the prune ran counts as "while pruning".
    const during = await phase(() => !pruneDone);
    await pruning;
    const after = await phase();
    ws.close();
    await service.stop();

    const quiet = [...before, ...after];
    printTable(
      ['knot frame → /events client', 'n', 'p50 ms', 'p99 ms'],
      [
        [
          'while pruning',
          String(during.length),
          fmt(percentile(during, 50), 2),
          fmt(percentile(during, 99), 2),
        ],
        [
          'baseline: no prune (before and after)',
          String(quiet.length),
          fmt(percentile(quiet, 50), 2),
          fmt(percentile(quiet, 99), 2),
        ],
      ],
    );
    console.log(
      `    pruned ${pruned.toLocaleString('en')} events in ${fmt(pruneMs / 1000, 1)} s (${fmt(pruned / (pruneMs / 1000))} rows/s); p99 ratio ${(percentile(during, 99) / percentile(quiet, 99)).toFixed(2)}×`,
    );
  } finally {
    await knot.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
