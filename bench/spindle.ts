/**
 * Spindle benchmark (issue figures a–d), each beside a baseline measured in the same run:
 *  (a) knot frame → trigger() latency at 50 pipelines/s × 3 workflows, the stub at zero
 *      duration; baseline: the same frames read by a bare ws client that parses them and calls
 *      trigger() at once (no validation, no queue, no SQLite);
 *  (b) /events fan-out to 200 clients at 2000 status events/s, write → received latency; and
 *      throughput of a burst, as a ratio to a bare `ws` broadcast server fed the same frames;
 *  (c) backfill of 1,000,000 stored events to one client, events/s, as a ratio to a bare
 *      SQLite scan + send over `ws`;
 *  (d) RSS of `treadle serve` with 10,000 repos on 500 connected knots, beside a bare process
 *      holding the same 500 ws connections.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { WebSocket, WebSocketServer } from 'ws';
import { FakeKnot } from '../fakes/knot.ts';
import type { BuildRequest, BuildRunner } from '../providers/runner.ts';
import { StubRunner } from '../providers/stub/stub-runner.ts';
import { loadConfig } from '../src/config.ts';
import { CursorStore } from '../src/db/cursor-store.ts';
import { openDatabase } from '../src/db/database.ts';
import { migrate } from '../src/db/migrate.ts';
import { RepoStore } from '../src/db/repo-store.ts';
import { sortedJson } from '../src/events/event-log.ts';
import { createLogger } from '../src/logger.ts';
import { Service } from '../src/service.ts';
import { fmt, percentile, printTable } from './stats.ts';

export const OWNER = 'did:plc:benchowner';
const HOST = 'spindle.bench';
const ROOT = new URL('../', import.meta.url);

export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function env(dir: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    TREADLE_HOSTNAME: HOST,
    TREADLE_OWNER: OWNER,
    TREADLE_LISTEN: '127.0.0.1:0',
    TREADLE_DB: join(dir, 'treadle.db'),
    TREADLE_JETSTREAM_URL: 'ws://127.0.0.1:9/subscribe',
    TREADLE_PLC_URL: 'http://127.0.0.1:9',
    TREADLE_DEV: '1',
    TREADLE_ENGINES: 'nixery=stub',
    ...extra,
  };
}

/** A database with `repos` served repos spread over `knots`, and a fresh Jetstream cursor (no backfill). */
export function seed(file: string, knots: string[], repos: number): void {
  const db = openDatabase(file);
  migrate(db);
  const store = new RepoStore(db, OWNER);
  db.transaction(() => {
    for (let i = 0; i < repos; i++) {
      store.putRepo({
        owner: OWNER,
        rkey: `r${i}`,
        name: `repo${i}`,
        knot: knots[i % knots.length]!,
        repoDid: null,
      });
    }
  })();
  new CursorStore(db).set('jetstream', BigInt(Date.now()) * 1000n);
  db.close();
}

const RAW =
  'engine: nixery\nsteps:\n  - name: test\n    command: echo hi\ntreadle:\n  stub:\n    duration: 0s\n';

function pipeline(knot: string, i: number): Record<string, unknown> {
  return {
    $type: '',
    triggerMetadata: {
      kind: 'push',
      push: { ref: 'refs/heads/main', newSha: i.toString(16).padStart(40, '0'), oldSha: '0'.repeat(40) },
      repo: { defaultBranch: '', did: OWNER, knot, repo: 'repo0' },
    },
    workflows: ['a.yml', 'b.yml', 'c.yml'].map((name) => ({
      name: `${i}-${name}`,
      engine: 'nixery',
      clone: { depth: 0, skip: false, submodules: false },
      raw: RAW,
    })),
  };
}

// ---------------------------------------------------------------------------------------- (a)

const A_RATE = 50;
const A_SECONDS = 10;

async function intakeLatency(dir: string): Promise<{ treadle: number[]; bare: number[] }> {
  const knot = await FakeKnot.start();
  const emitted = new Map<string, number>();
  const treadle: number[] = [];
  const stub = new StubRunner();
  const timed: BuildRunner = {
    name: 'stub',
    pushesProgress: false,
    trigger: (req: BuildRequest) => {
      const rkey = req.id.split('/')[1]!;
      treadle.push(nowMs() - emitted.get(rkey)!);
      return stub.trigger(req);
    },
    status: (id) => stub.status(id),
    cancel: (id) => stub.cancel(id),
    logs: (id, signal) => stub.logs(id, signal),
  };
  const e = env(dir);
  seed(e.TREADLE_DB!, [knot.host], 1);
  const service = Service.create(loadConfig(e).config, createLogger('silent'), () => {}, {
    runners: new Map([['stub', timed]]),
  });
  await service.start();
  while (knot.connected === 0) await sleep(10);
  const total = A_RATE * A_SECONDS;
  for (let i = 0; i < total; i++) {
    const rkey = `3kbench${String(i).padStart(6, '0')}`;
    emitted.set(rkey, nowMs());
    knot.emit('sh.tangled.pipeline', rkey, pipeline(knot.host, i));
    await sleep(1000 / A_RATE);
  }
  while (treadle.length < total * 3) await sleep(20);
  await service.stop();

  // Baseline: the same frames, read by a bare client that parses them and calls trigger().
  const bare: number[] = [];
  const bareStub = new StubRunner();
  const ws = new WebSocket(`ws://${knot.host}/events`);
  await new Promise((resolve) => ws.once('open', resolve));
  ws.on('message', (data) => {
    const f = JSON.parse(data.toString()) as { rkey: string; event: ReturnType<typeof pipeline> };
    for (const w of f.event.workflows as Array<{ name: string; raw: string; engine: string }>) {
      bare.push(nowMs() - emitted.get(f.rkey)!);
      void bareStub.trigger({
        id: `${knot.host}/${f.rkey}/${w.name}`,
        repo: { did: OWNER, name: 'repo0', knot: knot.host, cloneUrl: '' },
        head: { ref: 'refs/heads/main', sha: 'a'.repeat(40) },
        workflow: { name: w.name, raw: w.raw, engine: w.engine, options: { duration: '0s' } },
        env: {},
        metadata: {},
      });
    }
  });
  for (let i = 0; i < total; i++) {
    const rkey = `3kbare${String(i).padStart(6, '0')}`;
    emitted.set(rkey, nowMs());
    knot.emit('sh.tangled.pipeline', rkey, pipeline(knot.host, i));
    await sleep(1000 / A_RATE);
  }
  while (bare.length < total * 3) await sleep(20);
  ws.close();
  await knot.close();
  return { treadle, bare };
}

// ---------------------------------------------------------------------------------------- (b)

const B_CLIENTS = 200;
const B_RATES = [2000, 400];
const B_SECONDS = 5;
const B_BURST = 20_000;

interface ClientsResult {
  latencies: number[];
  firstAt: number;
  lastAt: number;
}

export async function clients(
  url: string,
  n: number,
  expect: number,
): Promise<{ ready: Promise<void>; done: Promise<ClientsResult> }> {
  const worker = new Worker(new URL('./ws-clients.ts', import.meta.url), {
    workerData: { url, clients: n, expect },
  });
  let ready!: () => void;
  let done!: (r: ClientsResult) => void;
  const r = {
    ready: new Promise<void>((resolve) => {
      ready = resolve;
    }),
    done: new Promise<ClientsResult>((resolve) => {
      done = resolve;
    }),
  };
  worker.on('message', (m: { type: string } & ClientsResult) => {
    if (m.type === 'ready') ready();
    else {
      done(m);
      void worker.terminate();
    }
  });
  worker.on('error', (err) => {
    console.error('client worker failed', err);
    process.exit(1);
  });
  return r;
}

/** `t`: when the event was due (ms), so a writer that falls behind shows up as latency. */
export function statusRecord(i: number, t = nowMs()): Record<string, unknown> {
  return {
    $type: 'sh.tangled.pipeline.status',
    createdAt: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    pipeline: 'at://did:web:knot.example.com/sh.tangled.pipeline/3kbenchpipe222',
    status: 'running',
    t,
    workflow: `w${i}.yml`,
  };
}

/** Writes `count` events at `rate`/s (0: as fast as possible) through `write(i, dueAt)`. */
export async function feed(
  count: number,
  rate: number,
  write: (i: number, dueAt: number) => void,
): Promise<void> {
  const start = nowMs();
  for (let i = 0; i < count; ) {
    const due =
      rate === 0
        ? Math.min(count, i + 100)
        : Math.min(count, Math.floor(((nowMs() - start) / 1000) * rate) + 1);
    for (; i < due; i++) write(i, rate === 0 ? nowMs() : start + (i * 1000) / rate);
    await sleep(rate === 0 ? 0 : 5);
  }
}

/** Live latency at each of B_RATES, then the throughput of a burst, against one server. */
async function measureFanOut(
  url: string,
  write: (i: number, dueAt: number) => void,
): Promise<{ live: number[][]; burst: number }> {
  const live: number[][] = [];
  for (const rate of B_RATES) {
    const c = await clients(url, B_CLIENTS, rate * B_SECONDS);
    await c.ready;
    await feed(rate * B_SECONDS, rate, write);
    live.push((await c.done).latencies);
  }
  const c = await clients(url, B_CLIENTS, B_BURST);
  await c.ready;
  const t0 = nowMs();
  await feed(B_BURST, 0, write);
  const done = await c.done;
  return { live, burst: B_BURST / ((done.lastAt - t0) / 1000) };
}

async function fanOut(
  dir: string,
): Promise<{ live: number[][]; bareLive: number[][]; burst: number; bareBurst: number }> {
  const e = env(dir);
  seed(e.TREADLE_DB!, ['knot.example.com'], 0);
  const service = Service.create(loadConfig(e).config, createLogger('silent'));
  await service.start();
  const events = service.ctx.events;
  let n = 0;
  const treadle = await measureFanOut(`ws://127.0.0.1:${service.port}/events`, (_i, dueAt) => {
    events.append('sh.tangled.pipeline.status', `3kb${String(n).padStart(10, '0')}`, statusRecord(n, dueAt));
    n++;
  });
  await service.stop();

  // Baseline: a bare ws broadcast server sending the same frames to every client.
  const server = createServer();
  const wss = new WebSocketServer({ server, perMessageDeflate: false });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  let created = BigInt(Date.now()) * 1_000_000n;
  const bare = await measureFanOut(`ws://127.0.0.1:${(server.address() as AddressInfo).port}`, (i, dueAt) => {
    const frame = Buffer.from(
      `{"created":${created++},"event":${sortedJson(statusRecord(i, dueAt))},"nsid":"sh.tangled.pipeline.status","rkey":"3kb${i}"}`,
    );
    for (const ws of wss.clients) ws.send(frame, { binary: false });
  });
  wss.close();
  server.close();
  return { live: treadle.live, bareLive: bare.live, burst: treadle.burst, bareBurst: bare.burst };
}

// ---------------------------------------------------------------------------------------- (c)

const C_EVENTS = 1_000_000;

async function backfill(dir: string): Promise<{ treadle: number; bare: number }> {
  const e = env(dir);
  seed(e.TREADLE_DB!, ['knot.example.com'], 0);
  const db = openDatabase(e.TREADLE_DB!);
  const insert = db.prepare('INSERT INTO events (created, nsid, rkey, event) VALUES (?, ?, ?, ?)');
  const base = BigInt(Date.now() - 86_400_000) * 1_000_000n;
  const record = sortedJson({ ...statusRecord(0), t: undefined });
  db.transaction(() => {
    for (let i = 0; i < C_EVENTS; i++)
      insert.run(base + BigInt(i), 'sh.tangled.pipeline.status', `3kc${i}`, record);
  })();
  db.close();

  const service = Service.create(loadConfig(e).config, createLogger('silent'));
  await service.start();
  let c = await clients(`ws://127.0.0.1:${service.port}/events?cursor=-1`, 1, C_EVENTS);
  const t0 = nowMs();
  await c.ready;
  const r = await c.done;
  const treadle = C_EVENTS / ((r.lastAt - t0) / 1000);
  await service.stop();

  // Baseline: scan the same table in created order and send each row as a frame.
  const bareDb = openDatabase(e.TREADLE_DB!);
  const scan = bareDb
    .prepare('SELECT created, nsid, rkey, event FROM events ORDER BY created')
    .safeIntegers(true);
  const server = createServer();
  const wss = new WebSocketServer({ server, perMessageDeflate: false });
  wss.on('connection', async (ws) => {
    for (const row of scan.iterate() as Iterable<{
      created: bigint;
      nsid: string;
      rkey: string;
      event: string;
    }>) {
      ws.send(`{"created":${row.created},"event":${row.event},"nsid":"${row.nsid}","rkey":"${row.rkey}"}`);
      if (ws.bufferedAmount > 1 << 20) while (ws.bufferedAmount > 1 << 18) await sleep(1);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  c = await clients(`ws://127.0.0.1:${(server.address() as AddressInfo).port}`, 1, C_EVENTS);
  const t1 = nowMs();
  await c.ready;
  const b = await c.done;
  const bare = C_EVENTS / ((b.lastAt - t1) / 1000);
  wss.close();
  server.close();
  bareDb.close();
  return { treadle, bare };
}

// ---------------------------------------------------------------------------------------- (d)

const D_REPOS = 10_000;
const D_KNOTS = 500;

function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : Number.NaN;
}

async function daemonRss(dir: string, hosts: string[], knots: FakeKnot[], flags: string[]): Promise<number> {
  const e = env(dir, { TREADLE_LOG_LEVEL: 'warn' });
  seed(e.TREADLE_DB!, hosts, D_REPOS);
  const child = spawn(process.execPath, [...flags, new URL('bin/treadle.js', ROOT).pathname, 'serve'], {
    env: { ...process.env, ...e },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const deadline = Date.now() + 60_000;
  while (knots.some((k) => k.connected === 0) && Date.now() < deadline) await sleep(100);
  if (knots.some((k) => k.connected === 0)) throw new Error('not every knot was connected within 60 s');
  await sleep(2000);
  const rss = rssOf(child.pid!);
  child.kill('SIGTERM');
  await new Promise((resolve) => child.once('exit', resolve));
  while (knots.some((k) => k.connected > 0)) await sleep(50);
  return rss;
}

async function memory(fresh: () => string): Promise<{ plain: number; small: number; bare: number }> {
  const knots = await Promise.all(
    Array.from({ length: D_KNOTS }, () => FakeKnot.start({ pingMs: 3_600_000 })),
  );
  const hosts = knots.map((k) => k.host);
  const plain = await daemonRss(fresh(), hosts, knots, []);
  const small = await daemonRss(fresh(), hosts, knots, ['--max-semi-space-size=2']);
  const bareChild = spawn(
    process.execPath,
    [new URL('bench/ws-clients.ts', ROOT).pathname, '--rss', ...hosts.map((h) => `ws://${h}/events`)],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  bareChild.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  await new Promise((resolve) => bareChild.once('exit', resolve));
  await Promise.all(knots.map((k) => k.close()));
  return { plain, small, bare: Number(out.trim()) };
}

// ---------------------------------------------------------------------------------------- main

export async function spindleBench(): Promise<void> {
  const only = (process.env.BENCH_PARTS ?? 'abcd').split('');
  const dirs: string[] = [];
  const fresh = () => {
    const d = mkdtempSync(join(tmpdir(), 'treadle-bench-'));
    dirs.push(d);
    return d;
  };
  try {
    if (only.includes('a')) {
      const a = await intakeLatency(fresh());
      console.log(
        `(a) knot frame → trigger() latency (ms), ${A_RATE} pipelines/s × 3 workflows for ${A_SECONDS} s, stub at 0 s`,
      );
      printTable(
        ['', 'p50', 'p99', 'max', 'n'],
        [
          [
            'treadle',
            fmt(percentile(a.treadle, 50), 2),
            fmt(percentile(a.treadle, 99), 2),
            fmt(Math.max(...a.treadle), 2),
            a.treadle.length,
          ],
          [
            'bare parse + trigger',
            fmt(percentile(a.bare, 50), 2),
            fmt(percentile(a.bare, 99), 2),
            fmt(Math.max(...a.bare), 2),
            a.bare.length,
          ],
        ],
      );
    }
    if (only.includes('b')) {
      const b = await fanOut(fresh());
      console.log(
        `\n(b) /events fan-out to ${B_CLIENTS} clients (one client thread on the same machine): write → received (ms), ${B_SECONDS} s per rate; a burst of ${fmt(B_BURST)} events`,
      );
      printTable(
        ['', ...B_RATES.flatMap((r) => [`p50 @${r}/s`, `p99 @${r}/s`]), 'burst events/s', 'burst frames/s'],
        [
          [
            'treadle /events',
            ...b.live.flatMap((l) => [fmt(percentile(l, 50), 2), fmt(percentile(l, 99), 2)]),
            fmt(b.burst),
            fmt(b.burst * B_CLIENTS),
          ],
          [
            'bare ws broadcast',
            ...b.bareLive.flatMap((l) => [fmt(percentile(l, 50), 2), fmt(percentile(l, 99), 2)]),
            fmt(b.bareBurst),
            fmt(b.bareBurst * B_CLIENTS),
          ],
        ],
      );
      console.log(`throughput ratio treadle / bare: ${fmt(b.burst / b.bareBurst, 2)}`);
    }
    if (only.includes('c')) {
      const c = await backfill(fresh());
      console.log(`\n(c) backfill of ${fmt(C_EVENTS)} stored events to one client (events/s)`);
      printTable(
        ['', 'events/s'],
        [
          ['treadle /events?cursor=-1', fmt(c.treadle)],
          ['bare SQLite scan + send', fmt(c.bare)],
        ],
      );
      console.log(`ratio treadle / bare: ${fmt(c.treadle / c.bare, 2)}`);
    }
    if (only.includes('d')) {
      const d = await memory(fresh);
      console.log(`\n(d) resident memory with ${fmt(D_REPOS)} repos on ${D_KNOTS} knots, all connected`);
      printTable(
        ['', 'RSS MB'],
        [
          ['treadle serve (node defaults)', fmt(d.plain / 2 ** 20, 1)],
          ['treadle serve (--max-semi-space-size=2, as npm start)', fmt(d.small / 2 ** 20, 1)],
          [`bare node + ${D_KNOTS} ws clients`, fmt(d.bare / 2 ** 20, 1)],
        ],
      );
    }
  } finally {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
}
