/**
 * `npm run soak -- --minutes N`: treadle as a child process against the fakes (a knot, Jetstream,
 * PLC + PDS, Buildkite with its fault injection) and an appview-like client that follows `/events`
 * with its cursor across restarts and re-reads `/logs`. Pipelines arrive all along, half their
 * work on Buildkite, half on the stub runner; every 20–60 s the daemon is SIGKILLed and restarted,
 * and between kills the knot drops its connections, webhooks are lost, and the Buildkite API
 * answers 5xx and 429 bursts. A `treadle backup` is taken midway.
 *
 * At the end it checks, and prints: every pipeline sent before the last minute has every
 * workflow in exactly one terminal status, as its runner decided; the client saw every status
 * record key exactly once; Buildkite saw one build per run; greenness agrees with the outcomes;
 * the backup passes integrity_check and, restored, a daemon serves the same /events history; RSS and the database stayed within bounds. Any violation
 * exits 1.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { WebSocket } from 'ws';
import { AppviewEvents } from '../fakes/appview.ts';
import { FakeBuildkite } from '../fakes/buildkite.ts';
import { FakeJetstream } from '../fakes/jetstream.ts';
import { FakeKnot } from '../fakes/knot.ts';
import { FakePds } from '../fakes/pds.ts';

const ROOT = new URL('../', import.meta.url).pathname;
const TREADLE = join(ROOT, 'bin/treadle.js');
const OWNER = 'did:plc:soakowner';
const HOST = 'spindle.soak';
const SECRET = 'whsec-soak';
const TERMINAL = new Set(['success', 'failed', 'timeout', 'cancelled']);
const RSS_LIMIT_MB = 512;
const DB_LIMIT_MB = 256;

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '2' },
    'kill-min': { type: 'string', default: '20' },
    'kill-max': { type: 'string', default: '60' },
    rate: { type: 'string', default: '0.7' },
  },
});
const minutes = Number(values.minutes);
const killMin = Number(values['kill-min']) * 1000;
const killMax = Number(values['kill-max']) * 1000;
const perSecond = Number(values.rate);
if (!(minutes > 0) || !(killMin > 0) || !(killMax >= killMin) || !(perSecond > 0)) {
  process.stderr.write(
    'usage: npm run soak -- --minutes N [--kill-min S] [--kill-max S] [--rate pipelines/s]\n',
  );
  process.exit(2);
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const between = (a: number, b: number) => a + Math.random() * (b - a);
const log = (msg: string) => process.stdout.write(`[${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

interface Daemon {
  child: ChildProcess;
  base: string;
  exited: Promise<unknown>;
}

async function startDaemon(env: Record<string, string>, logFile: string): Promise<Daemon> {
  const base = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('TREADLE_') && !k.startsWith('SPINDLE_')),
  );
  const child = spawn(process.execPath, [TREADLE, 'serve'], {
    cwd: ROOT,
    env: { ...base, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  let head = '';
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      if (head !== undefined && head.length < 1_000_000) head += d.toString();
      const line = head.split('\n').find((l) => l.includes('"msg":"listening"'));
      if (line) resolve(JSON.parse(line).port as number);
    });
    child.stderr!.on('data', (d: Buffer) => {
      head += d.toString();
    });
    child.on('exit', (code) =>
      reject(new Error(`treadle exited (${code}) before listening:\n${head.slice(-2000)}`)),
    );
  });
  // Keep the rest of the log in a file (for a look after a violation), not in memory.
  const { createWriteStream } = await import('node:fs');
  const out = createWriteStream(logFile, { flags: 'a' });
  out.write(head);
  head = '';
  child.stdout!.removeAllListeners('data');
  child.stdout!.pipe(out);
  child.stderr!.pipe(out);
  return { child, base: `http://127.0.0.1:${port}`, exited };
}

/** Runs a node script to its end: the exit code and everything it printed. */
function run(args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) =>
    execFile(process.execPath, args, (err, out, e) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: `${out}${e}` }),
    ),
  );
}

function rssMb(pid: number | undefined): number | undefined {
  if (!pid) return undefined;
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

function dbMb(file: string): number {
  let bytes = 0;
  for (const f of [file, `${file}-wal`]) if (existsSync(f)) bytes += statSync(f).size;
  return bytes / 2 ** 20;
}

/** Reads a workflow's /logs to its end: the lines, and the close code. */
function readLogs(base: string, path: string): Promise<{ lines: number; code: number }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`${base.replace(/^http/, 'ws')}/logs/${path}`);
    let lines = 0;
    const timer = setTimeout(() => ws.terminate(), 15_000);
    ws.on('message', () => lines++);
    ws.on('close', (code) => {
      clearTimeout(timer);
      resolve({ lines, code });
    });
    ws.on('error', () => {});
  });
}

interface Sent {
  key: string;
  sha: string;
  at: number;
  bk: 'ok' | 'bad';
  stub: 'success' | 'failure';
}

async function main(): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'treadle-soak-'));
  const dbFile = join(dir, 'treadle.db');
  const logFile = join(dir, 'treadle.log');
  const [jetstream, pds, knot] = await Promise.all([
    FakeJetstream.start(),
    FakePds.start(),
    FakeKnot.start(),
  ]);
  // Buildkite's per-user limit would pace a soak to 16 runs a minute; the faults are the point here.
  const bk = await FakeBuildkite.start({ orgLimit: 6000, userLimit: 3000 });
  pds.addIdentity(OWNER);
  jetstream.pds = pds;
  bk.script('ok', { startAfterMs: 100, runMs: 800, jobs: [{ name: 't', command: 'true', lines: 5 }] });
  bk.script('bad', {
    startAfterMs: 100,
    runMs: 800,
    jobs: [{ name: 'f', command: 'false', lines: 5, exitStatus: 2 }],
  });
  const env = {
    TREADLE_HOSTNAME: HOST,
    TREADLE_OWNER: OWNER,
    TREADLE_LISTEN: '127.0.0.1:0',
    TREADLE_DB: dbFile,
    TREADLE_JETSTREAM_URL: jetstream.url,
    TREADLE_PLC_URL: pds.url,
    TREADLE_DEV: '1',
    TREADLE_ENGINES: 'nixery=stub',
    TREADLE_SHUTDOWN_TIMEOUT: '3s',
    TREADLE_QUEUE_INITIAL_BACKOFF: '200ms',
    TREADLE_STREAM_MAX_BACKOFF: '2s',
    TREADLE_BUILDKITE_TOKEN: bk.token,
    TREADLE_BUILDKITE_ORG: 'acme',
    TREADLE_BUILDKITE_API_URL: bk.apiUrl,
    TREADLE_BUILDKITE_WEBHOOK_SECRET: SECRET,
    TREADLE_BUILDKITE_WEBHOOK_MODE: 'signature',
    TREADLE_BUILDKITE_POLL_INTERVAL: '3s',
    TREADLE_BUILDKITE_RATE_LIMIT: '2500',
  };
  const violations: string[] = [];
  const started = Date.now();
  const endAt = started + minutes * 60_000;
  let daemon = await startDaemon(env, logFile);
  const hook = () => {
    bk.webhook = { url: `${daemon.base}/webhooks/buildkite`, mode: 'signature', secret: SECRET };
  };
  hook();
  jetstream.commit(OWNER, 'sh.tangled.repo', 'soakrepo', 'create', {
    $type: 'sh.tangled.repo',
    name: 'soak',
    knot: knot.host,
    spindle: HOST,
    createdAt: new Date().toISOString(),
  });
  while (knot.connected === 0) await sleep(20);
  const app = new AppviewEvents();
  await app.connect(daemon.base);
  log(
    `treadle ${daemon.base}, soaking for ${minutes} min (kills every ${killMin / 1000}–${killMax / 1000} s)`,
  );

  const faults = { kills: 0, knotDrops: 0, rateLimitBursts: 0, backups: 0 };
  const samples: Array<{ at: number; rssMb?: number; dbMb: number }> = [];
  const sent: Sent[] = [];
  let running = true;

  // Load: pipelines of one Buildkite and one stub workflow, outcomes chosen at random.
  const load = (async () => {
    let n = 0;
    while (running && Date.now() < endAt) {
      const sha = randomBytes(20).toString('hex');
      const key = `3ksoak${String(++n).padStart(7, '0')}`;
      const s: Sent = {
        key,
        sha,
        at: Date.now(),
        bk: Math.random() < 0.7 ? 'ok' : 'bad',
        stub: Math.random() < 0.8 ? 'success' : 'failure',
      };
      knot.emit('sh.tangled.pipeline', key, {
        $type: '',
        triggerMetadata: {
          kind: 'push',
          push: { newSha: sha, oldSha: '0'.repeat(40), ref: 'refs/heads/main' },
          repo: { defaultBranch: '', did: OWNER, knot: knot.host, repo: 'soak' },
        },
        workflows: [
          {
            name: 'bk.yml',
            engine: 'nixery',
            clone: { depth: 0, skip: false, submodules: false },
            raw: `engine: nixery\nsteps:\n  - name: test\n    command: npm test\ntreadle:\n  buildkite:\n    pipeline: ${s.bk}\n`,
          },
          {
            name: 'stub.yml',
            engine: 'nixery',
            clone: { depth: 0, skip: false, submodules: false },
            raw: `engine: nixery\nsteps:\n  - name: test\n    command: npm test\ntreadle:\n  stub:\n    outcome: ${s.stub}\n    duration: ${Math.round(between(0, 2000))}ms\n`,
          },
        ],
      });
      sent.push(s);
      await sleep(1000 / perSecond);
    }
  })();

  // Faults: Buildkite misbehaves all along; kills, knot drops and 429 bursts at random times.
  bk.failRate = 0.05;
  bk.commitThenFailRate = 0.05;
  bk.dropRate = 0.3;
  const chaos = (async () => {
    let backupTaken = false;
    while (running && Date.now() < endAt - 20_000) {
      const wait = between(killMin, killMax);
      const dropAt = Date.now() + wait / 2;
      while (running && Date.now() < dropAt) await sleep(200);
      knot.dropConnections();
      faults.knotDrops++;
      bk.rateLimitBurst(3);
      faults.rateLimitBursts++;
      if (!backupTaken && Date.now() - started > (endAt - started) / 2) {
        backupTaken = true;
        const r = await run([TREADLE, 'backup', join(dir, 'backup.db'), '--db', dbFile]);
        if (r.code !== 0) violations.push(`treadle backup failed during the soak: ${r.out.trim()}`);
        else faults.backups++;
      }
      const killAt = dropAt + wait / 2;
      while (running && Date.now() < killAt) await sleep(200);
      if (!running || Date.now() >= endAt - 20_000) break;
      daemon.child.kill('SIGKILL');
      await daemon.exited;
      faults.kills++;
      await app.close();
      await sleep(between(0, 2000));
      daemon = await startDaemon(env, logFile);
      hook();
      await app.connect(daemon.base);
      log(
        `kill ${faults.kills}: restarted; ${sent.length} pipelines sent, ${app.statuses.size} statuses seen`,
      );
    }
  })();

  const sampler = setInterval(() => {
    samples.push({ at: Date.now() - started, rssMb: rssMb(daemon.child.pid), dbMb: dbMb(dbFile) });
  }, 2000);

  await load;
  running = false;
  await chaos;
  bk.failRate = 0;
  bk.commitThenFailRate = 0;
  bk.dropRate = 0;
  log(`load over: ${sent.length} pipelines sent; waiting for them to finish`);

  // Every pipeline sent before the last minute must end; the rest may still run.
  const due = sent.filter((s) => s.at < endAt - 60_000);
  const done = (s: Sent) =>
    ['bk.yml', 'stub.yml'].every((w) => TERMINAL.has(app.latest(s.key)[w]?.status ?? ''));
  const deadline = Date.now() + 180_000;
  while (Date.now() < deadline && !due.every(done)) await sleep(500);
  clearInterval(sampler);

  // 1. Each workflow: exactly one terminal status, as its runner decided.
  let statuses = 0;
  const outcome = new Map<string, boolean>();
  for (const s of due) {
    const latest = app.latest(s.key);
    for (const w of ['bk.yml', 'stub.yml']) {
      const terminal = app.history(s.key, w).filter((st) => TERMINAL.has(st));
      statuses += app.history(s.key, w).length;
      if (terminal.length !== 1) {
        violations.push(
          `${s.key}/${w}: ${terminal.length} terminal statuses (${app.history(s.key, w).join(', ')})`,
        );
        continue;
      }
      const got = latest[w]!;
      if (w === 'bk.yml') {
        const want = s.bk === 'ok' ? 'success' : 'failed';
        if (got.status !== want) violations.push(`${s.key}/bk.yml: ${got.status}, Buildkite said ${want}`);
      } else {
        const want = s.stub === 'success' ? 'success' : 'failed';
        // The stub runs inside treadle: a kill loses its run, which then fails as "treadle restarted".
        const restarted = got.status === 'failed' && /restarted/.test(got.error ?? '');
        if (got.status !== want && !restarted)
          violations.push(`${s.key}/stub.yml: ${got.status} (${got.error}), expected ${want}`);
      }
    }
    outcome.set(s.sha, latest['bk.yml']?.status === 'success' && latest['stub.yml']?.status === 'success');
  }

  // 2. Every status record key reached the client exactly once.
  const seen = new Map<string, number>();
  for (const f of app.frames) {
    const frame = JSON.parse(f) as { nsid?: string; rkey?: string };
    if (frame.nsid === 'sh.tangled.pipeline.status' && frame.rkey)
      seen.set(frame.rkey, (seen.get(frame.rkey) ?? 0) + 1);
  }
  const repeated = [...seen].filter(([, n]) => n > 1);
  if (repeated.length > 0)
    violations.push(`${repeated.length} status rkeys reached the client more than once`);
  if (app.fatal > 0) violations.push(`${app.fatal} frames the appview could not read`);

  // 3. One Buildkite build per run.
  const perRun = bk.buildsPerRequest();
  for (const s of due) {
    const n = perRun.get(`${knot.host}/${s.key}/bk.yml`) ?? 0;
    if (n !== 1) violations.push(`${s.key}/bk.yml: ${n} Buildkite builds`);
  }

  // 4. Greenness agrees with the outcomes.
  let greenChecked = 0;
  for (const s of due) {
    const res = await fetch(
      `${daemon.base}/greenness/v1/status?repo=${encodeURIComponent(`${OWNER}/soak`)}&ref=main&commit=${s.sha}`,
    );
    const body = (await res.json()) as { status?: string };
    const want = outcome.get(s.sha) ? 'green' : 'not_green';
    if (body.status !== want)
      violations.push(`greenness of ${s.sha.slice(0, 8)}: ${body.status}, outcomes say ${want}`);
    else greenChecked++;
  }

  // 5. /logs re-read: a finished workflow's log ends with 1000 and has lines.
  let logsRead = 0;
  for (const s of due.slice(-20)) {
    const r = await readLogs(daemon.base, `${knot.host}/${s.key}/bk.yml`);
    if (r.code !== 1000 || r.lines === 0)
      violations.push(`/logs of ${s.key}/bk.yml: ${r.lines} lines, close ${r.code}`);
    else logsRead++;
  }

  // 6. The backup taken midway opens and is intact.
  let backupEvents = 0;
  if (faults.backups > 0) {
    const b = new Database(join(dir, 'backup.db'), { readonly: true });
    const check = b.pragma('integrity_check', { simple: true });
    backupEvents = (b.prepare('SELECT count(*) AS n FROM events').get() as { n: number }).n;
    b.close();
    if (check !== 'ok') violations.push(`the backup taken during the soak: integrity_check ${check}`);
  }

  // 7. Bounds.
  const rss = samples.map((x) => x.rssMb ?? 0);
  const maxRss = Math.max(...rss);
  const maxDb = Math.max(...samples.map((x) => x.dbMb));
  if (maxRss > RSS_LIMIT_MB) violations.push(`RSS reached ${maxRss.toFixed(0)} MB (limit ${RSS_LIMIT_MB})`);
  if (maxDb > DB_LIMIT_MB)
    violations.push(`the database reached ${maxDb.toFixed(0)} MB (limit ${DB_LIMIT_MB})`);

  await app.close();
  daemon.child.kill('SIGTERM');
  await daemon.exited;
  await Promise.all([jetstream.close(), pds.close(), knot.close(), bk.close()]);

  // 6b. `treadle restore` puts the backup in place, and a daemon started on it serves the same
  // /events history, frame for frame, as the live daemon had served up to the backup.
  let restoredFrames = 0;
  if (faults.backups > 0) {
    const restored = join(dir, 'restored.db');
    const r = await run([TREADLE, 'restore', join(dir, 'backup.db'), '--db', restored]);
    if (r.code !== 0) violations.push(`treadle restore of the soak's backup failed: ${r.out.trim()}`);
    else {
      const copy = await startDaemon({ ...env, TREADLE_DB: restored }, logFile);
      const reader = new AppviewEvents({ cursor: -1n });
      await reader.connect(copy.base);
      const until = Date.now() + 30_000;
      while (reader.frames.length < backupEvents && Date.now() < until) await sleep(100);
      await reader.close();
      copy.child.kill('SIGTERM');
      await copy.exited;
      restoredFrames = Math.min(reader.frames.length, backupEvents);
      const differ = reader.frames.slice(0, backupEvents).findIndex((f, i) => f !== app.frames[i]);
      if (reader.frames.length < backupEvents)
        violations.push(`the restored backup served ${reader.frames.length} of its ${backupEvents} events`);
      else if (differ >= 0)
        violations.push(`the restored backup's /events differs from the live history at frame ${differ}`);
    }
  }

  const { sent: hooks, dropped } = bk.webhookCounts;
  const perMinute = (xs: typeof samples) => {
    const out: string[] = [];
    for (let m = 0; m * 60_000 <= (xs.at(-1)?.at ?? 0); m++) {
      const w = xs.filter((x) => x.at >= m * 60_000 && x.at < (m + 1) * 60_000);
      if (w.length === 0) continue;
      out.push(
        `  min ${String(m + 1).padStart(2)}: RSS ${Math.max(...w.map((x) => x.rssMb ?? 0)).toFixed(0)} MB, DB ${Math.max(...w.map((x) => x.dbMb)).toFixed(1)} MB`,
      );
    }
    return out.join('\n');
  };
  console.log(`
soak summary (${((Date.now() - started) / 60_000).toFixed(1)} min)
  faults survived: ${faults.kills} SIGKILLs, ${faults.knotDrops} knot disconnects, ${faults.rateLimitBursts} 429 bursts, ${dropped} of ${hooks} webhooks lost, 5xx at 5% and commit-then-500 at 5% of API calls
  pipelines: ${sent.length} sent, ${due.length} due (sent before the last minute), ${due.filter(done).length} finished
  statuses: ${statuses} seen for due pipelines, ${seen.size} status rkeys, ${repeated.length} repeated
  Buildkite builds: ${bk.builds.length}; greenness checked: ${greenChecked}; /logs re-read: ${logsRead}; backups: ${faults.backups} (restored: ${restoredFrames} of ${backupEvents} events served as live)
  RSS max ${maxRss.toFixed(0)} MB, database max ${maxDb.toFixed(1)} MB
${perMinute(samples)}
${
  violations.length === 0
    ? 'all invariants held'
    : `${violations.length} violation(s):\n${violations
        .slice(0, 50)
        .map((v) => `  - ${v}`)
        .join('\n')}`
}
  daemon log: ${violations.length === 0 ? '(removed)' : logFile}`);
  if (violations.length === 0) rmSync(dir, { recursive: true, force: true });
  return violations.length === 0 ? 0 : 1;
}

process.exitCode = await main();
setTimeout(() => process.exit(), 2000).unref();
