/**
 * SIGKILL of the daemon at the points where input waits inside treadle: knot events sent while it
 * is down, a push held for its knot's own pipeline, a pull record just taken from Jetstream, and
 * Jetstream records sent while it is down. After a restart, each runs or applies exactly once:
 * counted, not just "the latest status is right".
 */
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppviewEvents } from '../fakes/appview.ts';
import { FakeKnot } from '../fakes/knot.ts';
import {
  addCollaborator,
  OWNER,
  onboard,
  pipelineRecord,
  refUpdate,
  repoRecord,
  rkey,
  type Stack,
  startStack,
  stubWorkflow,
} from './support/stack.ts';
import { waitFor } from './support/wait.ts';

const REPO = 'did:plc:crashrepo';
const ALICE = 'did:plc:crashalice';
const CI = stubWorkflow('success', '0s', ['build']);
const ON_PULL = stubWorkflow('success', '0s', ['check'], '  - event: ["pull_request"]\n    branch: ["main"]');

let s: Stack;
let app: AppviewEvents;
let base: string;

beforeAll(async () => {
  s = await startStack({ TREADLE_PUSH_HOLD: '3s' });
  app = new AppviewEvents({ cursor: 1n });
  await app.connect(s.daemon.base);
  s.pds.addIdentity(ALICE);
  s.knot.git.create(REPO);
  base = s.knot.git.commit(REPO, { 'README.md': 'hello\n' });
  await onboard(s, 'crash', OWNER, { repoDid: REPO });
  await addCollaborator(s, ALICE, REPO);
}, 30_000);

afterAll(async () => {
  await app?.close();
  await s?.close();
});

/** SIGKILL, then a fresh daemon on the same database, followed by the appview again. */
async function crashAndRestart(meanwhile: () => void = () => {}): Promise<void> {
  await app.close();
  await s.daemon.kill();
  meanwhile();
  await s.restart();
  await app.connect(s.daemon.base);
}

/** Pipeline records announced on /events, by rkey, whose record matches. */
function announced(match: (record: Record<string, unknown>) => boolean): string[] {
  return [...app.pipelines.entries()]
    .filter(([, p]) => match(p as Record<string, unknown>))
    .map(([rkey]) => rkey);
}

function pushSha(record: Record<string, unknown>): string | undefined {
  return (record.triggerMetadata as { push?: { newSha: string } }).push?.newSha;
}

/** Every status frame of a pipeline, one per (workflow, status) unless something ran twice. */
function statusCounts(pipeline: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const r of app.statuses.values())
    if (r.pipelineRkey === pipeline)
      counts.set(`${r.workflow} ${r.status}`, (counts.get(`${r.workflow} ${r.status}`) ?? 0) + 1);
  return counts;
}

const TERMINAL = new Set(['success', 'failed', 'timeout', 'cancelled']);

/**
 * The pipeline ran once: each workflow has at most one of each status and exactly one terminal
 * one (a workflow the kill caught running ends failed, "treadle restarted", which is fine).
 */
async function ranOnce(pipeline: string, workflows: string[]): Promise<void> {
  await waitFor(
    () => workflows.every((w) => TERMINAL.has(app.latest(pipeline)[w]?.status ?? '')),
    `pipeline ${pipeline} to finish`,
    20_000,
  );
  const counts = statusCounts(pipeline);
  for (const [key, n] of counts) expect(n, key).toBe(1);
  for (const w of workflows)
    expect(
      [...counts.keys()].filter((k) => k.startsWith(`${w} `) && TERMINAL.has(k.split(' ')[1]!)),
      w,
    ).toHaveLength(1);
}

describe('a SIGKILL where input waits inside treadle', () => {
  it('runs each pipeline a knot sent while the daemon was down exactly once', async () => {
    const sent: string[] = [];
    await crashAndRestart(() => {
      for (let i = 0; i < 5; i++) {
        const key = rkey();
        sent.push(key);
        s.knot.emit(
          'sh.tangled.pipeline',
          key,
          pipelineRecord(s.knot.host, [{ name: 'down.yml' }], { name: 'crash' }),
        );
      }
    });
    for (const key of sent) await ranOnce(key, ['down.yml']);
    expect(sent.filter((key) => app.pipelines.has(key))).toHaveLength(5);
  }, 60_000);

  it('runs a push held for its knot’s own pipeline exactly once when the daemon dies during the hold', async () => {
    // The knot is new (it sends ref updates with repo DIDs) and may send its pipeline too: the
    // push waits up to TREADLE_PUSH_HOLD for it. Kill the daemon inside that wait.
    const sha = s.knot.git.commit(REPO, { '.tangled/workflows/ci.yml': CI, 'a.txt': rkey() });
    s.knot.emit('sh.tangled.git.refUpdate', rkey(), refUpdate(REPO, sha));
    await waitFor(
      () =>
        s.daemon.logs().includes('knot sends new-shape ref updates') ||
        announced((r) => pushSha(r) === sha).length > 0,
      'the ref update taken in',
    );
    await crashAndRestart();
    const runs = await waitFor(
      () => {
        const found = announced((r) => pushSha(r) === sha);
        return found.length > 0 ? found : undefined;
      },
      'the held push to run',
      20_000,
    );
    await ranOnce(runs![0]!, ['ci.yml']);
    // Another push after it: once it has run, nothing for the first can still be on its way.
    const next = s.knot.git.commit(REPO, { '.tangled/workflows/ci.yml': CI, 'b.txt': rkey() });
    s.knot.emit('sh.tangled.git.refUpdate', rkey(), refUpdate(REPO, next));
    const [nextRun] = (await waitFor(
      () => {
        const found = announced((r) => pushSha(r) === next);
        return found.length > 0 ? found : undefined;
      },
      'the next push',
      20_000,
    )) as string[];
    await ranOnce(nextRun!, ['ci.yml']);
    expect(announced((r) => pushSha(r) === sha)).toHaveLength(1);
  }, 60_000);

  it('runs a pull request taken from Jetstream exactly once when the daemon dies right after', async () => {
    const tip = s.knot.git.commit(
      REPO,
      { '.tangled/workflows/pr.yml': ON_PULL, 'feature.txt': rkey() },
      { branch: 'crash-feature', from: base, message: 'a change' },
    );
    const blob = s.pds.putBlob(ALICE, gzipSync(s.knot.git.formatPatch(REPO, base, tip)));
    s.jetstream.commit(ALICE, 'sh.tangled.repo.pull', rkey(), 'create', {
      $type: 'sh.tangled.repo.pull',
      title: 'a change',
      target: { repo: REPO, branch: 'main' },
      source: { branch: 'crash-feature' },
      rounds: [{ patchBlob: blob, createdAt: new Date().toISOString() }],
      createdAt: new Date().toISOString(),
    });
    const pulls = () =>
      announced(
        (r) => (r.triggerMetadata as { pullRequest?: { sourceSha: string } }).pullRequest?.sourceSha === tip,
      );
    await waitFor(
      () => /"collection":"sh\.tangled\.repo\.pull"/.test(s.daemon.logs()) || pulls().length > 0,
      'the pull record seen',
    );
    await crashAndRestart();
    const [run] = (await waitFor(
      () => (pulls().length > 0 ? pulls() : undefined),
      'the pull pipeline',
      20_000,
    )) as string[];
    await ranOnce(run!, ['pr.yml']);
    expect(pulls()).toHaveLength(1);
  }, 60_000);

  it('applies Jetstream records sent while the daemon was down, each once, from its cursor', async () => {
    const knots = await Promise.all([FakeKnot.start(), FakeKnot.start(), FakeKnot.start()]);
    try {
      await crashAndRestart(() => {
        for (const [i, k] of knots.entries())
          s.jetstream.commit(OWNER, 'sh.tangled.repo', rkey(), 'create', repoRecord(`away-${i}`, k.host));
      });
      await waitFor(
        () => knots.every((k) => k.connected > 0),
        'the knots of the repos created while down',
        20_000,
      );
      const applied = s.daemon
        .logs()
        .split('\n')
        .filter((l) => l.includes('"msg":"record applied"') && l.includes('"collection":"sh.tangled.repo"'));
      // The rewind replays a few seconds of events, but a repo created twice is applied once.
      expect(knots.map((k) => k.connections.length)).toEqual([1, 1, 1]);
      expect(applied.length).toBeGreaterThanOrEqual(3);
    } finally {
      await Promise.all(knots.map((k) => k.close()));
    }
  }, 60_000);
});
