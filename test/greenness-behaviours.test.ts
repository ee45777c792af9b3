/**
 * Greenness behaviours through the real daemon, each on its own branch of one configured stack
 * (spec §10 behaviours 2, 9, 11, 16, 17, 18, 21, 23, 27 — a second pipeline for a
 * commit comes from `treadle runs retry`, since the spindle runs one pipeline per push; the others are in greenness.test.ts,
 * greenness-hooks.test.ts, greenness-crash.test.ts, buildkite.test.ts and protocol2026.test.ts,
 * with the orderings a daemon cannot be made to produce on demand in src/greenness/recorder.test.ts).
 */
import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppviewEvents } from '../fakes/appview.ts';
import { runTreadle } from './support/process.ts';
import {
  OWNER,
  onboard,
  pipelineRecord,
  rkey,
  type Stack,
  startStack,
  stubWorkflow,
} from './support/stack.ts';
import { tempDir } from './support/temp.ts';
import { waitFor } from './support/wait.ts';

const REPO = `${OWNER}/hello`;
const dir = tempDir();
let s: Stack;
let app: AppviewEvents;
let sink: Server;
const sinkHits: string[] = [];

beforeAll(async () => {
  // A hook sink that is always down (behaviour 27).
  sink = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      sinkHits.push(String(req.headers['webhook-id']));
      res.writeHead(503).end();
    });
  });
  await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));
  const config = join(dir.dir, 'treadle.yaml');
  writeFileSync(
    config,
    [
      'greenness:',
      '  queues:',
      '    - repo: "*"',
      '      ref: gated',
      '      requiredWorkflows: [build.yml, test.yml]',
      '    - repo: "*"',
      '      ref: deadline',
      '      pipelineDeadline: 2s',
      '    - repo: "*"',
      '      ref: "refs/heads/**"',
      '  hooks:',
      `    - url: http://127.0.0.1:${(sink.address() as AddressInfo).port}/down`,
      '      secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
      '      events: ["greenness.validation_expired"]',
      '',
    ].join('\n'),
  );
  s = await startStack({ TREADLE_CONFIG: config });
  app = new AppviewEvents();
  await app.connect(s.daemon.base);
  await onboard(s);
}, 30_000);

afterAll(async () => {
  await app?.close();
  await s?.close();
  await new Promise<void>((resolve) => sink.close(() => resolve()));
  dir.cleanup();
});

let shas = 0;
const newSha = () => (++shas).toString(16).padStart(40, 'e');

/** Pushes `commit` to `branch` with workflows ending as given ([outcome, duration]); returns the rkey. */
function push(branch: string, commit: string, workflows: Record<string, [string, string]>): string {
  const key = rkey();
  const when = `  - event: ["push"]\n    branch: ["${branch}"]`;
  s.knot.emit(
    'sh.tangled.pipeline',
    key,
    pipelineRecord(
      s.knot.host,
      Object.entries(workflows).map(([name, [outcome, duration]]) => ({
        name,
        raw: stubWorkflow(outcome, duration, ['test'], when),
      })),
      {},
      { newSha: commit, ref: `refs/heads/${branch}` },
    ),
  );
  return key;
}

/** `treadle runs retry`: the same trigger and workflows under a new TID; returns it. */
async function retry(pipeline: string): Promise<string> {
  const r = await runTreadle(['runs', 'retry', pipeline, '--db', s.db]);
  expect(r.code, r.stderr).toBe(0);
  return /sh\.tangled\.pipeline\/(\S+?);/.exec(r.stdout)![1]!;
}

interface Status {
  status: string;
  degree?: number;
  seq?: number;
  validation?: { state: string; attempt: number; pipeline: string };
  workflows: Array<{ name: string; status: string; degree?: number }>;
}

async function get(path: string): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${s.daemon.base}${path}`);
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

const q = (branch: string, commit?: string) =>
  `repo=${encodeURIComponent(REPO)}&ref=${branch}${commit ? `&commit=${commit}` : ''}`;

async function statusOf(branch: string, commit: string): Promise<Status | undefined> {
  const r = await get(`/greenness/v1/status?${q(branch, commit)}`);
  return r.status === 200 ? (r.json as unknown as Status) : undefined;
}

/** Waits until the commit's status satisfies `ok`. */
function until(branch: string, commit: string, ok: (s: Status) => boolean, what: string): Promise<Status> {
  return waitFor(
    async () => {
      const st = await statusOf(branch, commit);
      return st && ok(st) ? st : undefined;
    },
    what,
    20_000,
  ) as Promise<Status>;
}

const settled = (branch: string, commit: string) =>
  until(
    branch,
    commit,
    (st) => st.status === 'green' || st.status === 'not_green',
    `the verdict on ${commit}`,
  );

/** Every status and record message handled: greenness has seen all the daemon wrote. */
function greennessIdle(): Promise<unknown> {
  return waitFor(() => {
    const db = new Database(s.db, { readonly: true });
    try {
      const row = db
        .prepare(
          `SELECT count(*) AS n FROM queue_delivery
             WHERE topic IN ('pipeline.started', 'workflow.status', 'greenness.record')`,
        )
        .get() as { n: number };
      return row.n === 0;
    } finally {
      db.close();
    }
  }, 'greenness to catch up');
}

/** The hook events the daemon emitted for a branch, in emission order. */
function hooksOf(branch: string): Array<{ type: string; seq: number }> {
  const db = new Database(s.db, { readonly: true });
  try {
    return (
      db.prepare(`SELECT payload FROM queue_messages WHERE topic = 'hook' ORDER BY "offset"`).all() as Array<{
        payload: string;
      }>
    )
      .map((r) => JSON.parse(r.payload) as { type: string; payload: { ref: string; seq: number } })
      .filter((e) => e.payload.ref === `refs/heads/${branch}` && e.type !== 'greenness.fact_recorded')
      .map((e) => ({ type: e.type, seq: e.payload.seq }));
  } finally {
    db.close();
  }
}

describe('greenness behaviours through the daemon', () => {
  it('2: a second pipeline for a pending commit (a retry) is stored and its statuses never count', async () => {
    const c = newSha();
    const first = push('two', c, { 'ci.yml': ['success', '3s'] });
    await until('two', c, (st) => st.status === 'pending', 'the validation');
    const second = await retry(first);
    const cancel = await runTreadle(['runs', 'cancel', second, '--db', s.db]);
    expect(cancel.code).toBe(0);
    await waitFor(() => app.latest(second)['ci.yml']?.status === 'cancelled', 'the retry cancelled');
    const st = await settled('two', c);
    expect(st).toMatchObject({ status: 'green', degree: 0, seq: 1, validation: { attempt: 1 } });
    expect(st.validation!.pipeline.endsWith(`/${first}`)).toBe(true);
  }, 30_000);

  it('17, 18: after cancelled, a retry of the commit is attempt 2 and records; a run after the verdict changes nothing', async () => {
    const c = newSha();
    const first = push('again', c, { 'ci.yml': ['success', '3s'] });
    await until('again', c, (st) => st.status === 'pending', 'the validation');
    expect((await runTreadle(['runs', 'cancel', first, '--db', s.db])).code).toBe(0);
    expect(await settled('again', c)).toMatchObject({
      status: 'not_green',
      validation: { state: 'cancelled', attempt: 1 },
    });
    const second = await retry(first);
    const st = await until('again', c, (x) => x.status === 'green', 'attempt 2 green');
    expect(st).toMatchObject({ degree: 0, seq: 1, validation: { state: 'succeeded', attempt: 2 } });
    expect(st.validation!.pipeline.endsWith(`/${second}`)).toBe(true);
    // 18: after a verdict, another run of the commit is stored and changes nothing.
    const third = await retry(second);
    await waitFor(() => app.latest(third)['ci.yml']?.status === 'success', 'the third run');
    const sentinel = newSha();
    push('again', sentinel, { 'ci.yml': ['success', '0s'] });
    await settled('again', sentinel);
    const after = await statusOf('again', c);
    expect({ ...after, nextGreen: undefined }).toEqual({ ...st, nextGreen: undefined });
  }, 60_000);

  it('9: a timeout counts exactly as a failure', async () => {
    const c = newSha();
    push('main', c, { 'build.yml': ['success', '0s'], 'slow.yml': ['timeout', '0s'] });
    const st = await settled('main', c);
    expect(st).toMatchObject({ status: 'not_green', degree: 0.5 });
    expect(st.workflows).toContainEqual({ name: 'slow.yml', status: 'timeout', degree: 1 });
    expect(await get(`/greenness/v1/gate?${q('main', c)}`)).toMatchObject({
      status: 409,
      json: { reason: 'workflow slow.yml timed out' },
    });
  }, 30_000);

  it('11: with requiredWorkflows, a failing optional workflow leaves the commit green and a missing required one does not', async () => {
    const green = newSha();
    push('gated', green, {
      'build.yml': ['success', '0s'],
      'test.yml': ['success', '0s'],
      'lint.yml': ['failure', '0s'],
    });
    expect(await settled('gated', green)).toMatchObject({
      status: 'green',
      degree: 0,
      requiredWorkflows: ['build.yml', 'test.yml'],
    });
    const missing = newSha();
    push('gated', missing, { 'build.yml': ['success', '0s'] });
    expect(await settled('gated', missing)).toMatchObject({ status: 'not_green', degree: 0.5 });
    expect(await get(`/greenness/v1/gate?${q('gated', missing)}`)).toMatchObject({
      status: 409,
      json: { reason: 'required workflow test.yml did not run' },
    });
  }, 30_000);

  it('16, 27: a pipeline past its deadline expires with no fact and stays expired; the down sink dead-letters the event and changes nothing', async () => {
    const c = newSha();
    const first = push('deadline', c, { 'slow.yml': ['success', '5s'] });
    const expired = await until(
      'deadline',
      c,
      (st) => st.validation?.state === 'expired',
      'the validation expiring',
    );
    expect(expired.status).toBe('not_green');
    expect(expired.degree).toBeUndefined();
    expect(await get(`/greenness/v1/gate?${q('deadline', c)}`)).toMatchObject({
      status: 409,
      json: { reason: 'expired: the pipeline did not finish before its deadline' },
    });
    expect(hooksOf('deadline')).toContainEqual({ type: 'greenness.validation_expired', seq: 1 });

    // Attempt 1 finishing after its deadline changes nothing: expired stays expired.
    await waitFor(() => app.latest(first)['slow.yml']?.status === 'success', 'attempt 1 finishing', 15_000);
    await greennessIdle();
    expect(await statusOf('deadline', c)).toMatchObject({
      status: 'not_green',
      validation: { state: 'expired', attempt: 1 },
    });

    // The sink that is always down: three attempts, then a dead letter, logged; greenness unchanged.
    await waitFor(
      () => s.daemon.logs().includes('hook delivery dead-lettered: the sink stayed down'),
      'the dead-lettered hook',
      15_000,
    );
    expect(sinkHits, sinkHits.join()).toHaveLength(3);
    expect(new Set(sinkHits).size).toBe(1);
    const letters = await runTreadle(['queue', 'dlq', 'list', 'hook.deliver', '--json', '--db', s.db]);
    const parsed = JSON.parse(letters.stdout) as Array<{
      payload: { event: { type: string } };
      lastError: string;
    }>;
    expect(parsed.map((l) => l.payload.event.type)).toEqual(['greenness.validation_expired']);
    expect((await statusOf('deadline', c))!.validation!.state).toBe('expired');
  }, 45_000);

  it('21, 23: a lower seq recorded after a higher one moves neither the bookmark nor the tip, and emits no transition', async () => {
    const [c1, c2, c3] = [newSha(), newSha(), newSha()];
    push('late', c1, { 'ci.yml': ['success', '5s'] });
    await until('late', c1, (st) => st.status === 'pending', 'seq 1');
    push('late', c2, { 'ci.yml': ['failure', '5s'] });
    await until('late', c2, (st) => st.status === 'pending', 'seq 2');
    push('late', c3, { 'ci.yml': ['success', '0s'] });
    expect(await settled('late', c3)).toMatchObject({ status: 'green', seq: 3 });
    // The precondition: seq 3 was recorded while 1 and 2 were still running.
    expect((await statusOf('late', c1))!.status).toBe('pending');
    expect(await settled('late', c1)).toMatchObject({ status: 'green', seq: 1 });
    expect(await settled('late', c2)).toMatchObject({ status: 'not_green', seq: 2 });
    const queue = (await get(`/greenness/v1/queues`)).json.queues as Array<Record<string, unknown>>;
    expect(queue.find((x) => x.ref === 'refs/heads/late')).toMatchObject({
      lastGreen: { commit: c3, seq: 3 },
      tip: { commit: c3, seq: 3, status: 'green' },
    });
    expect(hooksOf('late')).toEqual([
      { type: 'greenness.turned_green', seq: 3 },
      { type: 'greenness.last_green_advanced', seq: 3 },
    ]);
  }, 45_000);

  it('bad input: a record whose commit is not a commit id is refused or dead-lettered with the reason, nothing recorded, the daemon keeps recording', async () => {
    push('main', 'abc123', { 'ci.yml': ['success', '0s'] }); // refused by the lexicon at intake
    push('main', 'Z'.repeat(40), { 'ci.yml': ['success', '0s'] }); // valid to the lexicon, not a commit
    const sentinel = newSha();
    push('main', sentinel, { 'ci.yml': ['success', '0s'] });
    expect(await settled('main', sentinel)).toMatchObject({ status: 'green' });
    expect(s.daemon.logs()).toContain('newSha must not be shorter than 40 characters');
    const letters = await waitFor(async () => {
      const r = await runTreadle(['queue', 'dlq', 'list', 'pipeline.started', '--json', '--db', s.db]);
      const parsed = JSON.parse(r.stdout || '[]') as Array<{ lastError: string; failureCount: number }>;
      return parsed.length > 0 ? parsed : undefined;
    }, 'the dead letter');
    if (!letters) throw new Error('unreachable: waitFor returns a value');
    expect(letters).toHaveLength(1);
    expect(letters[0]).toMatchObject({ failureCount: 1 });
    expect(letters[0]!.lastError).toMatch(/commit "Z{40}" is not a commit id$/);
    const history = await get(`/greenness/v1/history?${q('main')}`);
    const commits = (history.json.items as Array<{ commit: string }>).map((i) => i.commit);
    expect(commits).toContain(sentinel);
    expect(commits.some((c) => !/^[0-9a-f]{40}$/.test(c))).toBe(false);
  }, 30_000);
});
