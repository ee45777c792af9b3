/**
 * `npm run bench -- metrics`: `GET /metrics` over HTTP from a daemon serving 10,000 repos on 500
 * knots (one a fake knot that runs pipelines, the rest unreachable and reconnecting, as dead
 * knots would be), after pipelines have run; beside `GET /healthz` on the same server in the
 * same run (the HTTP floor). Also the exposition's size and series count.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { FakeKnot } from '../fakes/knot.ts';
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/logger.ts';
import { Service } from '../src/service.ts';
import { env, seed } from './spindle.ts';
import { fmt, percentile, printTable } from './stats.ts';

const REPOS = Number(process.env.BENCH_METRICS_REPOS ?? 10_000);
const KNOTS = Number(process.env.BENCH_METRICS_KNOTS ?? 500);
const PIPELINES = Number(process.env.BENCH_METRICS_PIPELINES ?? 200);
const SCRAPES = Number(process.env.BENCH_METRICS_SCRAPES ?? 500);

const RAW =
  'engine: nixery\nsteps:\n  - name: test\n    command: echo hi\ntreadle:\n  stub:\n    duration: 0s\n';

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export async function metricsBench(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'treadle-bench-metrics-'));
  const knot = await FakeKnot.start();
  try {
    const knots = [knot.host, ...Array.from({ length: KNOTS - 1 }, (_, i) => `knot-${i + 1}.invalid`)];
    const e = env(dir);
    seed(e.TREADLE_DB!, knots, REPOS);
    const service = Service.create(loadConfig(e).config, createLogger('silent'));
    await service.start();
    const base = `http://127.0.0.1:${service.port}`;
    while (knot.connected === 0) await sleep(10);
    // Pipelines in the fake knot's repos (every KNOTS-th repo is on it), so every counter and
    // histogram has series, and the queue tables have seen traffic.
    for (let i = 0; i < PIPELINES; i++) {
      const repo = (i * KNOTS) % REPOS;
      knot.emit('sh.tangled.pipeline', `3kmetric${String(i).padStart(5, '0')}`, {
        $type: '',
        triggerMetadata: {
          kind: 'push',
          push: {
            newSha: (i + 1).toString(16).padStart(40, '0'),
            oldSha: '0'.repeat(40),
            ref: 'refs/heads/main',
          },
          repo: { defaultBranch: '', did: e.TREADLE_OWNER, knot: knot.host, repo: `repo${repo}` },
        },
        workflows: ['build', 'test'].map((name) => ({
          name,
          engine: 'nixery',
          clone: { depth: 0, skip: false, submodules: false },
          raw: RAW,
        })),
      });
    }
    const statuses = () =>
      fetch(`${base}/metrics`)
        .then((r) => r.text())
        .then((t) => /treadle_workflow_statuses_total\{runner="stub",status="success"\} (\d+)/.exec(t)?.[1]);
    while (Number((await statuses()) ?? 0) < PIPELINES * 2) await sleep(200);

    const time = async (path: string): Promise<number[]> => {
      const out: number[] = [];
      for (let i = 0; i < SCRAPES; i++) {
        const t0 = performance.now();
        const res = await fetch(base + path);
        await res.arrayBuffer();
        out.push(performance.now() - t0);
      }
      return out;
    };
    // Interleaved halves, so drift on a shared machine touches both alike.
    const m: number[] = [];
    const h: number[] = [];
    for (let round = 0; round < 2; round++) {
      m.push(...(await time('/metrics')));
      h.push(...(await time('/healthz')));
    }
    const text = await (await fetch(`${base}/metrics`)).text();
    const series = text.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
    await service.stop();

    console.log(
      `${REPOS.toLocaleString('en')} repos on ${KNOTS} knots (${KNOTS - 1} unreachable), ${PIPELINES} pipelines × 2 workflows run; ${2 * SCRAPES} requests each`,
    );
    printTable(
      ['', 'p50 ms', 'p99 ms'],
      [
        ['GET /metrics', fmt(percentile(m, 50), 2), fmt(percentile(m, 99), 2)],
        ['baseline: GET /healthz', fmt(percentile(h, 50), 2), fmt(percentile(h, 99), 2)],
      ],
    );
    console.log(
      `    exposition: ${fmt(text.length / 1024, 1)} KiB, ${series.length} series (${series.filter((s) => s.startsWith('treadle_')).length} treadle_*)`,
    );
  } finally {
    await knot.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
