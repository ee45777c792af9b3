/**
 * `npm run bench -- buildkite`: the Buildkite runner in process against the fake Buildkite.
 *
 * (a) API calls per workflow run (one job per build), with webhooks working and with every
 *     webhook lost (reconciliation by polling alone). Baseline: the floor of create + one final
 *     log fetch, and for lost webhooks the target 3 + run duration / poll interval.
 * (b) dispatch latency: knot `sh.tangled.pipeline` frame → the fake receiving the create
 *     request, at 50 pipelines/s. Baseline: the same create sent straight from this process.
 * (c) log streaming: a finished job with a 1,000,000-line log, read by one `/logs` client on its
 *     own thread, as the appview is its own process (lines/s from the first line to the close). Baseline: splitting and parsing the same raw
 *     log in process.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { FakeBuildkite } from '../fakes/buildkite.ts';
import { FakeKnot } from '../fakes/knot.ts';
import { LogLineSplitter } from '../providers/buildkite/log-parse.ts';
import { loadConfig } from '../src/config.ts';
import { CursorStore } from '../src/db/cursor-store.ts';
import { openDatabase } from '../src/db/database.ts';
import { migrate } from '../src/db/migrate.ts';
import { RepoStore } from '../src/db/repo-store.ts';
import { createLogger } from '../src/logger.ts';
import { Service } from '../src/service.ts';
import { pipelineRecord } from '../test/support/stack.ts';
import { env, OWNER } from './spindle.ts';
import { fmt, percentile, printTable } from './stats.ts';

const SECRET = 'bench-secret';
const RATE = 50;
const DISPATCHED = Number(process.env.BENCH_BK_PIPELINES ?? 500);
const CALL_RUNS = 30;
const LOG_LINES = 1_000_000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const nowMs = () => performance.timeOrigin + performance.now();

const WORKFLOW = (pipeline: string) =>
  `engine: nixery\nsteps:\n  - name: t\n    command: make\ntreadle:\n  buildkite:\n    pipeline: ${pipeline}\n`;

interface Rig {
  bk: FakeBuildkite;
  knot: FakeKnot;
  service: Service;
  base: string;
  close(): Promise<void>;
}

async function rig(extra: Record<string, string>): Promise<Rig> {
  const dir = mkdtempSync(join(tmpdir(), 'treadle-bench-bk-'));
  const bk = await FakeBuildkite.start({ orgLimit: 100_000, userLimit: 100_000 });
  const knot = await FakeKnot.start();
  const e = env(dir, {
    TREADLE_BUILDKITE_TOKEN: bk.token,
    TREADLE_BUILDKITE_ORG: 'acme',
    TREADLE_BUILDKITE_API_URL: bk.apiUrl,
    TREADLE_BUILDKITE_WEBHOOK_SECRET: SECRET,
    TREADLE_BUILDKITE_RATE_LIMIT: '100000',
    TREADLE_QUEUE_CONCURRENCY: '64',
    ...extra,
  });
  const db = openDatabase(e.TREADLE_DB!);
  migrate(db);
  new RepoStore(db, OWNER).putRepo({
    owner: OWNER,
    rkey: 'r',
    name: 'hello',
    knot: knot.host,
    repoDid: null,
  });
  new CursorStore(db).set('jetstream', BigInt(Date.now()) * 1000n);
  db.close();
  const service = Service.create(loadConfig(e).config, createLogger('silent'), () => {});
  await service.start();
  const base = `http://127.0.0.1:${service.port}`;
  bk.webhook = { url: `${base}/webhooks/buildkite`, mode: 'token', secret: SECRET };
  while (knot.connected === 0) await sleep(10);
  return {
    bk,
    knot,
    service,
    base,
    async close() {
      await service.stop();
      await Promise.all([bk.close(), knot.close()]);
    },
  };
}

let seq = 0;
function emit(r: Rig, pipeline: string): string {
  const rkey = `3kbk${String(seq++).padStart(9, '0')}`;
  r.knot.emit(
    'sh.tangled.pipeline',
    rkey,
    pipelineRecord(r.knot.host, [{ name: 'w.yml', raw: WORKFLOW(pipeline) }], { did: OWNER, name: 'hello' }),
  );
  return rkey;
}

/** Waits until every build of the fake is finished and its log fetched. */
async function drained(r: Rig, runs: number): Promise<void> {
  for (;;) {
    const logFetches = r.bk.requests.filter((q) => q.endsWith('/log')).length;
    if (r.bk.builds.length >= runs && logFetches >= runs) return;
    await sleep(50);
  }
}

async function apiCalls(webhooks: boolean): Promise<{ perRun: number; durationS: number; pollS: number }> {
  const pollS = 2;
  const r = await rig({ TREADLE_BUILDKITE_POLL_INTERVAL: `${pollS}s` });
  const runMs = 1500;
  r.bk.script('calls', { startAfterMs: 50, runMs, jobs: [{ name: 'j', command: 'make', lines: 50 }] });
  if (!webhooks) r.bk.dropRate = 1;
  for (let i = 0; i < CALL_RUNS; i++) emit(r, 'calls');
  await drained(r, CALL_RUNS);
  await sleep(500);
  const perRun = r.bk.requests.length / CALL_RUNS;
  await r.close();
  return { perRun, durationS: (runMs + 50) / 1000, pollS };
}

async function dispatchLatency(): Promise<{ treadle: number[]; direct: number[] }> {
  const r = await rig({});
  r.bk.script('fast', { startAfterMs: 10, runMs: 50, jobs: [{ name: 'j', command: 'true', lines: 1 }] });
  const emitted = new Map<string, number>();
  const start = nowMs();
  for (let i = 0; i < DISPATCHED; i++) {
    const due = start + (i * 1000) / RATE;
    while (nowMs() < due) await sleep(1);
    emitted.set(emit(r, 'fast'), nowMs());
  }
  while (r.bk.builds.length < DISPATCHED) await sleep(20);
  const treadle = r.bk.builds.map((b) => {
    const rkey = (b.body.meta_data as Record<string, string>)['treadle:rkey']!;
    return b.createdAt - emitted.get(rkey)!;
  });
  const direct: number[] = [];
  for (let i = 0; i < 200; i++) {
    const t0 = nowMs();
    const res = await fetch(`${r.bk.apiUrl}/organizations/acme/pipelines/fast/builds`, {
      method: 'POST',
      headers: { authorization: `Bearer ${r.bk.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ commit: 'a'.repeat(40), branch: 'main' }),
    });
    await res.arrayBuffer();
    direct.push(r.bk.builds.at(-1)!.createdAt - t0);
  }
  await r.close();
  return { treadle, direct };
}

async function logThroughput(): Promise<{ treadle: number; parse: number }> {
  const r = await rig({});
  r.bk.script('big', {
    startAfterMs: 10,
    runMs: 200,
    jobs: [{ name: 'j', command: 'make', lines: LOG_LINES }],
  });
  const rkey = emit(r, 'big');
  await drained(r, 1);
  const build = r.bk.builds[0]!;
  const raw = r.bk.logOf(build.jobs[0]!, Date.now());
  const t0 = nowMs();
  const splitter = new LogLineSplitter();
  let parsed = splitter.push(raw).length;
  parsed += splitter.flush().length;
  const parse = parsed / ((nowMs() - t0) / 1000);

  const url = `${r.base.replace('http', 'ws')}/logs/${encodeURIComponent(r.knot.host)}/${rkey}/w.yml`;
  const reader = new Worker(new URL('./logs-client.ts', import.meta.url), { workerData: { url } });
  const { lines, seconds } = await new Promise<{ lines: number; seconds: number }>((resolve, reject) => {
    reader.once('message', resolve);
    reader.once('error', reject);
  });
  await reader.terminate();
  await r.close();
  return { treadle: lines / seconds, parse };
}

export async function buildkiteBench(): Promise<void> {
  // BENCH_BK_PARTS=c (or any of a, b, c) runs only those parts.
  const parts = process.env.BENCH_BK_PARTS ?? 'abc';
  if (parts.includes('a')) await callsPart();
  if (parts.includes('b')) await dispatchPart();
  if (parts.includes('c')) await logsPart();
}

async function callsPart(): Promise<void> {
  const withHooks = await apiCalls(true);
  const lost = await apiCalls(false);
  printTable(
    ['(a) API calls per workflow run', 'measured', 'baseline / target'],
    [
      ['webhooks working', fmt(withHooks.perRun, 2), '≤ 3 (create + final GET + 1 log fetch)'],
      [
        `all webhooks lost (run ${lost.durationS} s, poll ${lost.pollS} s)`,
        fmt(lost.perRun, 2),
        `≤ ${fmt(3 + lost.durationS / lost.pollS, 2)} (3 + duration / poll)`,
      ],
    ],
  );
}

async function dispatchPart(): Promise<void> {
  const d = await dispatchLatency();
  printTable(
    [`(b) knot frame → create received, ${RATE}/s`, 'n', 'p50 ms', 'p99 ms'],
    [
      ['treadle', d.treadle.length, fmt(percentile(d.treadle, 50), 1), fmt(percentile(d.treadle, 99), 1)],
      [
        'baseline: create sent directly',
        d.direct.length,
        fmt(percentile(d.direct, 50), 1),
        fmt(percentile(d.direct, 99), 1),
      ],
    ],
  );
}

async function logsPart(): Promise<void> {
  const l = await logThroughput();
  printTable(
    [`(c) ${LOG_LINES.toLocaleString('en')}-line job log`, 'lines/s'],
    [
      ['into one /logs client', fmt(l.treadle, 0)],
      ['baseline: split + parse in process', fmt(l.parse, 0)],
    ],
  );
}
