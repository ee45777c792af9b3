import Database from 'better-sqlite3';
/**
 * The Buildkite runner against the fake Buildkite (buildkite spec §10) and the real daemon:
 * builds per workflow run, webhooks (signed) and reconciliation, state and exit codes,
 * idempotent create, live and stored logs, webhook authentication, and a chaos run with 5xx,
 * 429 bursts, dropped webhooks and a SIGKILL in the middle.
 */

import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppviewEvents, readLogs, type StatusRow } from '../fakes/appview.ts';
import { FakeBuildkite } from '../fakes/buildkite.ts';
import { signWebhook } from '../providers/buildkite/webhook-auth.ts';
import { buildkiteEnv, buildkiteWorkflow } from './support/buildkite.ts';
import { OWNER, onboard, pipelineRecord, rkey, type Stack, startStack } from './support/stack.ts';
import { waitFor } from './support/wait.ts';
import { Callers } from './support/xrpc-auth.ts';

const SECRET = 'whsec-test-2f9c1e';
const VAULT = 'did:plc:bkvault'; // a repo with a DID, for the authenticated methods
const VALUE = 'tok-9f8e7d6c5b4a-secret';
const CANCELLED = { status: 'cancelled', error: 'User canceled the workflow', exitCode: -1 };
const BUDGET = 3000;

let s: Stack;
let bk: FakeBuildkite;
let app: AppviewEvents;
let vaultUri: string;
const callers = new Callers();

const workflow = buildkiteWorkflow;

function run(workflows: Array<{ name: string; raw: string }>, repo = 'hello'): string {
  const key = rkey();
  s.knot.emit('sh.tangled.pipeline', key, pipelineRecord(s.knot.host, workflows, { name: repo }));
  return key;
}

async function finished(
  pipeline: string,
  count: number,
  timeoutMs = 20_000,
): Promise<Record<string, { status: string; error: string | null; exitCode: number }>> {
  return waitFor<Record<string, StatusRow> | undefined>(
    () => {
      const latest = app.latest(pipeline);
      const rows = Object.values(latest);
      return rows.length === count &&
        rows.every((r) => ['success', 'failed', 'timeout', 'cancelled'].includes(r.status))
        ? latest
        : undefined;
    },
    `pipeline ${pipeline} to finish`,
    timeoutMs,
  ) as Promise<Record<string, StatusRow>>;
}

/** The deploy gate's answer on the pipeline's commit, once greenness has a verdict on it. */
async function gate(pipeline: string): Promise<{ status: number; json: Record<string, unknown> }> {
  const record = app.pipelines.get(pipeline) as { triggerMetadata: { push: { newSha: string } } };
  const q = `repo=${encodeURIComponent(`${OWNER}/hello`)}&ref=main&commit=${record.triggerMetadata.push.newSha}`;
  return waitFor<{ status: number; json: Record<string, unknown> } | undefined>(async () => {
    const res = await fetch(`${s.daemon.base}/greenness/v1/gate?${q}`);
    const json = (await res.json()) as Record<string, unknown>;
    return json.status === 'green' || json.status === 'not_green' ? { status: res.status, json } : undefined;
  }, `the verdict on ${pipeline}`) as Promise<{ status: number; json: Record<string, unknown> }>;
}

/** The daemon's database, read beside it (WAL: a reader never blocks the daemon). */
function query<T>(sql: string, ...params: unknown[]): T | undefined {
  const db = new Database(s.db, { readonly: true });
  try {
    return db.prepare(sql).get(...params) as T | undefined;
  } finally {
    db.close();
  }
}

/** Buildkite webhook messages stored (or, with 'pending', not yet handled by the runner). */
function webhookMessages(which: 'stored' | 'pending' = 'stored'): number {
  return which === 'stored'
    ? query<{ n: number }>(`SELECT count(*) AS n FROM queue_messages WHERE topic = 'buildkite.webhook'`)!.n
    : query<{ n: number }>(`SELECT count(*) AS n FROM queue_delivery WHERE topic = 'buildkite.webhook'`)!.n;
}

function storedBuild(requestId: string): { blocked: number } | undefined {
  return query('SELECT blocked FROM buildkite_builds WHERE request_id = ?', requestId);
}

function dispatchHeld(requestId: string): boolean {
  const row = query<{ held: number }>(
    `SELECT (postponed = 1 AND in_flight = 0 AND invisible_until > ?) AS held FROM queue_delivery
     WHERE topic = 'workflow.dispatch' AND partition_key = ?`,
    Date.now(),
    requestId,
  );
  return row?.held === 1;
}

beforeAll(async () => {
  bk = await FakeBuildkite.start({ orgLimit: BUDGET + 1000, userLimit: BUDGET + 1000 });
  s = await startStack({
    ...buildkiteEnv(bk, SECRET),
    TREADLE_BUILDKITE_RATE_LIMIT: String(BUDGET),
    TREADLE_BUILDKITE_POLL_INTERVAL: '1s',
    TREADLE_QUEUE_CONCURRENCY: '64',
  });
  bk.webhook = { url: `${s.daemon.base}/webhooks/buildkite`, mode: 'signature', secret: SECRET };
  app = new AppviewEvents();
  await app.connect(s.daemon.base);
  await onboard(s);
  vaultUri = `at://${OWNER}/sh.tangled.repo/${await onboard(s, 'vault', OWNER, { repoDid: VAULT })}`;
  await callers.register(s.pds, [OWNER]);
}, 30_000);

afterAll(async () => {
  if (process.env.DUMP_LOGS) (await import('node:fs')).writeFileSync(process.env.DUMP_LOGS, s.daemon.logs());
  await app?.close();
  await s?.close();
  await bk?.close();
});

describe('the Buildkite runner', () => {
  it('runs a workflow as one build, follows it by webhook, and costs at most 3 API calls', async () => {
    bk.script('app', {
      startAfterMs: 50,
      runMs: 300,
      jobs: [{ name: 'unit', command: 'npm test', lines: 20 }],
    });
    const before = bk.requests.length;
    const pipeline = run([workflow('ci.yml', 'app')]);
    const latest = await finished(pipeline, 1);
    expect(latest['ci.yml']).toMatchObject({ status: 'success' });
    expect(await gate(pipeline)).toMatchObject({ status: 200, json: { green: true } });
    const build = bk.builds.at(-1)!;
    expect(build.body).toMatchObject({
      commit: expect.stringMatching(/^[0-9a-f]{40}$/),
      branch: 'main',
      meta_data: { 'treadle:request_id': `${s.knot.host}/${pipeline}/ci.yml`, 'treadle:workflow': 'ci.yml' },
      env: {
        TANGLED_WORKFLOW: 'ci.yml',
        TANGLED_PIPELINE: `at://did:web:${s.knot.host}/sh.tangled.pipeline/${pipeline}`,
      },
    });
    // Logs are fetched once after the end, and stored: a viewer afterwards costs nothing.
    await waitFor(() => bk.requests.slice(before).some((r) => r.endsWith('/log')), 'the final log fetch');
    // /logs closes once the status is final and collection has ended: no call can follow.
    const logs = await readLogs(s.daemon.base, { knot: s.knot.host, rkey: pipeline, workflow: 'ci.yml' });
    expect(logs.closeCode).toBe(1000);
    const calls = bk.requests.length - before;
    expect(calls).toBeLessThanOrEqual(3);
    expect(logs.steps.map((st) => [st.title, st.command])).toEqual([['unit', 'npm test']]);
    expect(logs.steps[0]!.body).toContain('line 20 of unit');
    expect(logs.steps[0]!.body[0]).toBe('~~~ Running script');
    expect(bk.requests.length - before).toBe(calls);
    expect(s.daemon.logs()).not.toContain(bk.token);
  }, 30_000);

  it('reports the failing job’s exit status, a timeout, and a missing pipeline option as errors', async () => {
    bk.script('broken', {
      runMs: 100,
      jobs: [{ name: 'lint', command: 'npm run lint', lines: 2, exitStatus: 3 }],
    });
    bk.script('slow', {
      runMs: 100,
      jobs: [{ name: 'e2e', command: 'npm run e2e', lines: 2, timesOut: true }],
    });
    const pipeline = run([
      workflow('lint.yml', 'broken'),
      workflow('e2e.yml', 'slow'),
      { name: 'nopipe.yml', raw: 'engine: nixery\nsteps: []\ntreadle:\n  buildkite:\n    org: acme\n' },
    ]);
    const latest = await finished(pipeline, 3);
    expect(latest['lint.yml']).toMatchObject({
      status: 'failed',
      exitCode: 3,
      error: 'step "lint" failed with exit status 3',
    });
    expect(latest['e2e.yml']).toMatchObject({ status: 'timeout' });
    expect(latest['nopipe.yml']!.status).toBe('failed');
    expect(latest['nopipe.yml']!.error).toMatch(
      /names no Buildkite pipeline: set treadle.buildkite.pipeline/,
    );
    // Greenness counts a timeout as a failure (spec behaviour 9), from Buildkite's statuses.
    expect(await gate(pipeline)).toEqual({
      status: 409,
      json: {
        green: false,
        status: 'not_green',
        reason: 'workflow lint.yml failed; workflow e2e.yml timed out; workflow nopipe.yml failed',
      },
    });
  }, 30_000);

  it('follows builds through creating, waiter jobs and jobs assigned then accepted, and reports skipped, not_run, broken and expired builds', async () => {
    const step = (name: string, extra: Record<string, unknown> = {}) => ({
      name,
      command: `make ${name}`,
      lines: 2,
      ...extra,
    });
    bk.script('staged', {
      creatingMs: 400,
      startAfterMs: 600,
      runMs: 400,
      waiter: true,
      jobs: [step('one'), step('two')],
    });
    bk.script('superseded', { startAfterMs: 100, runMs: 100, outcome: 'skipped', jobs: [step('never')] });
    bk.script('filtered', { startAfterMs: 100, runMs: 100, outcome: 'not_run', jobs: [step('never')] });
    bk.script('lostagent', { startAfterMs: 50, runMs: 300, jobs: [step('flaky', { endState: 'broken' })] });
    bk.script('noagent', { startAfterMs: 50, runMs: 300, jobs: [step('queued', { endState: 'expired' })] });
    const pipeline = run([
      workflow('staged.yml', 'staged'),
      workflow('skipped.yml', 'superseded'),
      workflow('notrun.yml', 'filtered'),
      workflow('broken.yml', 'lostagent'),
      workflow('expired.yml', 'noagent'),
    ]);
    const latest = await finished(pipeline, 5);
    expect(latest['staged.yml']).toMatchObject({ status: 'success' });
    expect(latest['skipped.yml']).toMatchObject({ status: 'cancelled' });
    expect(latest['notrun.yml']).toMatchObject({ status: 'cancelled' });
    expect(latest['broken.yml']).toMatchObject({
      status: 'failed',
      error: 'step "flaky" broken on Buildkite',
    });
    expect(latest['expired.yml']).toMatchObject({
      status: 'failed',
      error: 'step "queued" expired on Buildkite',
    });
    for (const w of ['staged.yml', 'broken.yml', 'expired.yml'])
      expect(app.history(pipeline, w), w).toEqual([
        'pending',
        'running',
        w === 'staged.yml' ? 'success' : 'failed',
      ]);
    // Both jobs' logs, around the waiter, and nothing for the waiter itself.
    const logs = await readLogs(s.daemon.base, { knot: s.knot.host, rkey: pipeline, workflow: 'staged.yml' });
    expect(logs.closeCode).toBe(1000);
    expect(logs.steps.map((st) => st.title)).toEqual(['one', 'two']);
  }, 40_000);

  it('never creates two builds when a create is committed but answered 500', async () => {
    bk.failAfterCommit(1);
    const pipeline = run([workflow('once.yml', 'app')]);
    expect((await finished(pipeline, 1))['once.yml']!.status).toBe('success');
    expect(bk.buildsPerRequest().get(`${s.knot.host}/${pipeline}/once.yml`)).toBe(1);
  }, 30_000);

  it('rejects webhooks with a wrong token, a bad signature or a stale timestamp, changing nothing', async () => {
    // A running build, so a forged "failed" would have something to change.
    bk.script('steady', { startAfterMs: 50, runMs: 3000, jobs: [{ name: 'j', command: 'make', lines: 1 }] });
    const pipeline = run([workflow('steady.yml', 'steady')]);
    await waitFor(() => app.latest(pipeline)['steady.yml']?.status === 'running', 'the running build');
    const build = bk.builds.at(-1)!;
    const body = JSON.stringify({
      event: 'build.finished',
      build: {
        id: build.id,
        number: build.number,
        state: 'failed',
        blocked: false,
        finished_at: new Date().toISOString(),
        meta_data: build.body.meta_data,
      },
    });
    const post = (headers: Record<string, string>) =>
      fetch(`${s.daemon.base}/webhooks/buildkite`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-buildkite-event': 'build.finished', ...headers },
        body,
      });
    const queued = () => webhookMessages();
    const before = queued();
    const now = Math.floor(Date.now() / 1000);
    expect((await post({ 'x-buildkite-token': SECRET })).status).toBe(401);
    expect((await post({ 'x-buildkite-signature': signWebhook('wrong', body, now) })).status).toBe(401);
    expect((await post({ 'x-buildkite-signature': signWebhook(SECRET, body, now - 360) })).status).toBe(401);
    expect((await post({ 'x-buildkite-signature': 'timestamp=1,signature=yo' })).status).toBe(401);
    // Nothing was stored for the runner to act on, so nothing can change later either.
    expect(queued()).toBe(before);
    expect(s.daemon.logs()).toContain('"msg":"Buildkite webhook rejected"');
    // And the build ends as Buildkite says, not as the forgeries did.
    expect((await finished(pipeline, 1))['steady.yml']).toMatchObject({ status: 'success' });
    expect(app.history(pipeline, 'steady.yml')).toEqual(['pending', 'running', 'success']);
  }, 30_000);

  it('streams a running job’s log to a /logs watcher, then closes 1000, whole lines only, progress as a terminal shows it', async () => {
    bk.script('long', {
      startAfterMs: 50,
      runMs: 6000,
      jobs: [
        {
          name: 'build',
          command: 'make',
          lines: 60,
          progress: ['Downloading 10%', 'Downloading 60%', 'Downloading 100%'],
          partialTail: true,
        },
      ],
    });
    const pipeline = run([workflow('live.yml', 'long')]);
    await waitFor(() => app.latest(pipeline)['live.yml']?.status === 'running', 'the build to run', 15_000);
    const seenAt: number[] = [];
    const build = bk.builds.at(-1)!;
    const endAt = build.jobs[0]!.endAt;
    const logs = await readLogs(
      s.daemon.base,
      { knot: s.knot.host, rkey: pipeline, workflow: 'live.yml' },
      { timeoutMs: 30_000, onLine: (l) => l.kind === 'data' && seenAt.push(Date.now()) },
    );
    expect(logs.closeCode).toBe(1000);
    expect(seenAt.some((t) => t < endAt)).toBe(true);
    // Uploads cut lines in half while the job runs: each line still arrives once, whole.
    expect(logs.steps[0]!.body.filter((l) => l.startsWith('line '))).toEqual(
      Array.from({ length: 60 }, (_, i) => `line ${i + 1} of build`),
    );
    expect(logs.steps[0]!.body).toContain('Downloading 100%');
    expect(logs.steps[0]!.body.filter((l) => l.includes('Downloading'))).toEqual(['Downloading 100%']);
  }, 40_000);

  it('without HEAD/Range support and with upload lag, a watcher still gets every line once, job by job', async () => {
    bk.noLogRanges = true;
    bk.logLagMs = 3500; // longer than the runner's 2 s settle: the final fetch reads "" first
    try {
      bk.script('norange', {
        startAfterMs: 50,
        runMs: 2500,
        jobs: [
          { name: 'a', command: 'make a', lines: 25 },
          { name: 'b', command: 'make b', lines: 25 },
        ],
      });
      const before = bk.requests.length;
      const pipeline = run([workflow('norange.yml', 'norange')]);
      await waitFor(
        () => app.latest(pipeline)['norange.yml']?.status === 'running',
        'the build to run',
        15_000,
      );
      const logs = await readLogs(
        s.daemon.base,
        { knot: s.knot.host, rkey: pipeline, workflow: 'norange.yml' },
        { timeoutMs: 40_000 },
      );
      expect(logs.closeCode).toBe(1000);
      expect(logs.steps.map((st) => st.title)).toEqual(['a', 'b']);
      for (const [i, name] of ['a', 'b'].entries())
        expect(logs.steps[i]!.body.filter((l) => l.startsWith('line '))).toEqual(
          Array.from({ length: 25 }, (_, n) => `line ${n + 1} of ${name}`),
        );
      const mine = bk.requests.slice(before);
      // One refused HEAD per job at most, then full refetches only.
      expect(mine.filter((r) => r.startsWith('HEAD')).length).toBeLessThanOrEqual(2);
    } finally {
      bk.noLogRanges = false;
      bk.logLagMs = 0;
    }
  }, 60_000);

  it('keeps a blocked build running (build.finished with blocked: true) until it is unblocked and passes', async () => {
    bk.script('gate', {
      startAfterMs: 50,
      runMs: 100,
      jobs: [{ name: 'build', command: 'make', lines: 1 }],
      blocked: true,
    });
    const pipeline = run([workflow('gate.yml', 'gate')]);
    await waitFor(() => bk.builds.at(-1)?.pipeline === 'gate', 'the build');
    const build = bk.builds.at(-1)!;
    await waitFor(() => bk.view(build).blocked === true, 'the block step');
    // treadle has taken in the blocked, finished build and polled it since: its dispatch is
    // held again after the webhook woke it.
    const requestId = (build.body.meta_data as Record<string, string>)['treadle:request_id']!;
    await waitFor(() => app.latest(pipeline)['gate.yml']?.status === 'running', 'the running status');
    await waitFor(
      () => storedBuild(requestId)?.blocked === 1 && webhookMessages('pending') === 0,
      'the blocked build stored',
    );
    await waitFor(() => dispatchHeld(requestId), 'the dispatch held after the block');
    expect(app.latest(pipeline)['gate.yml']?.status).toBe('running');
    expect(bk.unblock(build)).toBe(true);
    const latest = await finished(pipeline, 1);
    expect(latest['gate.yml']).toMatchObject({ status: 'success' });
  }, 30_000);

  it('puts a repository secret into the build’s env and masks it, and its base64, in the log', async () => {
    const added = await callers.call(s.daemon.base, 'sh.tangled.repo.addSecret', OWNER, {
      repo: vaultUri,
      key: 'DEPLOY_TOKEN',
      value: VALUE,
    });
    expect(added.status, added.text).toBe(200);
    bk.script('deploy', {
      startAfterMs: 50,
      runMs: 300,
      jobs: [
        {
          name: 'deploy',
          command: './deploy.sh',
          lines: 2,
          echo: ['using $DEPLOY_TOKEN', `as base64 ${Buffer.from(VALUE).toString('base64')}`],
        },
      ],
    });
    const pipeline = run([workflow('deploy.yml', 'deploy')], 'vault');
    expect((await finished(pipeline, 1))['deploy.yml']).toMatchObject({ status: 'success' });
    expect(bk.builds.at(-1)!.body.env).toMatchObject({ DEPLOY_TOKEN: VALUE });
    const logs = await readLogs(s.daemon.base, { knot: s.knot.host, rkey: pipeline, workflow: 'deploy.yml' });
    const body = logs.steps.flatMap((st) => st.body);
    expect(body).toContain('using ***');
    expect(body).toContain('as base64 ***');
    expect(JSON.stringify(logs.lines)).not.toContain(VALUE);
    expect(readFileSync(s.db).includes(VALUE)).toBe(false);
    expect(readFileSync(`${s.db}-wal`).includes(VALUE)).toBe(false);
    expect(s.daemon.logs()).not.toContain(VALUE);
  }, 30_000);

  it('cancels a running build with either cancel method, leaving its sibling running and a finished one alone', async () => {
    bk.script('forever', {
      startAfterMs: 50,
      runMs: 60_000,
      jobs: [{ name: 'soak', command: 'make soak', lines: 10 }],
    });
    bk.script('instant', { startAfterMs: 0, runMs: 50, jobs: [{ name: 'ok', command: 'true', lines: 1 }] });
    const pipeline = run(
      [workflow('a.yml', 'forever'), workflow('b.yml', 'forever'), workflow('done.yml', 'instant')],
      'vault',
    );
    await waitFor(
      () =>
        app.latest(pipeline)['a.yml']?.status === 'running' &&
        app.latest(pipeline)['b.yml']?.status === 'running' &&
        app.latest(pipeline)['done.yml']?.status === 'success',
      'both long builds running, the short one passed',
      20_000,
    );
    const buildOf = (name: string) =>
      bk.builds.find((b) =>
        (b.body.meta_data as Record<string, string>)['treadle:request_id']?.endsWith(`/${pipeline}/${name}`),
      )!;
    const cancels = () => bk.requests.filter((r) => r.startsWith('PUT') && r.endsWith('/cancel'));
    const before = cancels().length;

    const one = await callers.call(s.daemon.base, 'sh.tangled.ci.cancelPipeline', OWNER, {
      repo: VAULT,
      pipeline,
      workflows: ['a.yml'],
    });
    expect(one.status, one.text).toBe(200);
    await waitFor(() => app.latest(pipeline)['a.yml']?.status === 'cancelled', 'a.yml cancelled', 15_000);
    expect(app.latest(pipeline)['a.yml']).toMatchObject(CANCELLED);
    expect(cancels().slice(before)).toEqual([
      `PUT /v2/organizations/acme/pipelines/forever/builds/${buildOf('a.yml').number}/cancel`,
    ]);
    expect(app.latest(pipeline)['b.yml']?.status).toBe('running');

    const legacy = await callers.call(s.daemon.base, 'sh.tangled.pipeline.cancelPipeline', OWNER, {
      repo: vaultUri,
      pipeline: `at://did:web:${s.knot.host}/sh.tangled.pipeline/${pipeline}`,
      workflow: 'b.yml',
    });
    expect(legacy.status, legacy.text).toBe(200);
    await waitFor(() => app.latest(pipeline)['b.yml']?.status === 'cancelled', 'b.yml cancelled', 15_000);
    expect(app.latest(pipeline)['b.yml']).toMatchObject(CANCELLED);
    expect(cancels().slice(before)).toHaveLength(2);
    expect(cancels().at(-1)).toContain(`/builds/${buildOf('b.yml').number}/cancel`);
    await waitFor(() => buildOf('b.yml').cancelAt !== undefined, 'Buildkite to cancel the build');

    for (const call of [
      () =>
        callers.call(s.daemon.base, 'sh.tangled.ci.cancelPipeline', OWNER, {
          repo: VAULT,
          pipeline,
          workflows: ['done.yml'],
        }),
      () =>
        callers.call(s.daemon.base, 'sh.tangled.pipeline.cancelPipeline', OWNER, {
          repo: vaultUri,
          pipeline: `at://did:web:${s.knot.host}/sh.tangled.pipeline/${pipeline}`,
          workflow: 'done.yml',
        }),
    ]) {
      const r = await call();
      expect(r).toMatchObject({
        status: 400,
        json: {
          error: 'AlreadyFinished',
          message: 'nothing to cancel: already finished: done.yml (success)',
        },
      });
    }
    // Nothing was recorded for the dispatcher to carry out, so no cancel can follow later.
    expect(
      query<{ by: string | null }>(
        `SELECT cancel_requested_by AS by FROM workflows WHERE rkey = ? AND name = 'done.yml'`,
        pipeline,
      ),
    ).toEqual({ by: null });
    expect(cancels().slice(before)).toHaveLength(2);
    expect(app.latest(pipeline)['done.yml']?.status).toBe('success');
  }, 40_000);

  it('under 5xx, creates committed then answered 500 at random, 429 bursts, half the webhooks lost and a SIGKILL midway, runs every workflow once to its status within budget', async () => {
    const pipelines = Number(process.env.BK_CHAOS_PIPELINES ?? 200);
    bk.script('chaos', { startAfterMs: 50, runMs: 300, jobs: [{ name: 't', command: 'true', lines: 3 }] });
    bk.script('chaosfail', {
      startAfterMs: 50,
      runMs: 300,
      jobs: [{ name: 'f', command: 'false', lines: 3, exitStatus: 2 }],
    });
    bk.failRate = 0.2;
    bk.commitThenFailRate = 0.1;
    bk.dropRate = 0.5;
    bk.duplicateRate = 0.1;
    bk.maxDelayMs = 300;
    bk.rateLimitBurst(5);
    const keys: string[] = [];
    for (let i = 0; i < pipelines; i++) {
      keys.push(
        run([workflow('a.yml', 'chaos'), workflow('b.yml', 'chaos'), workflow('c.yml', 'chaosfail')]),
      );
      if (i === Math.floor(pipelines / 2)) {
        await waitFor(() => bk.builds.length > 20, 'some builds');
        await s.daemon.kill();
        bk.rateLimitBurst(5);
        await s.restart();
        bk.webhook = { url: `${s.daemon.base}/webhooks/buildkite`, mode: 'signature', secret: SECRET };
        // The same appview reconnects from its cursor, as the real one does.
        await app.close();
        await app.connect(s.daemon.base);
      }
    }
    for (const key of keys) {
      const latest = await finished(key, 3, 120_000).catch((err) => {
        const builds = bk.builds.filter(
          (b) => String((b.body.meta_data as Record<string, string>)['treadle:rkey']) === key,
        );
        console.error(
          'STUCK',
          key,
          keys.indexOf(key),
          JSON.stringify(app.latest(key)),
          builds.map((b) => bk.view(b).state),
        );
        throw err;
      });
      expect([latest['a.yml']!.status, latest['b.yml']!.status, latest['c.yml']!.status], key).toEqual([
        'success',
        'success',
        'failed',
      ]);
      expect(latest['c.yml']!.exitCode).toBe(2);
    }
    bk.failRate = 0;
    bk.commitThenFailRate = 0;
    bk.dropRate = 0;
    const perRun = bk.buildsPerRequest();
    for (const key of keys)
      for (const w of ['a.yml', 'b.yml', 'c.yml'])
        expect(perRun.get(`${s.knot.host}/${key}/${w}`), `${key}/${w}`).toBe(1);
    expect(bk.peakPerMinute()).toBeLessThanOrEqual(BUDGET);
  }, 240_000);
});
