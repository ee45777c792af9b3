import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from '../../test/support/temp.ts';
import { type Db, openDatabase } from '../db/database.ts';
import { GreennessStore } from '../db/greenness-store.ts';
import { QueueStore } from '../db/queue-store.ts';
import { UnitOfWork } from '../db/unit-of-work.ts';
import type { LandingTarget } from '../landing/config.ts';
import { createLogger } from '../logger.ts';
import type { WireStatus } from '../pipelines/pipeline.ts';
import { Queue } from '../queue/index.ts';
import { GreennessApi } from './api.ts';
import { parseGreenness } from './config.ts';
import { type HookEvent, queueKey, Recorder, type RecordMessage } from './recorder.ts';

const REPO = 'did:plc:repo';
const REF = 'refs/heads/main';
const KEY = queueKey(REPO, REF);
let db: Db;
let cleanup = () => {};
afterEach(() => {
  db?.close();
  cleanup();
});

function setup(yaml?: unknown, landing: LandingTarget[] = []) {
  const t = tempDir();
  cleanup = t.cleanup;
  db = openDatabase(join(t.dir, 'treadle.db'));
  const uow = new UnitOfWork(db);
  const queue = new Queue(new QueueStore(db), createLogger('silent'), {}, uow);
  const store = new GreennessStore(db);
  const parsed = parseGreenness(yaml, {});
  if ('problems' in parsed) throw new Error(parsed.problems.join());
  let now = 1_000_000;
  const recorder = new Recorder({
    store,
    uow,
    queue,
    config: parsed.config,
    landing,
    log: createLogger('silent'),
    clock: () => now,
  });
  const messages = (topic: string) =>
    (
      db
        .prepare('SELECT id, payload FROM queue_messages WHERE topic = ? ORDER BY "offset"')
        .all(topic) as Array<{ id: string; payload: string }>
    ).map((r) => ({ id: r.id, ...JSON.parse(r.payload) }));
  let recorded = 0;
  return {
    store,
    recorder,
    setNow: (ms: number) => (now = ms),
    messages,
    pipeline(id: string, commit: string, workflows: string[], trigger = 'push') {
      recorder.onPipeline({
        pipeline: id,
        knot: 'knot.test',
        repo: REPO,
        trigger,
        ref: REF,
        commit,
        workflows,
        observedAt: now,
      });
    },
    status(pipeline: string, workflow: string, status: WireStatus) {
      recorder.onStatus({
        pipeline,
        knot: 'knot.test',
        repo: REPO,
        trigger: 'push',
        ref: REF,
        commit: 'x',
        workflow,
        status,
        createdAt: new Date(now).toISOString(),
        rkey: 'r',
      });
    },
    /** Runs the record messages published so far (as the greenness-record consumer would). */
    drain() {
      const all = messages('greenness.record') as Array<RecordMessage & { id: string }>;
      for (const m of all.slice(recorded)) recorder.record(m);
      recorded = all.length;
    },
    hooks: () => messages('hook') as Array<HookEvent & { id: string }>,
  };
}

const sha = (n: number) => n.toString(16).padStart(40, 'a');

function finish(t: ReturnType<typeof setup>, pipeline: string, outcomes: Record<string, WireStatus>) {
  for (const [w, s] of Object.entries(outcomes)) t.status(pipeline, w, s);
  t.drain();
}

describe('the greenness recorder (spec §6, behaviours)', () => {
  it('1–3: one validation per (queue, commit); a second pipeline for it changes nothing; replays leave storage unchanged', () => {
    const t = setup();
    t.pipeline('p1', sha(1), ['ci']);
    t.pipeline('p1', sha(1), ['ci']); // replay
    t.pipeline('p2', sha(1), ['ci']); // a second pipeline while pending
    expect(t.store.validationByCommit(KEY, sha(1))).toMatchObject({
      seq: 1,
      attempt: 1,
      state: 'pending',
      pipeline: 'p1',
    });
    finish(t, 'p2', { ci: 'failed' }); // its statuses never count
    expect(t.store.validationByCommit(KEY, sha(1))!.state).toBe('pending');
    finish(t, 'p1', { ci: 'success' });
    expect(t.store.fact(KEY, sha(1))).toMatchObject({ degree: 0, validation: `v/${KEY}/1` });
    expect(t.store.queue(KEY)!.nextSeq).toBe(2);
  });

  it('4: pull requests, manual runs and unconfigured refs create no validation', () => {
    const t = setup({ queues: [{ ref: 'main' }] });
    t.pipeline('pr', sha(2), ['ci'], 'pull_request');
    t.pipeline('m', sha(3), ['ci'], 'manual');
    t.recorder.onPipeline({
      pipeline: 'dev',
      knot: 'k',
      repo: REPO,
      trigger: 'push',
      ref: 'refs/heads/dev',
      commit: sha(4),
      workflows: ['ci'],
      observedAt: 1,
    });
    expect(t.store.queues()).toEqual([]);
  });

  it('5–6: a status after the terminal one is ignored; a status before its pipeline counts once it is observed', () => {
    const t = setup();
    t.status('p1', 'ci', 'success'); // before the pipeline
    t.pipeline('p1', sha(1), ['ci']);
    t.drain();
    expect(t.store.validationByCommit(KEY, sha(1))!.state).toBe('succeeded');
    t.status('p1', 'ci', 'failed');
    expect(t.store.runStatus('p1', 'ci')).toBe('success');
  });

  it('14–15: a fact is never changed: one already there is kept as it is', () => {
    const t = setup();
    t.pipeline('p1', sha(1), ['ci']);
    t.store.insertFact({ queue: KEY, commit: sha(1), project: '', degree: 1, createdAt: 0 });
    t.status('p1', 'ci', 'success');
    t.drain();
    expect(t.store.fact(KEY, sha(1))).toMatchObject({ degree: 1, createdAt: 0, validation: `v/${KEY}/1` });
    expect(t.store.fact(KEY, sha(1), 'workflow:ci')).toMatchObject({ degree: 0 });
    // The verdict follows the stored fact, not the statuses: not green, so no bookmark.
    expect(t.store.queue(KEY)!.lastGreenSeq).toBeNull();
  });

  it('16–17: a validation still pending at its deadline expires with an event; a new pipeline for the commit is attempt 2', () => {
    const t = setup({ queues: [{ ref: 'main', pipelineDeadline: '1h' }] });
    t.pipeline('p1', sha(1), ['ci', 'slow']);
    t.status('p1', 'ci', 'success');
    const deadline = t.messages('greenness.deadline')[0];
    const holds: number[] = [];
    t.recorder.deadline(deadline, { hold: (ms) => holds.push(ms) });
    expect(holds).toEqual([3_600_000]);
    t.setNow(1_000_000 + 3_600_000);
    t.recorder.deadline(deadline, { hold: (ms) => holds.push(ms) });
    t.drain();
    expect(t.store.validationByCommit(KEY, sha(1))!.state).toBe('expired');
    expect(t.store.fact(KEY, sha(1))).toBeUndefined();
    expect(t.hooks().map((h) => h.type)).toContain('greenness.validation_expired');
    // Attempt 2 with another pipeline; attempt 1's late statuses change nothing.
    t.pipeline('p2', sha(1), ['ci']);
    expect(t.store.validationByCommit(KEY, sha(1))).toMatchObject({
      attempt: 2,
      state: 'pending',
      pipeline: 'p2',
    });
    finish(t, 'p1', { slow: 'failed' });
    expect(t.store.validationByCommit(KEY, sha(1))!.state).toBe('pending');
    finish(t, 'p2', { ci: 'success' });
    expect(t.store.validationByCommit(KEY, sha(1))).toMatchObject({ attempt: 2, state: 'succeeded' });
  });

  it('18: after a verdict, later pipelines for the commit are stored and change nothing', () => {
    const t = setup();
    t.pipeline('p1', sha(1), ['ci']);
    finish(t, 'p1', { ci: 'failed' });
    t.pipeline('p2', sha(1), ['ci']);
    finish(t, 'p2', { ci: 'success' });
    expect(t.store.validationByCommit(KEY, sha(1))).toMatchObject({ state: 'failed', pipeline: 'p1' });
    expect(t.store.pipeline('p2')).toBeDefined();
  });

  it('20–23: the bookmark only moves up; a lower seq recorded late moves neither it nor the tip', () => {
    const t = setup();
    for (let n = 1; n <= 3; n++) t.pipeline(`p${n}`, sha(n), ['ci']);
    finish(t, 'p3', { ci: 'success' }); // seq 3 first
    finish(t, 'p1', { ci: 'success' }); // then seq 1
    finish(t, 'p2', { ci: 'failed' }); // and seq 2
    const q = t.store.queue(KEY)!;
    expect([q.lastGreenSeq, q.tipSeq, q.tipGreen]).toEqual([3, 3, 1]);
    expect(
      t
        .hooks()
        .filter((h) => h.type.startsWith('greenness.turned_'))
        .map((h) => h.payload.seq),
    ).toEqual([3]);
    expect(
      t
        .hooks()
        .filter((h) => h.type === 'greenness.last_green_advanced')
        .map((h) => h.payload.seq),
    ).toEqual([3]);
  });

  it('25: the new bookmark holder publishes one PROMOTE request; a replay publishes the same id, kept once; a lower green seq none', () => {
    const target = {
      name: 'verified',
      repo: REPO,
      remoteUrl: '/srv/r.git',
      remote: 'origin',
      targetBranch: 'verified/main',
      checkoutPath: '/srv/land/verified',
      defaultStrategy: 'PROMOTE',
      maxPushAttempts: 10,
      checkStaleness: false,
      allowUnrelatedHistories: false,
      promoteMode: 'ff-only',
      committer: { name: 't', email: 't@x' },
      gitCommandTimeoutMs: 1000,
    } satisfies LandingTarget;
    const t = setup({ queues: [{ ref: 'main', promote: { target: 'verified' } }] }, [target]);
    t.pipeline('p1', sha(1), ['ci']);
    t.pipeline('p2', sha(2), ['ci']);
    finish(t, 'p2', { ci: 'success' });
    finish(t, 'p1', { ci: 'success' }); // green, but below the bookmark: no promotion
    for (const m of t.messages('greenness.record')) t.recorder.record(m); // replays
    const requests = t.messages('land.merge');
    expect(requests.map((r) => r.id)).toEqual([`promote/${KEY}/2`]);
    expect(requests[0]).toMatchObject({
      target: 'verified',
      steps: [
        {
          stepId: `v/${KEY}/2`,
          strategy: 'PROMOTE',
          change: { uris: [`git://knot.test/${REPO}/refs%2Fheads%2Fmain/${sha(2)}`] },
        },
      ],
    });
  });

  it('19, 24: a replayed record writes nothing new and repeats the same event ids', () => {
    const t = setup();
    t.pipeline('p1', sha(1), ['a', 'b']);
    finish(t, 'p1', { a: 'success', b: 'success' });
    const before = t.hooks().map((h) => h.id);
    expect(before.filter((id) => id.includes('fact_recorded'))).toHaveLength(3); // a, b and the whole repo
    for (const m of t.messages('greenness.record')) t.recorder.record(m);
    expect(t.hooks().map((h) => h.id)).toEqual(before);
    expect(t.store.facts(KEY, sha(1))).toHaveLength(3);
  });

  it('a repo that gets a DID keeps its history: both ids find one queue', () => {
    const t = setup();
    const named = 'did:plc:owner/hello';
    const observe = (pipeline: string, commit: string, repo: string, repoName?: string) =>
      t.recorder.onPipeline({
        pipeline,
        knot: 'knot.test',
        repo,
        ...(repoName ? { repoName } : {}),
        trigger: 'push',
        ref: REF,
        commit,
        workflows: ['ci'],
        observedAt: 0,
      });
    observe('n1', sha(1), named);
    finish(t, 'n1', { ci: 'success' });
    observe('d2', sha(2), REPO, named); // the knot assigned the DID
    finish(t, 'd2', { ci: 'success' });
    const api = new GreennessApi(t.store);
    const byName = api.queue(named, 'main');
    const byDid = api.queue(REPO, 'refs/heads/main');
    expect(byDid).toEqual(byName);
    expect(byDid).toMatchObject({ repo: REPO, nextSeq: 3, lastGreenSeq: 2, lastGreenCommit: sha(2) });
    expect(t.store.queues()).toHaveLength(1);
    expect(t.store.history(byDid.key, 99, 10).map((v) => v.commit)).toEqual([sha(2), sha(1)]);
  });
});
