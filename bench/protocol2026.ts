/**
 * `npm run bench -- protocol2026`, against baselines measured in the same run:
 *
 * (a) new-shape `refUpdate` frame → the first workflow's `trigger()`, through a local knot that
 *     serves real git over HTTP (git http-backend): warm (the repo's partial cache exists, the
 *     pushed commit is new) and cold (first push of a repo). Baseline: a bare client that reads
 *     the frame and fetches the commit whole at depth 1 into a cached repo, then reads the file.
 * (b) `sh.tangled.ci.queryPipelines` over HTTP with 100,000 pipelines of one repo: first page,
 *     `commits=` filters, a deep cursor, a `kinds=` filter. Baselines: the bare page SELECT in
 *     process, and a `/healthz` round trip (the HTTP floor).
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { WebSocket } from 'ws';
import { FakeKnot } from '../fakes/knot.ts';
import type { BuildRequest, BuildRunner } from '../providers/runner.ts';
import { StubRunner } from '../providers/stub/stub-runner.ts';
import { loadConfig } from '../src/config.ts';
import { CursorStore } from '../src/db/cursor-store.ts';
import { openDatabase } from '../src/db/database.ts';
import { migrate } from '../src/db/migrate.ts';
import { RepoStore } from '../src/db/repo-store.ts';
import { RunKeyStore } from '../src/db/run-key-store.ts';
import { createLogger } from '../src/logger.ts';
import { Service } from '../src/service.ts';
import { env, OWNER } from './spindle.ts';
import { fmt, percentile, printTable } from './stats.ts';

const CI =
  'engine: nixery\nsteps:\n  - name: test\n    command: make test\ntreadle:\n  stub:\n    duration: 0s\n';
const WARM = 40;
const COLD = 10;
const PIPELINES = 100_000;
const QUERIES = 300;

const run = promisify(execFile);
const nowMs = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function refUpdate(repo: string, sha: string): Record<string, unknown> {
  return {
    ref: 'refs/heads/main',
    repo,
    committerDid: OWNER,
    oldSha: '0'.repeat(40),
    newSha: sha,
    changedFiles: [],
    pushOptions: [],
  };
}

function row(label: string, sample: number[]): Array<string | number> {
  return [label, sample.length, fmt(percentile(sample, 50), 1), fmt(percentile(sample, 99), 1)];
}

// ---------------------------------------------------------------------------------------- (a)

async function pushLatency(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'treadle-bench-2026-'));
  const knot = await FakeKnot.start();
  const repos = Array.from({ length: COLD + 1 }, (_, i) => `did:plc:benchrepo${i}`);
  const e = env(dir);
  const db = openDatabase(e.TREADLE_DB!);
  migrate(db);
  const store = new RepoStore(db, OWNER);
  repos.forEach((repoDid, i) => {
    knot.git.create(repoDid);
    store.putRepo({ owner: OWNER, rkey: `r${i}`, name: `repo${i}`, knot: knot.host, repoDid });
  });
  new CursorStore(db).set('jetstream', BigInt(Date.now()) * 1000n);
  // A knot seen sending ref updates and never pipelines (the Rust knot): no hold.
  const modes = new RunKeyStore(db);
  modes.markNew(knot.host);
  modes.setSendsPipelines(knot.host, false);
  db.close();

  const emitted = new Map<string, number>();
  const triggered = new Map<string, number>();
  const stub = new StubRunner();
  const timed: BuildRunner = {
    name: 'stub',
    pushesProgress: false,
    trigger: (req: BuildRequest) => {
      if (!triggered.has(req.head.sha)) triggered.set(req.head.sha, nowMs());
      return stub.trigger(req);
    },
    status: (id) => stub.status(id),
    cancel: (id) => stub.cancel(id),
    logs: (id, signal) => stub.logs(id, signal),
  };
  const service = Service.create(
    loadConfig(e).config,
    createLogger((process.env.BENCH_LOG ?? 'silent') as 'silent'),
    () => {},
    {
      runners: new Map([['stub', timed]]),
    },
  );
  await service.start();
  while (knot.connected === 0) await sleep(10);

  const push = async (repoDid: string, i: number): Promise<number> => {
    const sha = knot.git.commit(repoDid, { '.tangled/workflows/ci.yml': CI, 'n.txt': String(i) });
    emitted.set(sha, nowMs());
    knot.emit('sh.tangled.git.refUpdate', `3kbench${String(i).padStart(6, '0')}`, refUpdate(repoDid, sha));
    while (!triggered.has(sha)) await sleep(1);
    return triggered.get(sha)! - emitted.get(sha)!;
  };
  const cold: number[] = [];
  for (let i = 1; i <= COLD; i++) cold.push(await push(repos[i]!, 1000 + i));
  await push(repos[0]!, 0);
  const warm: number[] = [];
  for (let i = 1; i <= WARM; i++) warm.push(await push(repos[0]!, i));
  await service.stop();

  // Baseline: a bare client; on each frame, a whole depth-1 fetch of the commit and one cat-file.
  const cache = join(dir, 'bare-cache');
  execFileSync('git', ['init', '--bare', '-q', cache]);
  const bare: number[] = [];
  const ws = new WebSocket(`ws://${knot.host}/events`);
  await new Promise((resolve) => ws.once('open', resolve));
  ws.on('message', async (data) => {
    // Asynchronous git: the fake knot answering it lives in this process.
    const f = JSON.parse(data.toString()) as { event: { repo: string; newSha: string } };
    const url = `http://${knot.host}/${f.event.repo}`;
    await run('git', ['-C', cache, 'fetch', '-q', '--depth=1', '--no-tags', url, f.event.newSha]);
    await run('git', ['-C', cache, 'cat-file', 'blob', `${f.event.newSha}:.tangled/workflows/ci.yml`]);
    triggered.set(f.event.newSha, nowMs());
  });
  for (let i = 1; i <= WARM; i++) {
    const sha = knot.git.commit(repos[0]!, { 'm.txt': String(i) });
    emitted.set(sha, nowMs());
    knot.emit('sh.tangled.git.refUpdate', `3kbare${String(i).padStart(6, '0')}`, refUpdate(repos[0]!, sha));
    while (!triggered.has(sha)) await sleep(1);
    bare.push(triggered.get(sha)! - emitted.get(sha)!);
  }
  ws.close();
  await knot.close();
  rmSync(dir, { recursive: true, force: true });
  console.log('\n(a) refUpdate received → first workflow triggered, ms (target p99 ≤ 150 warm)');
  printTable(
    ['', 'n', 'p50', 'p99'],
    [
      row('treadle, warm cache', warm),
      row('treadle, cold (first push of a repo)', cold),
      row('baseline: bare depth-1 fetch + cat-file', bare),
    ],
  );
}

// ---------------------------------------------------------------------------------------- (b)

async function queryLatency(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'treadle-bench-2026-'));
  const e = env(dir);
  const db = openDatabase(e.TREADLE_DB!);
  migrate(db);
  const repoDid = 'did:plc:bigrepo';
  new RepoStore(db, OWNER).putRepo({ owner: OWNER, rkey: 'big', name: 'big', knot: 'knot.bench', repoDid });
  new CursorStore(db).set('jetstream', BigInt(Date.now()) * 1000n);
  const commits: string[] = [];
  const start = BigInt(Date.now() - PIPELINES * 1000) * 1_000_000n;
  const insertPipeline =
    db.prepare(`INSERT INTO pipelines (knot, rkey, repo_owner, repo_name, repo_did, kind, commit_sha,
      created, origin, record, received_at) VALUES ('knot.bench', ?, ?, 'big', ?, ?, ?, ?, 'spindle', ?, 0)`);
  const insertWorkflow =
    db.prepare(`INSERT INTO workflows (knot, rkey, name, engine, runner, options, status, status_at,
      started_at, finished_at, logs_done, updated_at) VALUES ('knot.bench', ?, 'ci.yml', 'nixery', 'stub', '{}', 'success', ?, ?, ?, 1, 0)`);
  db.transaction(() => {
    for (let i = 0; i < PIPELINES; i++) {
      const sha = (i * 2654435761).toString(16).padStart(8, '0').repeat(5).slice(0, 40);
      commits.push(sha);
      const kind = i % 10 === 0 ? 'pull_request' : 'push';
      const trigger =
        kind === 'push'
          ? { kind, push: { ref: 'refs/heads/main', newSha: sha, oldSha: '0'.repeat(40) } }
          : {
              kind,
              pullRequest: { sourceBranch: 'f', targetBranch: 'main', sourceSha: sha, action: 'opened' },
            };
      const rkey = `3kq${String(i).padStart(10, '0')}`;
      const created = start + BigInt(i) * 1_000_000_000n;
      const sec = Math.floor(Number(created / 1_000_000_000n));
      insertPipeline.run(
        rkey,
        OWNER,
        repoDid,
        kind,
        sha,
        created,
        JSON.stringify({ triggerMetadata: trigger, workflows: [] }),
      );
      insertWorkflow.run(rkey, sec + 2, sec, sec + 2);
    }
  })();
  const barePage = db
    .prepare(
      'SELECT rkey, commit_sha, created FROM pipelines WHERE repo_did = ? ORDER BY created DESC LIMIT 30',
    )
    .safeIntegers(true);
  const bare: number[] = [];
  for (let i = 0; i < QUERIES; i++) {
    const t = performance.now();
    JSON.stringify(barePage.all(repoDid), (_k, v) => (typeof v === 'bigint' ? String(v) : v));
    bare.push(performance.now() - t);
  }
  db.close();

  const service = Service.create(loadConfig(e).config, createLogger('silent'));
  await service.start();
  const base = `http://127.0.0.1:${service.port}`;
  const time = async (path: () => string): Promise<number[]> => {
    const out: number[] = [];
    for (let i = 0; i < QUERIES; i++) {
      const url = `${base}${path()}`;
      const t = performance.now();
      const res = await fetch(url);
      await res.arrayBuffer();
      out.push(performance.now() - t);
      if (res.status !== 200) throw new Error(`${url}: ${res.status}`);
    }
    return out;
  };
  const q = `/xrpc/sh.tangled.ci.queryPipelines?repo=${repoDid}`;
  const pick = () => commits[Math.floor(Math.random() * commits.length)]!;
  const first = await time(() => q);
  const byCommit = await time(() => `${q}&commits=${pick()}`);
  const byFive = await time(() => `${q}${Array.from({ length: 5 }, () => `&commits=${pick()}`).join('')}`);
  const deep = await time(
    () => `${q}&cursor=${start + BigInt(Math.floor(Math.random() * PIPELINES)) * 1_000_000_000n}`,
  );
  const kinds = await time(() => `${q}&kinds=pull_request`);
  const limit1 = await time(() => `${q}&limit=1`);
  const health = await time(() => '/healthz');
  await service.stop();
  rmSync(dir, { recursive: true, force: true });
  console.log(
    `\n(b) queryPipelines over HTTP, ${fmt(PIPELINES)} pipelines in one repo, ms (target p99 ≤ 10)`,
  );
  printTable(
    ['', 'n', 'p50', 'p99'],
    [
      row('first page (limit 30, total)', first),
      row('commits=<one sha>', byCommit),
      row('commits= ×5', byFive),
      row('cursor=<random point>', deep),
      row('kinds=pull_request (10%)', kinds),
      row('limit=1 (badge)', limit1),
      row('baseline: bare page SELECT, in process', bare),
      row('baseline: GET /healthz (HTTP floor)', health),
    ],
  );
}

export async function protocol2026Bench(): Promise<void> {
  const only = (process.env.BENCH_PARTS ?? 'ab').split('');
  if (only.includes('a')) await pushLatency();
  if (only.includes('b')) await queryLatency();
}
