/**
 * Trigger and cancel on the real daemon (2026 spec §2, §3.8): `sh.tangled.ci.triggerPipeline`
 * reads the workflows over real git at the sha asked for; `sh.tangled.ci.cancelPipeline` and the
 * older `sh.tangled.pipeline.cancelPipeline` stop one workflow while its sibling keeps running;
 * `treadle runs` does the same from the command line while the daemon runs. Tokens are signed
 * with real secp256k1 keys published by the fake PLC.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppviewEvents } from '../fakes/appview.ts';
import { runTreadle } from './support/process.ts';
import { OWNER, onboard, refUpdate, rkey, type Stack, startStack, stubWorkflow } from './support/stack.ts';
import { waitFor } from './support/wait.ts';
import { Callers } from './support/xrpc-auth.ts';

const REPO = 'did:plc:runsrepo';
const THEIR_REPO = 'did:plc:theirrepo';
const BOB = 'did:plc:bob33333333333333333333'; // collaborator on REPO, recorded by the owner
const MEMBER = 'did:plc:member3333333333333333'; // a spindle member who owns THEIR_REPO
const STRANGER = 'did:plc:stranger33333333333333';
const CANCELLED = { status: 'cancelled', error: 'User canceled the workflow', exitCode: -1 };

let s: Stack;
let app: AppviewEvents;
let repoUri: string;
const callers = new Callers();
const call = (nsid: string, as: string | null, body?: object, query = '') =>
  callers.call(s.daemon.base, nsid, as, body, query);

const present = new Map<string, Set<string>>();
/** A commit on `repo` whose workflow files are exactly these (name → YAML): the branch's others go. */
function commit(repo: string, workflows: Record<string, string>, branch = 'main'): string {
  const files: Record<string, string | null> = { 'n.txt': rkey() };
  const before = present.get(`${repo} ${branch}`) ?? new Set();
  for (const name of before) files[`.tangled/workflows/${name}`] = null;
  for (const [name, raw] of Object.entries(workflows)) files[`.tangled/workflows/${name}`] = raw;
  present.set(`${repo} ${branch}`, new Set(Object.keys(workflows)));
  return s.knot.git.commit(repo, files, { branch });
}

const slow = (steps = ['work']) => stubWorkflow('success', '60s', steps);
const quick = (when?: string) => stubWorkflow('success', '0s', ['build'], when);

/** The pipeline's workflows as the ci API shows them. */
async function ciPipeline(tid: string) {
  const r = await call('sh.tangled.ci.getPipeline', null, undefined, `?pipeline=${tid}`);
  expect(r.status).toBe(200);
  return r.json;
}

/** Waits for a workflow's latest status on /events to be `status`. */
function statusOf(tid: string, workflow: string, status: string) {
  return waitFor(
    () => {
      const row = app.latest(tid)[workflow];
      return row?.status === status ? row : undefined;
    },
    `${workflow} of ${tid} ${status}`,
    20_000,
  );
}

/** Pushes a commit with these workflows; returns the TID of the pipeline treadle builds for it. */
async function pushPipeline(repo: string, workflows: Record<string, string>): Promise<string> {
  const sha = commit(repo, workflows);
  s.knot.emit('sh.tangled.git.refUpdate', rkey(), refUpdate(repo, sha));
  const [tid] = await waitFor<[string, unknown] | undefined>(
    () =>
      [...app.pipelines.entries()].find(
        ([, p]) =>
          (p as { triggerMetadata: { push?: { newSha: string } } }).triggerMetadata.push?.newSha === sha,
      ),
    'the push pipeline',
    20_000,
  ).then((found) => found!);
  return tid;
}

beforeAll(async () => {
  s = await startStack({ TREADLE_PUSH_HOLD: '0s' });
  await callers.register(s.pds, [OWNER, BOB, MEMBER, STRANGER]);
  s.pds.addIdentity(MEMBER);
  app = new AppviewEvents();
  await app.connect(s.daemon.base);
  for (const did of [REPO, THEIR_REPO]) {
    s.knot.git.create(did);
    s.knot.defaultBranches.set(did, 'main');
  }
  repoUri = `at://${OWNER}/sh.tangled.repo/${await onboard(s, 'runs', OWNER, { repoDid: REPO })}`;
  s.jetstream.commit(OWNER, 'sh.tangled.spindle.member', rkey(), 'create', {
    $type: 'sh.tangled.spindle.member',
    subject: MEMBER,
    instance: 'spindle.test',
    createdAt: new Date().toISOString(),
  });
  s.jetstream.commit(OWNER, 'sh.tangled.repo.collaborator', rkey(), 'create', {
    $type: 'sh.tangled.repo.collaborator',
    subject: BOB,
    repo: repoUri,
    createdAt: new Date().toISOString(),
  });
  await waitFor(
    () => s.daemon.logs().includes('"collection":"sh.tangled.repo.collaborator"'),
    'the collaborator',
  );
  await onboard(s, 'theirs', MEMBER, { repoDid: THEIR_REPO });
  await waitFor(
    () => s.daemon.logs().includes(`"did":"${MEMBER}","collection":"sh.tangled.repo",`),
    'the member’s repo',
  );
}, 40_000);

afterAll(async () => {
  await app?.close();
  await s?.close();
});

describe('sh.tangled.ci.triggerPipeline', () => {
  it('runs the workflows found at the sha asked for, for a collaborator, skipping when: for a manual run', async () => {
    // ci.yml only runs on pushes to dev: a manual run ignores that. A later commit changes the files.
    const first = commit(REPO, { 'ci.yml': quick('  - event: push\n    branch: dev'), 'lint.yml': quick() });
    commit(REPO, { 'later.yml': quick() });
    const r = await call('sh.tangled.ci.triggerPipeline', BOB, {
      repo: REPO,
      trigger: {
        $type: 'sh.tangled.ci.trigger#manual',
        sha: first,
        ref: 'refs/heads/main',
        inputs: [{ key: 'target', value: 'staging' }],
      },
    });
    expect(r.status, r.text).toBe(200);
    const m = /^at:\/\/did:web:([^/]+)\/sh\.tangled\.pipeline\/([a-z2-7]{13})$/.exec(r.json.pipeline);
    expect(m?.[1]).toBe(s.knot.host);
    const tid = m![2]!;
    await statusOf(tid, 'ci.yml', 'success');
    await statusOf(tid, 'lint.yml', 'success');
    const p = await ciPipeline(tid);
    expect(p).toMatchObject({
      id: tid,
      repo: REPO,
      commit: first,
      trigger: {
        $type: 'sh.tangled.ci.trigger#manual',
        sha: first,
        ref: 'refs/heads/main',
        inputs: [{ key: 'target', value: 'staging' }],
      },
    });
    expect(p.workflows.map((w: { name: string }) => w.name)).toEqual(['ci.yml', 'lint.yml']);
    // The pipeline is announced on /events as a manual run at that sha.
    expect(app.pipelines.get(tid)).toMatchObject({
      triggerMetadata: { kind: 'manual', manual: { sha: first }, repo: { repoDid: REPO } },
    });
  });

  it('takes the shapes the newest appview sends: the repo as an AT-URI, a bare sha, and cancel by AT-URIs', async () => {
    const sha = commit(REPO, { 'flat.yml': quick(), 'long.yml': slow() });
    // Upstream's appview retries a pipeline with {repo: <repo AT-URI>, sha, workflows}.
    const r = await call('sh.tangled.ci.triggerPipeline', BOB, {
      repo: repoUri,
      sha,
      workflows: ['long.yml'],
    });
    expect(r.status, r.text).toBe(200);
    const tid = r.json.pipeline.split('/').pop();
    await statusOf(tid, 'long.yml', 'running');
    expect(app.pipelines.get(tid)).toMatchObject({ triggerMetadata: { kind: 'manual', manual: { sha } } });
    // …and cancels through sh.tangled.ci.pipeline.cancelPipeline with AT-URIs.
    const cancel = await call('sh.tangled.ci.pipeline.cancelPipeline', BOB, {
      repo: repoUri,
      pipeline: `at://did:web:${s.knot.host}/sh.tangled.pipeline/${tid}`,
      workflows: ['long.yml'],
    });
    expect(cancel.status, cancel.text).toBe(200);
    await statusOf(tid, 'long.yml', 'cancelled');
    const unknown = await call('sh.tangled.ci.triggerPipeline', BOB, {
      repo: `at://${OWNER}/sh.tangled.repo/3zzzzzzzzzzzz`,
      sha,
    });
    expect(unknown).toMatchObject({ status: 400, json: { error: 'RepoNotFound' } });
  });

  it('re-runs a pull request at its source sha, only the workflows named, with the pull recorded', async () => {
    const sha = commit(
      REPO,
      { 'pr.yml': quick('  - event: pull_request\n    branch: main'), 'other.yml': quick() },
      'feature',
    );
    const pull = `at://${BOB}/sh.tangled.repo.pull/3mabcdefghijk`;
    const r = await call('sh.tangled.ci.triggerPipeline', OWNER, {
      repo: REPO,
      trigger: {
        $type: 'sh.tangled.ci.trigger#pullRequest',
        targetBranch: 'main',
        sourceSha: sha,
        sourceBranch: 'feature',
        action: 'synchronize',
        pull,
      },
      workflows: ['pr.yml'],
    });
    expect(r.status, r.text).toBe(200);
    const tid = r.json.pipeline.split('/').pop();
    await statusOf(tid, 'pr.yml', 'success');
    const p = await ciPipeline(tid);
    expect(p.trigger).toEqual({
      $type: 'sh.tangled.ci.trigger#pullRequest',
      targetBranch: 'main',
      sourceSha: sha,
      sourceBranch: 'feature',
      pull,
      action: 'synchronize',
    });
    expect(p.workflows.map((w: { name: string }) => w.name)).toEqual(['pr.yml']);
  });

  it('refuses a stranger, a bad token, a bad sha, an unknown repo, and a run with no workflows', async () => {
    const sha = commit(REPO, { 'ci.yml': quick() });
    const manual = (over: object = {}) => ({
      repo: REPO,
      trigger: { $type: 'sh.tangled.ci.trigger#manual', sha, ...over },
    });
    const before = app.pipelines.size;
    expect(await call('sh.tangled.ci.triggerPipeline', STRANGER, manual())).toMatchObject({
      status: 400,
      json: { error: 'AccessControl' },
    });
    expect(await call('sh.tangled.ci.triggerPipeline', null, manual())).toMatchObject({
      status: 403,
      json: { error: 'Auth' },
    });
    expect(await call('sh.tangled.ci.triggerPipeline', BOB, manual({ sha: sha.slice(0, 39) }))).toMatchObject(
      {
        status: 400,
        json: { error: 'InvalidRequest' },
      },
    );
    expect(
      await call('sh.tangled.ci.triggerPipeline', BOB, { ...manual(), repo: 'did:plc:notserved' }),
    ).toMatchObject({ status: 400, json: { error: 'RepoNotFound' } });
    expect(
      await call('sh.tangled.ci.triggerPipeline', BOB, { ...manual(), workflows: ['missing.yml'] }),
    ).toMatchObject({ status: 400, json: { error: 'InvalidRequest', message: 'no workflows to run' } });
    expect(await call('sh.tangled.ci.triggerPipeline', BOB, { repo: REPO, trigger: { sha } })).toMatchObject({
      status: 400,
      json: { error: 'InvalidRequest' },
    });
    expect(await call('sh.tangled.ci.triggerPipeline', BOB, manual({ sha: 'f'.repeat(40) }))).toMatchObject({
      status: 400,
      json: { message: expect.stringMatching(/could not read the workflows/) },
    });
    expect(app.pipelines.size).toBe(before);
  });
});

describe('cancel', () => {
  it('cancels one workflow with sh.tangled.ci.cancelPipeline while its sibling keeps running, then the sibling with the older method', async () => {
    const tid = await pushPipeline(REPO, { 'a.yml': slow(), 'b.yml': slow() });
    await statusOf(tid, 'a.yml', 'running');
    await statusOf(tid, 'b.yml', 'running');
    const r = await call('sh.tangled.ci.cancelPipeline', BOB, {
      repo: REPO,
      pipeline: tid,
      workflows: ['a.yml'],
    });
    expect(r.status, r.text).toBe(200);
    expect(r.json).toMatchObject({ cancelled: ['a.yml'], finished: [] });
    expect(await statusOf(tid, 'a.yml', 'cancelled')).toMatchObject(CANCELLED);
    expect(app.latest(tid)['b.yml']?.status).toBe('running');
    const legacy = await call('sh.tangled.pipeline.cancelPipeline', OWNER, {
      repo: repoUri,
      pipeline: `at://did:web:${s.knot.host}/sh.tangled.pipeline/${tid}`,
      workflow: 'b.yml',
    });
    expect(legacy.status, legacy.text).toBe(200);
    expect(await statusOf(tid, 'b.yml', 'cancelled')).toMatchObject(CANCELLED);
    expect((await ciPipeline(tid)).workflows).toMatchObject([
      { name: 'a.yml', status: 'cancelled', error: 'User canceled the workflow' },
      { name: 'b.yml', status: 'cancelled', error: 'User canceled the workflow' },
    ]);
  });

  it('changes nothing on a finished workflow and says so, and refuses strangers and unknown names', async () => {
    const tid = await pushPipeline(REPO, { 'done.yml': quick() });
    await statusOf(tid, 'done.yml', 'success');
    const frames = app.frames.length;
    expect(await call('sh.tangled.ci.cancelPipeline', OWNER, { repo: REPO, pipeline: tid })).toMatchObject({
      status: 400,
      json: { error: 'AlreadyFinished', message: 'nothing to cancel: already finished: done.yml (success)' },
    });
    expect(
      await call('sh.tangled.pipeline.cancelPipeline', OWNER, {
        repo: repoUri,
        pipeline: `at://did:web:${s.knot.host}/sh.tangled.pipeline/${tid}`,
        workflow: 'done.yml',
      }),
    ).toMatchObject({ status: 400, json: { error: 'AlreadyFinished' } });
    expect(
      await call('sh.tangled.ci.cancelPipeline', OWNER, {
        repo: REPO,
        pipeline: tid,
        workflows: ['nope.yml'],
      }),
    ).toMatchObject({ status: 400, json: { error: 'WorkflowNotFound' } });
    const running = await pushPipeline(REPO, { 'long.yml': slow() });
    await statusOf(running, 'long.yml', 'running');
    expect(
      await call('sh.tangled.ci.cancelPipeline', STRANGER, { repo: REPO, pipeline: running }),
    ).toMatchObject({
      status: 400,
      json: { error: 'AccessControl' },
    });
    expect(
      await call('sh.tangled.ci.cancelPipeline', OWNER, { repo: REPO, pipeline: '3zzzzzzzzzzzz' }),
    ).toMatchObject({
      status: 400,
      json: { error: 'PipelineNotFound' },
    });
    // Only the second pipeline's frames were added; the finished one's latest status stands.
    expect(app.latest(tid)['done.yml']?.status).toBe('success');
    expect(app.frames.slice(frames).some((f) => f.includes(tid))).toBe(false);
    expect(app.latest(running)['long.yml']?.status).toBe('running');
    await call('sh.tangled.ci.cancelPipeline', OWNER, { repo: REPO, pipeline: running });
    await statusOf(running, 'long.yml', 'cancelled');
  });

  it('lets the spindle owner cancel in a member’s repo, but not a collaborator of another repo', async () => {
    const tid = await pushPipeline(THEIR_REPO, { 'theirs.yml': slow() });
    await statusOf(tid, 'theirs.yml', 'running');
    expect(
      await call('sh.tangled.ci.cancelPipeline', BOB, { repo: THEIR_REPO, pipeline: tid }),
    ).toMatchObject({
      status: 400,
      json: { error: 'AccessControl' },
    });
    expect(
      (await call('sh.tangled.ci.cancelPipeline', OWNER, { repo: THEIR_REPO, pipeline: tid })).status,
    ).toBe(200);
    expect(await statusOf(tid, 'theirs.yml', 'cancelled')).toMatchObject(CANCELLED);
  });
});

describe('treadle runs', () => {
  it('lists active pipelines, cancels a workflow and retries a pipeline while the daemon runs', async () => {
    const env = { ...s.env };
    const tid = await pushPipeline(REPO, { 'x.yml': slow(), 'y.yml': slow() });
    await statusOf(tid, 'x.yml', 'running');
    const listed = await runTreadle(['runs', 'list', '--active', '--json'], env);
    expect(listed.code, listed.stderr).toBe(0);
    const active = JSON.parse(listed.stdout) as Array<{
      pipeline: string;
      workflows: Array<{ name: string; status: string }>;
    }>;
    const mine = active.find((p) => p.pipeline.endsWith(`/${tid}`));
    expect(mine?.workflows).toEqual([
      { name: 'x.yml', status: 'running' },
      { name: 'y.yml', status: expect.stringMatching(/pending|running/) },
    ]);
    const table = await runTreadle(['runs', 'list'], env);
    expect(table.stdout.split('\n')[0]).toMatch(/^PIPELINE\s+REPO\s+KIND\s+COMMIT\s+CREATED\s+WORKFLOWS$/);

    const cancelled = await runTreadle(['runs', 'cancel', tid, 'x.yml'], env);
    expect(cancelled.code, cancelled.stderr).toBe(0);
    expect(cancelled.stdout).toContain('x.yml: cancel requested');
    expect(await statusOf(tid, 'x.yml', 'cancelled')).toMatchObject(CANCELLED);
    expect(app.latest(tid)['y.yml']?.status).toBe('running');
    const again = await runTreadle(['runs', 'cancel', tid, 'x.yml'], env);
    expect(again.code).toBe(1);
    expect(again.stdout).toContain('x.yml: already finished (cancelled), left as it is');

    const retried = await runTreadle(['runs', 'retry', `${s.knot.host}/${tid}`], env);
    expect(retried.code, retried.stderr).toBe(0);
    const uri = /retry queued as (at:\/\/\S+);/.exec(retried.stdout)?.[1];
    const newTid = uri!.split('/').pop()!;
    expect(newTid).not.toBe(tid);
    await statusOf(newTid, 'x.yml', 'running');
    await statusOf(newTid, 'y.yml', 'running');
    expect(app.pipelines.get(newTid)).toEqual(app.pipelines.get(tid));
    // The whole of the new run, from the command line, pipeline and workflow names alike.
    const all = await runTreadle(
      ['runs', 'cancel', `at://did:web:${s.knot.host}/sh.tangled.pipeline/${newTid}`],
      env,
    );
    expect(all.code, all.stderr).toBe(0);
    await statusOf(newTid, 'x.yml', 'cancelled');
    await statusOf(newTid, 'y.yml', 'cancelled');
    await runTreadle(['runs', 'cancel', tid], env);
    await statusOf(tid, 'y.yml', 'cancelled');
    expect((await runTreadle(['runs', 'cancel', 'nonexistent'], env)).code).toBe(1);
    expect((await runTreadle(['runs', 'bogus'], env)).code).toBe(2);
  }, 60_000);
});
