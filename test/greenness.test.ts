/**
 * Greenness through the real daemon's status path: a fake knot's push pipelines, stub runner
 * outcomes, the durable topics, the recorder, and the read API (spec §6, behaviours 1, 4, 7, 8,
 * 10, 13, 20, 22, 24, 28).
 */
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
import { waitFor } from './support/wait.ts';

const REPO = `${OWNER}/hello`;
let s: Stack;
let app: AppviewEvents;

beforeAll(async () => {
  s = await startStack();
  app = new AppviewEvents();
  await app.connect(s.daemon.base);
  await onboard(s);
}, 30_000);

afterAll(async () => {
  await app?.close();
  await s?.close();
});

let shas = 0;
/** A push of a new commit to `ref` whose workflows end as given; returns the commit. */
function push(outcomes: Record<string, string>, ref = 'refs/heads/main', kind = 'push'): string {
  const sha = (++shas).toString(16).padStart(40, 'c');
  const record = pipelineRecord(
    s.knot.host,
    Object.entries(outcomes).map(([name, outcome]) => ({ name, raw: stubWorkflow(outcome, '0s') })),
    {},
    { newSha: sha, ref },
  );
  (record.triggerMetadata as { kind: string }).kind = kind;
  s.knot.emit('sh.tangled.pipeline', rkey(), record);
  return sha;
}

async function get(path: string): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${s.daemon.base}${path}`);
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

const q = (commit?: string, ref = 'main') =>
  `repo=${encodeURIComponent(REPO)}&ref=${ref}${commit ? `&commit=${commit}` : ''}`;

async function settled(commit: string): Promise<Record<string, unknown>> {
  return waitFor(
    async () => {
      const r = await get(`/greenness/v1/status?${q(commit)}`);
      return r.status === 200 && r.json.status !== 'pending' && r.json.status !== 'unknown'
        ? r.json
        : undefined;
    },
    `the verdict on ${commit.slice(0, 8)}`,
    20_000,
  ) as Promise<Record<string, unknown>>;
}

function hookTypes(): Array<{ type: string; seq: number }> {
  const db = new Database(s.db, { readonly: true });
  try {
    return (
      db.prepare(`SELECT payload FROM queue_messages WHERE topic = 'hook' ORDER BY "offset"`).all() as Array<{
        payload: string;
      }>
    )
      .map((r) => JSON.parse(r.payload) as { type: string; payload: { seq: number } })
      .filter((e) => e.type.startsWith('greenness.turned_'))
      .map((e) => ({ type: e.type, seq: e.payload.seq }));
  } finally {
    db.close();
  }
}

describe('greenness of a branch', () => {
  it('records green and red commits in push order, answers the gate, and moves the last green commit forward only', async () => {
    const g1 = push({ 'build.yml': 'success', 'test.yml': 'success' });
    expect(await settled(g1)).toMatchObject({ status: 'green', degree: 0, seq: 1 });
    const g2 = push({ 'build.yml': 'success', 'test.yml': 'success' });
    await settled(g2);
    const f3 = push({
      'build.yml': 'success',
      'lint.yml': 'failure',
      'test.yml': 'success',
      'docs.yml': 'success',
    });
    const red = await settled(f3);
    expect(red).toMatchObject({ status: 'not_green', degree: 0.25, seq: 3 });
    expect(red.workflows).toContainEqual({ name: 'lint.yml', status: 'failed', degree: 1 });
    const g4 = push({ 'build.yml': 'success' });
    await settled(g4);

    // The deploy gate: 200 only for green, 409 with a reason a person can act on.
    expect(await get(`/greenness/v1/gate?${q(g4)}`)).toMatchObject({ status: 200, json: { green: true } });
    expect(await get(`/greenness/v1/gate?${q(f3)}`)).toEqual({
      status: 409,
      json: { green: false, status: 'not_green', reason: 'workflow lint.yml failed' },
    });
    const never = 'f'.repeat(40);
    expect(await get(`/greenness/v1/gate?${q(never)}`)).toMatchObject({
      status: 409,
      json: { status: 'unknown', reason: 'never built on this branch' },
    });
    expect(await get(`/greenness/v1/last-green?${q()}`)).toMatchObject({
      status: 200,
      json: { commit: g4, seq: 4 },
    });

    // Transitions exactly: turned_green at 1, turned_not_green at 3, turned_green at 4.
    await waitFor(() => hookTypes().length >= 3, 'the transition hooks');
    expect(hookTypes()).toEqual([
      { type: 'greenness.turned_green', seq: 1 },
      { type: 'greenness.turned_not_green', seq: 3 },
      { type: 'greenness.turned_green', seq: 4 },
    ]);

    // History newest first; the queue's view.
    const history = await get(`/greenness/v1/history?${q()}&limit=3`);
    expect((history.json.items as Array<{ commit: string }>).map((i) => i.commit)).toEqual([g4, f3, g2]);
    expect(history.json.cursor).toBe('2');
    const older = await get(`/greenness/v1/history?${q()}&before=2`);
    expect((older.json.items as Array<{ commit: string }>).map((i) => i.commit)).toEqual([g1]);
    // The nearest green commits around a red one (spec §6.6 previousGreen / nextGreen).
    expect((await get(`/greenness/v1/status?${q(f3)}`)).json).toMatchObject({
      previousGreen: { commit: g2, seq: 2 },
      nextGreen: { commit: g4, seq: 4 },
    });
    expect((await get(`/greenness/v1/status?${q(g1)}`)).json).toMatchObject({
      previousGreen: null,
      nextGreen: { commit: g2, seq: 2 },
    });
    const queues = await get('/greenness/v1/queues');
    expect(queues.json.queues).toContainEqual({
      repo: REPO,
      ref: 'refs/heads/main',
      lastGreen: { commit: g4, seq: 4, at: expect.any(String) },
      tip: { commit: g4, seq: 4, status: 'green' },
      counts: { green: 3, notGreen: 1, pending: 0 },
    });

    // The badge shows the tip, as shields do.
    const badge = await fetch(`${s.daemon.base}/greenness/v1/badge.svg?${q()}`);
    expect(badge.headers.get('content-type')).toMatch(/^image\/svg\+xml/);
    expect(badge.headers.get('cache-control')).toBe('max-age=30');
    const svg = await badge.text();
    expect(svg).toMatch(/^<svg /);
    expect(svg).toContain('ci: main');
    expect(svg).toContain('green');

    // The CLI a deploy script calls, beside the running daemon.
    const cli = (...args: string[]) => runTreadle(['greenness', ...args, '--db', s.db]);
    expect(await cli('gate', REPO, 'main', g4)).toMatchObject({ code: 0 });
    const refused = await cli('gate', REPO, 'refs/heads/main', f3);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('not green: workflow lint.yml failed');
    expect(JSON.parse((await cli('last-green', REPO, 'main', '--json')).stdout)).toMatchObject({
      commit: g4,
      seq: 4,
    });
    const table = (await cli('history', REPO, 'main')).stdout.split('\n');
    expect(table[0]).toMatch(/^SEQ +COMMIT +STATUS +DEGREE +WHY/);
    expect(table[1]).toMatch(new RegExp(`^4 +${g4.slice(0, 12)} +green`));
    expect(await cli('gate', REPO, 'main', 'nothex')).toMatchObject({ code: 2 });
    expect(await cli('status', 'did:plc:nobody', 'main', g4)).toMatchObject({ code: 1 });
  }, 60_000);

  it('gives a success-and-cancelled pipeline no verdict, and ignores pull requests, manual runs and other refs', async () => {
    const cancelled = push({ 'a.yml': 'success', 'b.yml': 'cancelled' });
    const s1 = await settled(cancelled);
    expect(s1).toMatchObject({ status: 'not_green', validation: { state: 'cancelled' } });
    expect(s1.degree).toBeUndefined();
    const gate = await get(`/greenness/v1/gate?${q(cancelled)}`);
    expect(gate).toMatchObject({
      status: 409,
      json: { reason: 'cancelled: no verdict (a workflow was cancelled)' },
    });
    // A pull request run and a tag are not queues; a sentinel push after them is recorded.
    const pr = push({ 'a.yml': 'success' }, 'refs/heads/main', 'pull_request');
    push({ 'a.yml': 'success' }, 'refs/tags/v1');
    const sentinel = push({ 'a.yml': 'success' });
    await settled(sentinel);
    expect(await get(`/greenness/v1/status?${q(pr)}`)).toMatchObject({
      status: 200,
      json: { status: 'unknown' },
    });
    expect(
      await get(`/greenness/v1/status?repo=${encodeURIComponent(REPO)}&ref=refs/tags/v1&commit=${pr}`),
    ).toMatchObject({
      status: 404,
      json: { error: 'QueueNotFound' },
    });
  }, 60_000);

  it('answers bad parameters with 400 and an unknown queue with 404', async () => {
    expect(await get(`/greenness/v1/status?${q('ABC')}`)).toMatchObject({
      status: 400,
      json: { error: 'InvalidRequest' },
    });
    expect(await get(`/greenness/v1/status?ref=main&commit=${'a'.repeat(40)}`)).toMatchObject({
      status: 400,
    });
    expect(await get(`/greenness/v1/history?${q()}&limit=500`)).toMatchObject({ status: 400 });
    expect(await get(`/greenness/v1/last-green?repo=did:plc:nobody&ref=main`)).toMatchObject({
      status: 404,
      json: { error: 'QueueNotFound' },
    });
  });
});
