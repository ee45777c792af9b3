/**
 * `treadle demo`: the whole spindle flow on this machine, with no account and no network. A
 * fake Jetstream, PLC/PDS and knot run in-process; treadle serves on a free local port with a
 * temporary database; the owner's repo is onboarded, a knot sends a push pipeline with three
 * workflows (one succeeds, one fails, one names an engine nobody runs), and the /events
 * frames and logs are shown as an appview would show them. Then a new-generation knot (ref
 * updates only, real git over HTTP) gets a push: treadle reads the workflows from its git,
 * builds and runs the pipeline itself, and `sh.tangled.ci.queryPipelines` shows it. Last, the
 * branch's greenness, `verified/main` promoted to its green commit in a local git repository,
 * a change landed by REBASE and a conflicting one refused by a check.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AppviewEvents, type RenderedStep, readLogs } from '../../fakes/appview.ts';
import { FakeBuildkite } from '../../fakes/buildkite.ts';
import { FakeJetstream } from '../../fakes/jetstream.ts';
import { FakeKnot } from '../../fakes/knot.ts';
import { FakePds } from '../../fakes/pds.ts';
import { loadConfig } from '../config.ts';
import { createLogger } from '../logger.ts';
import { Service } from '../service.ts';
import { createDemoRepo, demoLandingYaml, landingPart } from './demo-landing.ts';
import { EXIT } from './exit-codes.ts';
import { type Output, table } from './output.ts';
import { queueDemo } from './queue-demo.ts';

const HOSTNAME = 'spindle.demo';
const OWNER = 'did:plc:demoowner';
const TERMINAL = new Set(['success', 'failed', 'timeout', 'cancelled']);
const ADMIN_TOKEN = 'demo-admin-token-0123456789abcdef0123';

const WORKFLOWS = [
  {
    name: 'build.yml',
    engine: 'nixery',
    raw: `when:\n  - event: ["push"]\n    branch: ["main"]\nengine: nixery\nsteps:\n  - name: install\n    command: npm ci\n  - name: test\n    command: npm test\ntreadle:\n  stub:\n    outcome: success\n    duration: 1500ms\n`,
  },
  {
    name: 'lint.yml',
    engine: 'nixery',
    raw: `engine: nixery\nsteps:\n  - name: lint\n    command: npm run lint\ntreadle:\n  stub:\n    outcome: failure\n    duration: 800ms\n    exitCode: 2\n`,
  },
  {
    name: 'deploy.yml',
    engine: 'docker',
    raw: `engine: docker\nsteps:\n  - name: deploy\n    command: ./deploy.sh\n`,
  },
];

export async function demoCommand(args: string[], io: Output): Promise<number> {
  if (args[0] === 'queue') return queueDemo(io);
  const serve = args[0] === '--serve';
  if (args.length > (serve ? 1 : 0)) {
    io.err(
      `treadle demo: unknown argument ${JSON.stringify(args.at(-1))} (try: treadle demo, treadle demo --serve, treadle demo queue)`,
    );
    return EXIT.usage;
  }
  const t0 = Date.now();
  const at = () => `+${((Date.now() - t0) / 1000).toFixed(1).padStart(4)}s`;
  const dir = mkdtempSync(join(tmpdir(), 'treadle-demo-'));
  const [jetstream, pds, knot, newKnot, bk] = await Promise.all([
    FakeJetstream.start(),
    FakePds.start(),
    FakeKnot.start(),
    FakeKnot.start(),
    FakeBuildkite.start(),
  ]);
  jetstream.pds = pds;
  pds.addIdentity(OWNER);
  const git = await createDemoRepo(join(dir, 'git'));
  const yaml = join(dir, 'treadle.yaml');
  writeFileSync(yaml, demoLandingYaml(`${OWNER}/hello`, git.bare));
  const { config } = loadConfig({
    TREADLE_CONFIG: yaml,
    TREADLE_ADMIN_TOKEN: ADMIN_TOKEN,
    TREADLE_HOSTNAME: HOSTNAME,
    TREADLE_OWNER: OWNER,
    TREADLE_LISTEN: '127.0.0.1:0',
    TREADLE_DB: join(dir, 'treadle.db'),
    TREADLE_JETSTREAM_URL: jetstream.url,
    TREADLE_PLC_URL: pds.url,
    TREADLE_DEV: '1',
    TREADLE_ENGINES: 'nixery=stub',
    TREADLE_POLL_INTERVAL: '100ms',
    TREADLE_PUSH_HOLD: '300ms',
    TREADLE_BUILDKITE_TOKEN: bk.token,
    TREADLE_BUILDKITE_ORG: 'demo',
    TREADLE_BUILDKITE_API_URL: bk.apiUrl,
    TREADLE_BUILDKITE_WEBHOOK_SECRET: 'demo-webhook-secret',
    TREADLE_BUILDKITE_WEBHOOK_MODE: 'signature',
  });
  const service = Service.create(config, createLogger('silent'));
  const appview = new AppviewEvents();
  try {
    await service.start();
    const base = `http://127.0.0.1:${service.port}`;
    io.out(`${at()}  treadle serves ${HOSTNAME} at ${base} (owner ${OWNER}, database in ${dir})`);
    io.out(`${at()}  fakes: Jetstream ${jetstream.url}, PLC+PDS ${pds.url}, knot ${knot.host}`);
    await appview.connect(base);
    io.out(`${at()}  an appview subscribes to ${base.replace('http', 'ws')}/events`);

    jetstream.commit(OWNER, 'sh.tangled.repo', '3kdemorepo222', 'create', {
      $type: 'sh.tangled.repo',
      name: 'hello',
      knot: knot.host,
      spindle: HOSTNAME,
      createdAt: new Date().toISOString(),
    });
    io.out(`${at()}  Jetstream: ${OWNER} saves repo "hello" on knot ${knot.host} with spindle ${HOSTNAME}`);
    await until(() => knot.connected > 0, 10_000);
    io.out(`${at()}  treadle follows the knot: ws://${knot.host}${knot.connections[0]}`);

    const rkey = '3kdemopipe222';
    emitPush(knot, rkey, git.red, WORKFLOWS);
    io.out(
      `${at()}  knot: push to refs/heads/main → pipeline ${rkey} with ${WORKFLOWS.map((w) => w.name).join(', ')}`,
    );
    io.out('');
    io.out('  /events frames, as the appview receives them:');
    let shown = 0;
    await until(() => {
      for (const text of appview.frames.slice(shown)) io.out(`  ${at()}  ${describeFrame(text)}`);
      shown = appview.frames.length;
      const latest = Object.values(appview.latest(rkey));
      return latest.length === WORKFLOWS.length && latest.every((r) => TERMINAL.has(r.status));
    }, 25_000);

    io.out('');
    io.out(`  logs, as the appview renders /logs/${knot.host}/${rkey}/<workflow>:`);
    for (const w of WORKFLOWS) {
      const logs = await readLogs(base, { knot: knot.host, rkey, workflow: w.name });
      io.out(`    ${w.name} (closed ${logs.closeCode ?? `HTTP ${logs.refused}`})`);
      printSteps(io, logs.steps);
    }

    io.out('');
    const latest = appview.latest(rkey);
    const rows = WORKFLOWS.map((w) => {
      const r = latest[w.name]!;
      return [w.name, w.engine, appview.history(rkey, w.name).join(' → '), r.error ?? ''];
    });
    for (const line of table(['workflow', 'engine', 'statuses', 'error'], rows)) io.out(`  ${line}`);
    io.out('');
    bk.webhook = { url: `${base}/webhooks/buildkite`, mode: 'signature', secret: 'demo-webhook-secret' };
    await buildkitePart(io, at, { bk, knot, appview, base, sha: git.green });
    io.out('');
    await newGenerationKnot(io, at, { jetstream, newKnot, appview, base });
    io.out('');
    await greennessPart(io, at, base);
    io.out('');
    await landingPart(io, at, { base, token: ADMIN_TOKEN, repo: git });
    io.out('');
    io.out(
      `  ${appview.frames.length} frames on /events, ${appview.statuses.size} statuses, ${appview.fatal} undecodable; done in ${((Date.now() - t0) / 1000).toFixed(1)} s`,
    );
    io.out(`  dashboard: ${base}/ui/ (admin pages: sign in with ${ADMIN_TOKEN})`);
    if (serve) {
      io.out('  serving until Ctrl-C');
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
    } else io.out('  (treadle demo --serve keeps it running to look around)');
    return EXIT.ok;
  } finally {
    await appview.close();
    await service.stop();
    await Promise.all([jetstream.close(), pds.close(), knot.close(), newKnot.close(), bk.close()]);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The branch's greenness as a person wants to read it: last green, what broke, the gate. */
async function greennessPart(io: Output, at: () => string, base: string): Promise<void> {
  const repo = `${OWNER}/hello`;
  const q = `repo=${encodeURIComponent(repo)}&ref=main`;
  type Item = {
    commit: string;
    seq: number;
    status: string;
    degree?: number;
    workflows: Array<{ name: string; status: string }>;
  };
  let items: Item[] = [];
  for (
    const deadline = Date.now() + 15_000;
    Date.now() < deadline;
    await new Promise((r) => setTimeout(r, 100))
  ) {
    const res = await fetch(`${base}/greenness/v1/history?${q}`);
    if (!res.ok) continue;
    items = ((await res.json()) as { items: Item[] }).items;
    if (items.length >= 2 && items.every((i) => i.status !== 'pending')) break;
  }
  io.out(`  greenness of main in ${repo}, newest first (GET /greenness/v1/history):`);
  for (const item of items) {
    const gate = await fetch(`${base}/greenness/v1/gate?${q}&commit=${item.commit}`);
    const { reason } = (await gate.json()) as { reason: string };
    const degree = item.degree === undefined ? '' : ` degree ${item.degree.toFixed(2)}`;
    io.out(
      `    #${item.seq} ${item.commit.slice(0, 12)}  ${item.status}${degree}  gate ${gate.status}: ${reason}`,
    );
  }
  const last = await fetch(`${base}/greenness/v1/last-green?${q}`);
  const green = (await last.json()) as { commit?: string; seq?: number };
  io.out(
    `${at()}  last green commit of main: ${green.commit ? `${green.commit.slice(0, 12)} (#${green.seq})` : 'none yet'}; a deploy script runs \`treadle greenness gate ${repo} main <sha>\``,
  );
}

const REPO_DID = 'did:plc:demorepo';
const CI_YML = `when:\n  - event: push\n    branch: main\nengine: nixery\nsteps:\n  - name: test\n    command: make test\ntreadle:\n  stub:\n    duration: 600ms\n`;
const DOCS_YML = `when:\n  - event: push\n    branch: main\n    paths: ["docs/**"]\nengine: nixery\nsteps:\n  - name: docs\n    command: make docs\n`;

/** Part two: a knot that only sends ref updates (Rust knot, Go ≥ v1.14), with real git over HTTP. */
async function newGenerationKnot(
  io: Output,
  at: () => string,
  p: { jetstream: FakeJetstream; newKnot: FakeKnot; appview: AppviewEvents; base: string },
): Promise<void> {
  const { jetstream, newKnot, appview, base } = p;
  io.out('');
  io.out(`  A new-generation knot ${newKnot.host}: it sends ref updates only, and serves git over HTTP.`);
  newKnot.git.create(REPO_DID);
  newKnot.defaultBranches.set(REPO_DID, 'main');
  jetstream.commit(OWNER, 'sh.tangled.repo', '3kdemorepo333', 'create', {
    $type: 'sh.tangled.repo',
    name: 'world',
    knot: newKnot.host,
    spindle: HOSTNAME,
    repoDid: REPO_DID,
    createdAt: new Date().toISOString(),
  });
  await until(() => newKnot.connected > 0, 10_000);
  io.out(`${at()}  Jetstream: repo "world" (${REPO_DID}) on ${newKnot.host}; treadle follows that knot too`);
  const sha = newKnot.git.commit(REPO_DID, {
    '.tangled/workflows/ci.yml': CI_YML,
    '.tangled/workflows/docs.yml': DOCS_YML,
    'src/main.c': 'int main(void) { return 0; }\n',
  });
  newKnot.emit('sh.tangled.git.refUpdate', '3kdemoref2222', {
    $type: 'sh.tangled.git.refUpdate',
    ref: 'refs/heads/main',
    repo: REPO_DID,
    committerDid: OWNER,
    oldSha: '0'.repeat(40),
    newSha: sha,
    changedFiles: ['.tangled/workflows/ci.yml', '.tangled/workflows/docs.yml', 'src/main.c'],
    pushOptions: [],
    meta: { isDefaultRef: true, commitCount: {} },
  });
  io.out(`${at()}  knot: sh.tangled.git.refUpdate refs/heads/main ${sha.slice(0, 12)} (no pipeline record)`);
  const found = await untilValue(() => {
    for (const [rkey, record] of appview.pipelines) {
      const r = record as {
        triggerMetadata: { push?: { newSha: string } };
        workflows: Array<{ name: string }>;
      };
      if (r.triggerMetadata.push?.newSha !== sha) continue;
      const latest = Object.values(appview.latest(rkey));
      if (latest.length === r.workflows.length && latest.every((s) => TERMINAL.has(s.status))) return rkey;
    }
    return undefined;
  }, 25_000);
  io.out(
    `${at()}  treadle fetched .tangled/workflows at ${sha.slice(0, 12)} over git HTTP, compiled when: (docs.yml skipped: no docs/** change), ran pipeline ${found}: ${appview.history(found, 'ci.yml').join(' → ')}`,
  );
  const url = `${base}/xrpc/sh.tangled.ci.queryPipelines?repo=${REPO_DID}`;
  const res = await fetch(url);
  io.out(`${at()}  GET /xrpc/sh.tangled.ci.queryPipelines?repo=${REPO_DID} → ${res.status}`);
  for (const line of JSON.stringify(await res.json(), null, 2).split('\n')) io.out(`      ${line}`);
}

async function untilValue<T>(check: () => T | undefined, timeoutMs: number): Promise<T> {
  let value: T | undefined;
  await until(() => {
    value = check();
    return value !== undefined;
  }, timeoutMs);
  return value as T;
}

function describeFrame(text: string): string {
  const f = JSON.parse(text) as { nsid: string; rkey: string; event: Record<string, unknown> };
  if (f.nsid === 'sh.tangled.pipeline') {
    const workflows = (f.event.workflows as Array<{ name: string }>).map((w) => w.name).join(', ');
    return `sh.tangled.pipeline ${f.rkey}: ${workflows}`;
  }
  const e = f.event;
  const error = e.error ? `  error=${JSON.stringify(e.error)} exitCode=${e.exitCode}` : '';
  return `status ${f.rkey}  ${String(e.workflow).padEnd(11)} ${String(e.status).padEnd(8)} createdAt=${e.createdAt}${error}`;
}

async function until(check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`demo timed out after ${timeoutMs / 1000} s`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Part: a workflow handed to Buildkite (the fake), followed by signed webhooks, logs fetched once. */
async function buildkitePart(
  io: Output,
  at: () => string,
  d: { bk: FakeBuildkite; knot: FakeKnot; appview: AppviewEvents; base: string; sha: string },
): Promise<void> {
  const { bk, knot, appview, base } = d;
  bk.script('hello-ci', {
    startAfterMs: 100,
    runMs: 700,
    jobs: [
      { name: ':npm: install', command: 'npm ci', lines: 3 },
      { name: ':test_tube: test', command: 'npm test', lines: 4 },
    ],
  });
  const rkey = '3kdemobkpipe2';
  const raw =
    'engine: nixery\nsteps:\n  - name: test\n    command: npm test\ntreadle:\n  buildkite:\n    pipeline: hello-ci\n';
  emitPush(knot, rkey, d.sha, [{ name: 'buildkite.yml', engine: 'nixery', raw }]);
  io.out(`${at()}  knot: another push → pipeline ${rkey}; buildkite.yml names Buildkite pipeline "hello-ci"`);
  await until(() => TERMINAL.has(appview.latest(rkey)['buildkite.yml']?.status ?? ''), 20_000);
  const build = bk.builds.at(-1)!;
  io.out(
    `${at()}  fake Buildkite at ${bk.apiUrl}: build #${build.number} of demo/hello-ci, meta_data treadle:request_id = ${(build.body.meta_data as Record<string, string>)['treadle:request_id']}`,
  );
  io.out(
    `${at()}  webhooks delivered (signed): ${bk.deliveries.map((x) => `${x.event} ${x.status}`).join(', ')}`,
  );
  io.out(`  statuses: ${appview.history(rkey, 'buildkite.yml').join(' → ')}`);
  const logs = await readLogs(base, { knot: knot.host, rkey, workflow: 'buildkite.yml' });
  printSteps(io, logs.steps);
  io.out(
    `  Buildkite API calls for this run: ${bk.requests.length} (${bk.requests.map((r) => r.split(' ')[0]).join(', ')})`,
  );
}

/** A workflow's log steps as the appview renders them. */
function printSteps(io: Output, steps: RenderedStep[]): void {
  for (const step of steps) {
    io.out(`      ▸ ${step.title}${step.command ? `  $ ${step.command}` : ''}`);
    for (const line of step.body) io.out(`          ${line}`);
  }
}

/** A push pipeline on `knot`'s stream, shaped exactly as a stock knot sends it. */
function emitPush(
  knot: FakeKnot,
  rkey: string,
  newSha: string,
  workflows: ReadonlyArray<{ name: string; engine: string; raw: string }>,
): void {
  knot.emit('sh.tangled.pipeline', rkey, {
    $type: '',
    triggerMetadata: {
      kind: 'push',
      push: { ref: 'refs/heads/main', newSha, oldSha: '0'.repeat(40) },
      repo: { defaultBranch: '', did: OWNER, knot: knot.host, repo: 'hello' },
    },
    workflows: workflows.map((w) => ({ ...w, clone: { depth: 0, skip: false, submodules: false } })),
  });
}
