/**
 * The landing handlers on the real queue and real git (spec §7.3, §7.8, behaviours 52–55):
 * one result per request on the matching result topic, the ledger that makes a redelivered
 * merge republish without pushing, dead letters answered FAILED, and a check and a merge on one
 * checkout never running git at the same time while different targets do.
 */
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { openDatabase } from '../src/db/database.ts';
import { LandingStore } from '../src/db/landing-store.ts';
import { QueueStore } from '../src/db/queue-store.ts';
import { UnitOfWork } from '../src/db/unit-of-work.ts';
import { inheritedGitEnv } from '../src/git/git.ts';
import { formatCommitUri } from '../src/landing/commit-uri.ts';
import type { LandingTarget } from '../src/landing/config.ts';
import {
  CHECK_TOPIC,
  type LandRequest,
  type LandResult,
  MERGE_TOPIC,
  pk,
  type ValidStep,
} from '../src/landing/contract.ts';
import { LandingHandler } from '../src/landing/handler.ts';
import { Lander } from '../src/landing/lander.ts';
import { createLogger } from '../src/logger.ts';
import { Queue, type QueueMessage } from '../src/queue/index.ts';
import { GitRemote } from './support/git-remote.ts';
import { tempDir } from './support/temp.ts';
import { waitFor } from './support/wait.ts';

let cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups = [];
});

/** A lander that records when each of its operations ran. */
class Timed extends Lander {
  readonly spans: Array<{ id: string; start: number; end: number }> = [];
  override async land(id: string, steps: ValidStep[], push: boolean) {
    const start = performance.now();
    try {
      return await super.land(id, steps, push);
    } finally {
      this.spans.push({ id, start, end: performance.now() });
    }
  }
}

function setup(names: string[], options: { unreachable?: boolean } = {}) {
  const t = tempDir('treadle-landq-');
  cleanups.push(t.cleanup);
  const db = openDatabase(join(t.dir, 'treadle.db'));
  cleanups.push(() => {
    db.close();
  });
  const uow = new UnitOfWork(db);
  let logged = '';
  const log = createLogger(
    'info',
    new Writable({
      write(chunk, _e, cb) {
        logged += chunk.toString();
        cb();
      },
    }),
  );
  const queue = new Queue(new QueueStore(db), log, { initialBackoffMs: 20, maxAttempts: 3 }, uow);
  const remotes = new Map<string, GitRemote>();
  const targets: LandingTarget[] = names.map((name) => {
    const remote = new GitRemote(join(t.dir, name));
    remotes.set(name, remote);
    return {
      name,
      repo: `did:plc:${name}`,
      remoteUrl: options.unreachable ? join(t.dir, 'missing.git') : remote.bare,
      remote: 'origin',
      targetBranch: 'main',
      checkoutPath: join(t.dir, `checkout-${name}`),
      defaultStrategy: 'REBASE',
      maxPushAttempts: 10,
      checkStaleness: true,
      allowUnrelatedHistories: false,
      promoteMode: 'ff-only',
      committer: { name: 'treadle', email: 'treadle@spindle.test' },
      gitCommandTimeoutMs: 60_000,
    };
  });
  const landers = new Map(targets.map((tg) => [tg.name, new Timed(tg, inheritedGitEnv(), log)]));
  const store = new LandingStore(db);
  const handler = new LandingHandler({ targets, landers, store, uow, queue, log });
  const results: Array<QueueMessage<LandResult>> = [];
  for (const topic of [CHECK_TOPIC, MERGE_TOPIC]) {
    queue.consume(topic, `land-${topic}`, (m) => handler.handle(m));
    queue.consume(`${topic}_dlq`, `land-${topic}-dlq`, (m) => handler.deadLettered(m));
    queue.consume<LandResult>(`${topic}.result`, 'test', (m) => {
      results.push(m);
    });
  }
  queue.start();
  cleanups.push(() => queue.stop(5_000));
  const request = (target: string, id: string, sha: string, branch: string): LandRequest => ({
    id,
    target,
    steps: [
      {
        stepId: 's1',
        change: {
          uris: [
            formatCommitUri({
              host: 'knot.test',
              repoPath: `did:plc:${target}`,
              ref: `refs/heads/${branch}`,
              sha,
            }),
          ],
        },
        strategy: 'REBASE',
      },
    ],
  });
  const send = (topic: string, req: LandRequest) =>
    queue.publish(topic, pk(`did:plc:${req.target}`, 'main'), req.id, req);
  return { queue, handler, store, remotes, landers, results, request, send, logs: () => logged };
}

describe('landing handlers on the queue', () => {
  it('52–53: one result per request echoing id, target and partition; a redelivered merge republishes its ledgered result and pushes nothing', async () => {
    const t = setup(['a']);
    const remote = t.remotes.get('a')!;
    const [sha] = remote.branch('c', [{ 'c.txt': 'c' }]);
    const req = t.request('a', 'req-1', sha!, 'c');
    t.send(MERGE_TOPIC, req);
    t.send(CHECK_TOPIC, { ...t.request('a', 'chk-1', sha!, 'c') });
    await waitFor(() => t.results.length === 2, 'both results');
    const merged = t.results.find((r) => r.topic === 'land.merge.result')!;
    expect(merged).toMatchObject({ id: 'req-1', partitionKey: pk('did:plc:a', 'main') });
    expect(merged.payload).toMatchObject({ id: 'req-1', target: 'a', outcome: 'SUCCEEDED' });
    expect(t.results.find((r) => r.topic === 'land.check.result')!.payload).toMatchObject({
      id: 'chk-1',
      outcome: 'SUCCEEDED',
    });
    const pushes = remote.pushes().length;

    // Redelivery of the same merge: the ledger answers, git pushes nothing.
    const spansBefore = t.landers.get('a')!.spans.length;
    await t.handler.handle({ ...merged, topic: MERGE_TOPIC, payload: req } as QueueMessage<unknown>);
    expect(remote.pushes()).toHaveLength(pushes);
    expect(t.landers.get('a')!.spans).toHaveLength(spansBefore);
    expect(JSON.parse(t.store.ledgered('req-1')!)).toEqual(merged.payload);
    expect(t.results.filter((r) => r.id === 'req-1')).toHaveLength(1);
  }, 30_000);

  it('52: an invalid or conflicting request is answered FAILED with the reason and acked', async () => {
    const t = setup(['a']);
    t.send(MERGE_TOPIC, { id: 'bad-1', target: 'nowhere', steps: [] });
    const remote = t.remotes.get('a')!;
    const [c] = remote.branch('c', [{ 'README.md': 'theirs\n' }]);
    remote.advanceMain({ 'README.md': 'ours\n' });
    t.send(MERGE_TOPIC, t.request('a', 'conflict-1', c!, 'c'));
    await waitFor(() => t.results.length === 2, 'both answers');
    expect(t.results.find((r) => r.id === 'bad-1')!.payload).toEqual({
      id: 'bad-1',
      target: 'nowhere',
      outcome: 'FAILED',
      reason: 'unknown landing target "nowhere"',
      steps: [],
    });
    expect(t.results.find((r) => r.id === 'conflict-1')!.payload.reason).toMatch(
      /^conflict applying .*: README\.md$/,
    );
  }, 30_000);

  it('54: a request that keeps failing is answered FAILED "dead-lettered: …" as <id>/dlq; an undecodable one gets no answer', async () => {
    const t = setup(['a'], { unreachable: true });
    t.send(MERGE_TOPIC, t.request('a', 'down-1', '1'.repeat(40), 'main'));
    t.queue.publish(MERGE_TOPIC, 'x', 'junk', 'not a request');
    await waitFor(() => t.results.length === 1, 'the dead-letter answer', 20_000);
    const [answer] = t.results;
    expect(answer).toMatchObject({ id: 'down-1/dlq', partitionKey: pk('did:plc:a', 'main') });
    expect(answer!.payload.outcome).toBe('FAILED');
    expect(answer!.payload.reason).toMatch(/^dead-lettered: fetching a's remote failed: /);
    await waitFor(() => t.logs().includes('undecodable landing request dropped'), 'the junk logged');
    expect(t.results.map((r) => r.id)).toEqual(['down-1/dlq']);
  }, 30_000);

  it('55: a check and a merge on one target never run at once; different targets do', async () => {
    const t = setup(['a', 'b']);
    for (const remote of t.remotes.values()) remote.hook('pre-receive', '#!/bin/sh\nsleep 1\nexit 0\n');
    for (const name of ['a', 'b']) {
      const remote = t.remotes.get(name)!;
      const [m] = remote.branch('m', [{ 'm.txt': name }]);
      const [c] = remote.branch('k', [{ 'k.txt': name }]);
      t.send(MERGE_TOPIC, t.request(name, `merge-${name}`, m!, 'm'));
      t.send(CHECK_TOPIC, t.request(name, `check-${name}`, c!, 'k'));
    }
    await waitFor(() => t.results.length === 4, 'four results', 30_000);
    expect(t.results.every((r) => r.payload.outcome === 'SUCCEEDED')).toBe(true);
    const overlap = (x: { start: number; end: number }, y: { start: number; end: number }) =>
      x.start < y.end && y.start < x.end;
    for (const name of ['a', 'b']) {
      const [x, y] = t.landers.get(name)!.spans;
      expect(overlap(x!, y!), name).toBe(false);
    }
    const merges = ['a', 'b'].map((n) => t.landers.get(n)!.spans.find((s) => s.id.startsWith('merge'))!);
    expect(overlap(merges[0]!, merges[1]!)).toBe(true);
  }, 40_000);
});
