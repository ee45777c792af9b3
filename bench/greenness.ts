/**
 * Greenness benchmark (`npm run bench -- greenness`):
 * (a) a terminal status on `workflow.status` → the whole-repo fact committed and its hook
 *     enqueued, through the real queue and recorder, at 100 commits/s × 4 workflows, beside the
 *     bare cost of inserting the same rows in one transaction;
 * (b) `gate` and `status` over HTTP with 100,000 recorded commits in one queue, beside `/healthz`
 *     on the same server;
 * (c) database bytes per recorded commit (the greenness tables, 4 workflows).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createAdaptorServer } from '@hono/node-server';
import { Hono } from 'hono';
import { type Db, openDatabase } from '../src/db/database.ts';
import { GreennessStore } from '../src/db/greenness-store.ts';
import { QueueStore } from '../src/db/queue-store.ts';
import { UnitOfWork } from '../src/db/unit-of-work.ts';
import { GreennessApi } from '../src/greenness/api.ts';
import { parseGreenness } from '../src/greenness/config.ts';
import { type HookEvent, queueKey, Recorder, type RecordMessage } from '../src/greenness/recorder.ts';
import { createLogger } from '../src/logger.ts';
import type { PipelineStarted, WorkflowStatusChanged } from '../src/pipelines/pipeline.ts';
import { Queue } from '../src/queue/index.ts';
import { fmt, percentile, printTable } from './stats.ts';

const REPO = 'did:plc:benchrepo';
const REF = 'refs/heads/main';
const WORKFLOWS = ['build.yml', 'test.yml', 'lint.yml', 'docs.yml'];
const RATE = 100; // commits/s
const SECONDS = Number(process.env.BENCH_GREENNESS_SECONDS ?? 10);
const RECORDED = Number(process.env.BENCH_GREENNESS_COMMITS ?? 100_000);
const REQUESTS = 2000;

export async function greennessBench(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'treadle-bench-'));
  try {
    const a = await recordLatency(dir);
    const bare = bareInserts(dir, a.commits);
    console.log(
      `(a) terminal status → whole-repo fact and hook enqueued, ${RATE} commits/s × ${WORKFLOWS.length} workflows for ${SECONDS} s (ms)`,
    );
    printTable(
      ['', 'p50', 'p99', 'max', 'n'],
      [
        ['treadle (queue + recorder)', fmt(a.p50, 2), fmt(a.p99, 2), fmt(a.max, 2), fmt(a.commits)],
        [
          'bare: the same rows in one transaction',
          fmt(bare.p50, 3),
          fmt(bare.p99, 3),
          fmt(bare.max, 3),
          fmt(a.commits),
        ],
      ],
    );
    console.log(
      `\n(c) database bytes per recorded commit (greenness tables, ${WORKFLOWS.length} workflows): ${fmt(a.bytesPerCommit)}`,
    );
    const b = await httpLatency(dir);
    console.log(
      `\n(b) HTTP with ${fmt(RECORDED)} recorded commits in one queue, ${fmt(REQUESTS)} requests each (ms)`,
    );
    printTable(
      ['', 'p50', 'p99', 'max'],
      b.map((r) => [r.name, fmt(r.p50, 2), fmt(r.p99, 2), fmt(r.max, 2)]),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function setup(dir: string, name: string) {
  const db = openDatabase(join(dir, name));
  const uow = new UnitOfWork(db);
  const queue = new Queue(new QueueStore(db), createLogger('silent'), { pollIntervalMs: 50 }, uow);
  const store = new GreennessStore(db);
  const parsed = parseGreenness(undefined, {});
  if ('problems' in parsed) throw new Error('config');
  const recorder = new Recorder({
    store,
    uow,
    queue,
    landing: [],
    config: parsed.config,
    log: createLogger('silent'),
  });
  return { db, uow, queue, store, recorder };
}

async function recordLatency(dir: string) {
  const t = setup(dir, 'a.db');
  const lastStatusAt = new Map<string, number>();
  const samples: number[] = [];
  const publish = t.queue.publish.bind(t.queue);
  // The hook of the whole-repo fact is the end of the measured path.
  t.queue.publish = ((topic: string, pk: string, id: string, payload: unknown, o?: object) => {
    const r = publish(topic, pk, id, payload, o);
    const e = payload as HookEvent;
    if (topic === 'hook' && e.type === 'greenness.fact_recorded' && e.payload.project === '') {
      const started = lastStatusAt.get(String(e.payload.commit));
      if (started !== undefined) t.uow.afterCommit(() => samples.push(performance.now() - started));
    }
    return r;
  }) as typeof t.queue.publish;
  t.queue.consume<PipelineStarted>('pipeline.started', 'greenness-ingest', (m) =>
    t.recorder.onPipeline(m.payload),
  );
  t.queue.consume<WorkflowStatusChanged>(
    'workflow.status',
    'greenness-ingest',
    (m) => t.recorder.onStatus(m.payload),
    { concurrency: 16 },
  );
  t.queue.consume<RecordMessage>('greenness.record', 'greenness-record', (m) => t.recorder.record(m.payload));
  t.queue.start();
  const commits = RATE * SECONDS;
  const t0 = performance.now();
  for (let i = 0; i < commits; i++) {
    const due = t0 + (i * 1000) / RATE;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const commit = i.toString(16).padStart(40, '0');
    const pipeline = `at://did:web:knot.bench/sh.tangled.pipeline/p${i}`;
    const subject = { pipeline, knot: 'knot.bench', repo: REPO, trigger: 'push', ref: REF, commit };
    t.queue.publish<PipelineStarted>('pipeline.started', pipeline, pipeline, {
      ...subject,
      workflows: WORKFLOWS,
      observedAt: Date.now(),
    });
    WORKFLOWS.forEach((workflow, w) => {
      if (w === WORKFLOWS.length - 1) lastStatusAt.set(commit, performance.now());
      t.queue.publish<WorkflowStatusChanged>('workflow.status', pipeline, `${workflow}/success`, {
        ...subject,
        workflow,
        status: i % 10 === 0 && w === 1 ? 'failed' : 'success',
        createdAt: new Date().toISOString(),
        rkey: `r${i}${w}`,
      });
    });
  }
  const deadline = Date.now() + 60_000;
  while (samples.length < commits && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  await t.queue.stop(1000);
  const bytes = tableBytes(t.db);
  const breakdown = t.db
    .prepare(
      `SELECT name, SUM(pgsize) AS b FROM dbstat WHERE name LIKE '%gn\\_%' ESCAPE '\\' GROUP BY name ORDER BY b DESC`,
    )
    .all() as Array<{ name: string; b: number }>;
  console.log(
    `    per table and index (bytes per commit): ${breakdown.map((r) => `${r.name} ${fmt(r.b / commits)}`).join(', ')}`,
  );
  t.db.close();
  return {
    commits: samples.length,
    p50: percentile(samples, 50),
    p99: percentile(samples, 99),
    max: Math.max(...samples),
    bytesPerCommit: bytes / commits,
  };
}

/** Bytes of the greenness tables and indexes (dbstat when SQLite has it, else page counts). */
function tableBytes(db: Db): number {
  try {
    return (
      db
        .prepare(
          `SELECT SUM(pgsize) AS b FROM dbstat WHERE name LIKE 'gn\\_%' ESCAPE '\\' OR name LIKE 'sqlite_autoindex_gn\\_%' ESCAPE '\\'`,
        )
        .get() as { b: number }
    ).b;
  } catch {
    return Number.NaN;
  }
}

/** The same rows (pipeline, 4 runs, validation, 5 facts, green log, queue update) inserted bare. */
function bareInserts(dir: string, commits: number) {
  const db = openDatabase(join(dir, 'bare.db'));
  db.exec(`CREATE TABLE p (id TEXT PRIMARY KEY, v TEXT); CREATE TABLE r (k TEXT PRIMARY KEY, v TEXT);
           CREATE TABLE v (k TEXT PRIMARY KEY, v TEXT); CREATE TABLE f (k TEXT PRIMARY KEY, v REAL);
           CREATE TABLE g (k TEXT PRIMARY KEY, v TEXT); CREATE TABLE q (k TEXT PRIMARY KEY, n INTEGER);
           INSERT INTO q VALUES ('q', 0);`);
  const ins = (t: string) => db.prepare(`INSERT INTO ${t} VALUES (?, ?)`);
  const [p, r, v, f, g] = ['p', 'r', 'v', 'f', 'g'].map(ins) as [
    ReturnType<typeof ins>,
    ReturnType<typeof ins>,
    ReturnType<typeof ins>,
    ReturnType<typeof ins>,
    ReturnType<typeof ins>,
  ];
  const bump = db.prepare(`UPDATE q SET n = n + 1 WHERE k = 'q'`);
  const samples: number[] = [];
  for (let i = 0; i < commits; i++) {
    const s = performance.now();
    db.transaction(() => {
      p.run(`p${i}`, JSON.stringify(WORKFLOWS));
      for (const w of WORKFLOWS) r.run(`p${i}/${w}`, 'success');
      v.run(`v${i}`, 'succeeded');
      for (const w of ['', ...WORKFLOWS]) f.run(`${i}/${w}`, 0);
      g.run(`g${i}`, 'x');
      bump.run();
    })();
    samples.push(performance.now() - s);
  }
  db.close();
  return { p50: percentile(samples, 50), p99: percentile(samples, 99), max: Math.max(...samples) };
}

async function httpLatency(dir: string) {
  const db = openDatabase(join(dir, 'b.db'));
  const key = queueKey(REPO, REF);
  const commitOf = (i: number) => i.toString(16).padStart(40, '0');
  db.transaction(() => {
    db.prepare(
      'INSERT INTO gn_queue (id, key, repo, ref, next_seq, last_green_seq, last_green_at, tip_seq, tip_green) VALUES (1, ?, ?, ?, ?, ?, 0, ?, 1)',
    ).run(key, REPO, REF, RECORDED + 1, RECORDED, RECORDED);
    const p = db.prepare(
      'INSERT INTO gn_pipeline (id, uri, knot, repo, trigger, ref, commit_sha, workflows, observed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)',
    );
    const r = db.prepare(
      `INSERT INTO gn_run (pipeline, workflow, status, status_at) VALUES (?, ?, 'success', 0)`,
    );
    const v = db.prepare(
      `INSERT INTO gn_validation (queue, seq, commit_sha, pipeline, attempt, state, deadline_at, created_at, updated_at) VALUES (1, ?, ?, ?, 1, 'succeeded', 0, 0, 0)`,
    );
    const f = db.prepare(
      'INSERT INTO gn_fact (queue, seq, project, degree, created_at) VALUES (1, ?, ?, 0, 0)',
    );
    for (let i = 1; i <= RECORDED; i++) {
      const commit = commitOf(i);
      p.run(i, `p${i}`, 'knot', REPO, 'push', REF, commit, JSON.stringify(WORKFLOWS));
      for (const w of WORKFLOWS) r.run(i, w);
      v.run(i, commit, i);
      for (const project of ['', ...WORKFLOWS.map((w) => `workflow:${w}`)]) f.run(i, project);
    }
  })();
  const app = new Hono();
  app.get('/healthz', (c) => c.text('ok'));
  new GreennessApi(new GreennessStore(db)).mount(app);
  const server = createAdaptorServer({ fetch: app.fetch });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const q = `repo=${encodeURIComponent(REPO)}&ref=main`;
  const out: Array<{ name: string; p50: number; p99: number; max: number }> = [];
  for (const [name, path] of [
    ['/healthz (baseline)', () => '/healthz'],
    ['gate', () => `/greenness/v1/gate?${q}&commit=${commitOf(1 + Math.floor(Math.random() * RECORDED))}`],
    [
      'status',
      () => `/greenness/v1/status?${q}&commit=${commitOf(1 + Math.floor(Math.random() * RECORDED))}`,
    ],
  ] as const) {
    const samples: number[] = [];
    for (let i = 0; i < REQUESTS; i++) {
      const s = performance.now();
      const res = await fetch(`${base}${path()}`);
      await res.arrayBuffer();
      samples.push(performance.now() - s);
    }
    out.push({ name, p50: percentile(samples, 50), p99: percentile(samples, 99), max: Math.max(...samples) });
  }
  await new Promise<void>((resolve) => server.close(() => resolve()));
  db.close();
  return out;
}
