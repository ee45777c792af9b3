/**
 * `npm run bench -- ui`: the dashboard's server-side rendering with 10,000 served repos (on 50
 * unreachable knots) and 100,000 recorded commits on one branch (the latest 200 with their
 * pipelines and workflows, which the duration chart reads). Over HTTP from the real daemon:
 * the overview beside `GET /greenness/v1/queues`, the branch page beside the JSON history of
 * the same 100 commits, both beside `/healthz`; and each page's transfer, uncompressed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { loadConfig } from '../src/config.ts';
import { openDatabase } from '../src/db/database.ts';
import { queueKey } from '../src/greenness/recorder.ts';
import { createLogger } from '../src/logger.ts';
import { Service } from '../src/service.ts';
import { env, seed } from './spindle.ts';
import { fmt, percentile, printTable } from './stats.ts';

const REPOS = Number(process.env.BENCH_UI_REPOS ?? 10_000);
const COMMITS = Number(process.env.BENCH_UI_COMMITS ?? 100_000);
const REQUESTS = Number(process.env.BENCH_UI_REQUESTS ?? 300);
const KNOTS = 50;
const WORKFLOWS = ['build', 'test', 'lint', 'deploy'];

export async function uiBench(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'treadle-bench-ui-'));
  try {
    const e = env(dir);
    const owner = e.TREADLE_OWNER!;
    const knots = Array.from({ length: KNOTS }, (_, i) => `knot-${i}.invalid`);
    seed(e.TREADLE_DB!, knots, REPOS);
    const repo = `${owner}/repo0`;
    const ref = 'refs/heads/main';
    fill(e.TREADLE_DB!, repo, ref, knots[0]!);
    const service = Service.create(loadConfig(e).config, createLogger('silent'));
    await service.start();
    const base = `http://127.0.0.1:${service.port}`;
    const q = `repo=${encodeURIComponent(repo)}&ref=main`;
    const paths: Array<[string, string]> = [
      [`overview /ui/ (first 50 of ${REPOS.toLocaleString('en')} repos)`, '/ui/'],
      ['JSON: /greenness/v1/queues', '/greenness/v1/queues'],
      ['branch /ui/branch (100 cells, 200-run chart)', `/ui/branch?${q}`],
      ['JSON: /greenness/v1/history?limit=100', `/greenness/v1/history?${q}&limit=100`],
      ['baseline: /healthz', '/healthz'],
    ];
    const samples = new Map<string, number[]>(paths.map(([name]) => [name, []]));
    const sizes = new Map<string, number>();
    for (const [name, path] of paths) {
      const res = await fetch(base + path);
      if (res.status !== 200) throw new Error(`${path}: HTTP ${res.status}`);
      sizes.set(name, (await res.arrayBuffer()).byteLength);
    }
    // Interleaved rounds, so drift on a shared machine touches every path alike.
    for (let round = 0; round < 3; round++)
      for (const [name, path] of paths)
        for (let i = 0; i < REQUESTS / 3; i++) {
          const t0 = performance.now();
          await (await fetch(base + path)).arrayBuffer();
          samples.get(name)!.push(performance.now() - t0);
        }
    const css = (await (await fetch(`${base}/ui/static/ui.css`)).arrayBuffer()).byteLength;
    const js = (await (await fetch(`${base}/ui/static/ui.js`)).arrayBuffer()).byteLength;
    await service.stop();

    console.log(
      `${REPOS.toLocaleString('en')} repos, ${COMMITS.toLocaleString('en')} commits recorded on ${repo} main; ${REQUESTS} requests each`,
    );
    printTable(
      ['', 'p50 ms', 'p99 ms', 'bytes'],
      paths.map(([name]) => [
        name,
        fmt(percentile(samples.get(name)!, 50), 2),
        fmt(percentile(samples.get(name)!, 99), 2),
        String(sizes.get(name)),
      ]),
    );
    console.log(
      `    static: ui.css ${css} bytes, ui.js ${js} bytes (cached 5 min); a page's total transfer = its HTML + both`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** One branch with `COMMITS` recorded commits; the latest 200 with their pipelines and workflows. */
function fill(file: string, repo: string, ref: string, knot: string): void {
  const db = openDatabase(file);
  const commitOf = (i: number) => i.toString(16).padStart(40, '0');
  const now = Date.now();
  db.transaction(() => {
    db.prepare(
      'INSERT INTO gn_queue (id, key, repo, ref, next_seq, last_green_seq, last_green_at, tip_seq, tip_green) VALUES (1, ?, ?, ?, ?, ?, ?, ?, 1)',
    ).run(queueKey(repo, ref), repo, ref, COMMITS + 1, COMMITS, now, COMMITS);
    const p = db.prepare(
      'INSERT INTO gn_pipeline (id, uri, knot, repo, trigger, ref, commit_sha, workflows, observed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)',
    );
    const v = db.prepare(
      `INSERT INTO gn_validation (queue, seq, commit_sha, pipeline, attempt, state, deadline_at, created_at, updated_at) VALUES (1, ?, ?, ?, 1, ?, 0, 0, 0)`,
    );
    const f = db.prepare(
      'INSERT INTO gn_fact (queue, seq, project, degree, created_at) VALUES (1, ?, ?, ?, 0)',
    );
    const pipeline = db.prepare(`INSERT INTO pipelines (knot, rkey, repo_owner, repo_name, repo_did, kind,
        commit_sha, created, origin, record, received_at) VALUES (?, ?, ?, 'repo0', NULL, 'push', ?, ?, 'knot', '{}', ?)`);
    const workflow = db.prepare(`INSERT INTO workflows (knot, rkey, name, engine, runner, status, status_at,
        updated_at, started_at, finished_at, logs_done) VALUES (?, ?, ?, 'nixery', 'stub', ?, ?, ?, ?, ?, 1)`);
    const [ownerDid] = repo.split('/');
    for (let i = 1; i <= COMMITS; i++) {
      const commit = commitOf(i);
      const rkey = `p${i}`;
      const green = i % 7 !== 0;
      p.run(
        i,
        `at://did:web:${knot}/sh.tangled.pipeline/${rkey}`,
        knot,
        repo,
        'push',
        ref,
        commit,
        JSON.stringify(WORKFLOWS),
      );
      v.run(i, commit, i, green ? 'succeeded' : 'failed');
      f.run(i, '', green ? 0 : 0.25);
      if (i > COMMITS - 200) {
        const start = Math.floor(now / 1000) - (COMMITS - i) * 60;
        pipeline.run(knot, rkey, ownerDid, commit, BigInt(i), now);
        for (const [k, w] of WORKFLOWS.entries())
          workflow.run(
            knot,
            rkey,
            w,
            green || k > 0 ? 'success' : 'failed',
            start + 30,
            now,
            start,
            start + 20 + ((i * 7 + k * 13) % 90),
          );
      }
    }
  })();
  db.close();
}
