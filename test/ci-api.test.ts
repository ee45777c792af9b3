/**
 * The sh.tangled.ci read API against the real daemon (2026 spec §3.8): queryPipelines paging,
 * filters and total, getPipeline, describeWorkflowDefinition, and subscribePipelineLogs read by
 * the atproto event-stream client of @atproto/xrpc-server. Answers are checked against
 * treadle's own lexicons.
 */
import { Lexicons } from '@atproto/lexicon';
import { Subscription } from '@atproto/xrpc-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { AppviewEvents } from '../fakes/appview.ts';
import { readLexiconDocs } from '../src/atproto/lexicons.ts';
import {
  OWNER,
  onboard,
  pipelineRecord,
  refUpdate,
  rkey,
  type Stack,
  startStack,
  stubWorkflow,
} from './support/stack.ts';
import { waitFor } from './support/wait.ts';

const REPO = 'did:plc:cirepo';
// biome-ignore lint/suspicious/noExplicitAny: JSON answers whose shape the lexicon check asserts
type Loose = Record<string, any>;
const lexicons = new Lexicons(readLexiconDocs());
let s: Stack;
let app: AppviewEvents;
/** Commits in push order; the first ran as a knot's (adopted) pipeline. */
const commits: string[] = [];
let adoptedRkey: string;

async function xrpc(
  method: string,
  query: string,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${s.daemon.base}/xrpc/${method}?${query}`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function query(q: string) {
  const res = await xrpc('sh.tangled.ci.queryPipelines', q);
  expect(res.status).toBe(200);
  lexicons.assertValidXrpcOutput('sh.tangled.ci.queryPipelines', res.body);
  return res.body as { total: number; cursor?: string; pipelines: Array<Loose> };
}

beforeAll(async () => {
  s = await startStack({ TREADLE_PUSH_HOLD: '0s' });
  app = new AppviewEvents();
  await app.connect(s.daemon.base);
  s.knot.git.create(REPO);
  await onboard(s, 'ci', OWNER, { repoDid: REPO });
  await waitFor(() => s.daemon.logs().includes('"msg":"record applied"'), 'the repo');
  // A legacy knot's pipeline first (adopted), then pushes the spindle builds itself.
  const first = s.knot.git.commit(REPO, { '.tangled/workflows/ci.yml': stubWorkflow('success', '0s') });
  adoptedRkey = rkey();
  const record = pipelineRecord(
    s.knot.host,
    [{ name: 'ci.yml', raw: stubWorkflow('success', '0s') }],
    { name: 'ci' },
    { newSha: first },
  );
  (record.triggerMetadata as { repo: Record<string, unknown> }).repo.repoDid = REPO;
  s.knot.emit('sh.tangled.pipeline', adoptedRkey, record);
  commits.push(first);
  await waitFor(() => app.pipelines.has(adoptedRkey), 'the adopted pipeline');
  for (let i = 0; i < 4; i++) {
    const sha = s.knot.git.commit(REPO, { 'n.txt': String(i) });
    s.knot.emit('sh.tangled.git.refUpdate', rkey(), refUpdate(REPO, sha));
    commits.push(sha);
    await waitFor(() => app.pipelines.size === i + 2, `pipeline ${i + 2}`);
  }
  await waitFor(
    () => [...app.statuses.values()].filter((r) => r.status === 'success').length === 5,
    'all runs to finish',
    20_000,
  );
}, 60_000);

afterAll(async () => {
  await app?.close();
  await s?.close();
});

describe('sh.tangled.ci.queryPipelines', () => {
  it('lists every pipeline of the repo, adopted and self-built, newest first, as ci.pipeline objects', async () => {
    const out = await query(`repo=${REPO}`);
    expect(out.total).toBe(5);
    expect(out.cursor).toBeUndefined();
    expect(out.pipelines.map((p) => p.commit)).toEqual([...commits].reverse());
    const adopted = out.pipelines.at(-1)!;
    expect(adopted).toMatchObject({
      id: adoptedRkey,
      repo: REPO,
      trigger: { $type: 'sh.tangled.ci.trigger#push', ref: 'refs/heads/main', newSha: commits[0] },
      workflows: [{ id: 'ci.yml', name: 'ci.yml', status: 'success' }],
    });
    expect(adopted.createdAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(Date.parse(adopted.workflows[0].finishedAt)).toBeGreaterThanOrEqual(
      Date.parse(adopted.workflows[0].startedAt),
    );
  });

  it('pages by created with a decimal cursor, strictly older, and a total that ignores the cursor', async () => {
    const seen: string[] = [];
    let cursor: string | undefined;
    for (let page = 0; page < 5; page++) {
      const out = await query(`repo=${REPO}&limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      expect(out.total).toBe(5);
      seen.push(...out.pipelines.map((p) => p.commit));
      cursor = out.cursor;
      if (out.pipelines.length < 2) {
        expect(cursor).toBeUndefined();
        break;
      }
      expect(cursor).toMatch(/^\d+$/);
    }
    expect(seen).toEqual([...commits].reverse());
  });

  it('filters by commits and kinds', async () => {
    const two = await query(`repo=${REPO}&commits=${commits[1]}&commits=${commits[3]}`);
    expect(two.total).toBe(2);
    expect(two.pipelines.map((p) => p.commit)).toEqual([commits[3], commits[1]]);
    expect((await query(`repo=${REPO}&kinds=push&limit=1`)).total).toBe(5);
    expect(await query(`repo=${REPO}&kinds=pull_request`)).toEqual({ total: 0, pipelines: [] });
    expect(await query('repo=did:plc:unknown')).toEqual({ total: 0, pipelines: [] });
  });

  it('answers InvalidRequest for a cursor that is not a number, a bad kind, limit or repo', async () => {
    for (const q of [
      `repo=${REPO}&cursor=abc`,
      `repo=${REPO}&kinds=tag`,
      `repo=${REPO}&limit=0`,
      `repo=${REPO}&limit=251`,
      'repo=alice',
      '',
    ]) {
      const res = await xrpc('sh.tangled.ci.queryPipelines', q);
      expect(res.status, q).toBe(400);
      expect(res.body.error, q).toBe('InvalidRequest');
      expect(typeof res.body.message).toBe('string');
    }
  });
});

describe('sh.tangled.ci.getPipeline and describeWorkflowDefinition', () => {
  it('gets one pipeline by TID, and answers PipelineNotFound or InvalidRequest otherwise', async () => {
    const res = await xrpc('sh.tangled.ci.getPipeline', `pipeline=${adoptedRkey}`);
    expect(res.status).toBe(200);
    lexicons.assertValidXrpcOutput('sh.tangled.ci.getPipeline', res.body);
    expect(res.body.id).toBe(adoptedRkey);
    expect((await xrpc('sh.tangled.ci.getPipeline', `pipeline=${rkey()}`)).body.error).toBe(
      'PipelineNotFound',
    );
    expect((await xrpc('sh.tangled.ci.getPipeline', 'pipeline=nope')).body.error).toBe('InvalidRequest');
  });

  it('describes the workflow files at a commit with a hash that changes only with them', async () => {
    const d = async (sha: string) =>
      (await xrpc('sh.tangled.ci.describeWorkflowDefinition', `repo=${REPO}&sha=${sha}`)).body;
    const a = await d(commits[0]!);
    lexicons.assertValidXrpcOutput('sh.tangled.ci.describeWorkflowDefinition', a);
    expect(a).toMatchObject({ derived: true, workflows: ['ci.yml'] });
    expect(a.hash).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect((await d(commits[2]!)).hash).toBe(a.hash);
    const changed = s.knot.git.commit(REPO, { '.tangled/workflows/ci.yml': stubWorkflow('failure', '0s') });
    expect((await d(changed)).hash).not.toBe(a.hash);
  });
});

describe('sh.tangled.ci.subscribePipelineLogs', () => {
  function subscribe(params: Record<string, unknown>): Subscription<Loose> {
    return new Subscription({
      service: s.daemon.base.replace(/^http/, 'ws'),
      method: 'sh.tangled.ci.subscribePipelineLogs',
      getParams: () => params,
      maxReconnectSeconds: 1,
      validate: (value) => {
        lexicons.assertValidXrpcMessage('sh.tangled.ci.subscribePipelineLogs', value);
        return value as Loose;
      },
    });
  }

  it('replays a finished run as #control/#data messages and ends the stream', async () => {
    const got: Array<Loose> = [];
    for await (const m of subscribe({ pipeline: adoptedRkey })) got.push(m);
    expect(got[0]).toMatchObject({
      $type: 'sh.tangled.ci.subscribePipelineLogs#control',
      workflow: 'ci.yml',
      status: 'start',
      kind: 'user',
    });
    expect(
      got.some(
        (m) => m.$type === 'sh.tangled.ci.subscribePipelineLogs#data' && m.content.includes('echo test'),
      ),
    ).toBe(true);
    expect(got.at(-1)).toMatchObject({ status: 'end' });
  });

  it('tails a running workflow live, then ends', async () => {
    const sha = s.knot.git.commit(REPO, {
      '.tangled/workflows/ci.yml': stubWorkflow('success', '2s', ['one', 'two']),
    });
    s.knot.emit('sh.tangled.git.refUpdate', rkey(), refUpdate(REPO, sha));
    const tid = await waitFor(
      () =>
        [...app.pipelines.entries()].find(([, p]) => (p as Loose).triggerMetadata.push.newSha === sha)?.[0],
      'the pipeline',
    );
    const times: number[] = [];
    const got: Array<Loose> = [];
    for await (const m of subscribe({ pipeline: tid, workflows: ['ci.yml'] })) {
      got.push(m);
      times.push(Date.now());
    }
    expect(got.filter((m) => m.status === 'start').map((m) => m.content)).toEqual(['one', 'two']);
    expect(times.at(-1)! - times[0]!).toBeGreaterThan(500);
  }, 20_000);

  it('answers before the upgrade, in JSON: 400 BadRequest for a malformed TID, 404 NotFound for an unknown pipeline or workflow', async () => {
    const refused = (query: string) =>
      new Promise<{ status: number; body: unknown }>((resolve, reject) => {
        const ws = new WebSocket(
          `${s.daemon.base.replace(/^http/, 'ws')}/xrpc/sh.tangled.ci.subscribePipelineLogs?${query}`,
        );
        ws.on('open', () => reject(new Error('upgraded')));
        ws.on('error', () => {});
        ws.on('unexpected-response', (_req, res) => {
          let text = '';
          res.on('data', (d: Buffer) => (text += d));
          res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) }));
        });
      });
    expect(await refused(`pipeline=${rkey()}`)).toMatchObject({ status: 404, body: { error: 'NotFound' } });
    expect(await refused(`pipeline=${adoptedRkey}&workflows=nope.yml`)).toMatchObject({
      status: 404,
      body: { error: 'NotFound', message: expect.stringContaining('nope.yml') },
    });
    expect(await refused('pipeline=x')).toMatchObject({ status: 400, body: { error: 'BadRequest' } });
    expect(await refused('')).toMatchObject({ status: 400, body: { error: 'BadRequest' } });
  });
});
