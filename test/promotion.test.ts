/**
 * Promote on green through the real daemon (spec §6.4d, §6.5, behaviours 25–26): a knot's push
 * pipelines whose stub statuses make commits green or red, the recorder's bookmark, the
 * PROMOTE request on `land.merge`, landing pushing `verified/main` of a local bare repository,
 * and the promotion tracker recording the result and emitting hooks.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GitRemote } from './support/git-remote.ts';
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
const dir = tempDir('treadle-promote-');
let s: Stack;
let remote: GitRemote;

beforeAll(async () => {
  remote = new GitRemote(join(dir.dir, 'git'));
  const config = join(dir.dir, 'treadle.yaml');
  writeFileSync(
    config,
    [
      'landing:',
      '  targets:',
      '    - name: verified-main',
      `      repo: ${REPO}`,
      `      remoteUrl: ${remote.bare}`,
      '      targetBranch: verified/main',
      '      defaultStrategy: PROMOTE',
      '      checkStaleness: false',
      'greenness:',
      '  queues:',
      '    - ref: main',
      '      promote: { target: verified-main }',
      '',
    ].join('\n'),
  );
  s = await startStack({ TREADLE_CONFIG: config });
  await onboard(s);
}, 30_000);

afterAll(async () => {
  await s?.close();
  dir.cleanup();
});

function push(sha: string, outcome: string): void {
  s.knot.emit(
    'sh.tangled.pipeline',
    rkey(),
    pipelineRecord(s.knot.host, [{ name: 'ci.yml', raw: stubWorkflow(outcome, '0s') }], {}, { newSha: sha }),
  );
}

function query<T>(sql: string, ...params: unknown[]): T[] {
  const db = new Database(s.db, { readonly: true });
  try {
    return db.prepare(sql).all(...params) as T[];
  } finally {
    db.close();
  }
}

async function queue(): Promise<Record<string, unknown>> {
  const res = await fetch(`${s.daemon.base}/greenness/v1/queues`);
  const { queues } = (await res.json()) as { queues: Array<Record<string, unknown>> };
  return queues.find((q) => q.ref === 'refs/heads/main')!;
}

const hooks = (type: string) =>
  query<{ payload: string }>(`SELECT payload FROM queue_messages WHERE topic = 'hook' ORDER BY "offset"`)
    .map((r) => JSON.parse(r.payload) as { type: string; payload: Record<string, unknown> })
    .filter((e) => e.type === type)
    .map((e) => e.payload);

describe('promote on green', () => {
  it('25–26: each new bookmark holder is promoted once; a red commit is not; a failed promotion is reported and changes nothing else', async () => {
    const c1 = remote.advanceMain({ 'one.txt': '1' });
    push(c1, 'success');
    await waitFor(
      () => remote.tip('verified/main') === c1,
      'verified/main at the first green commit',
      20_000,
    );
    await waitFor(async () => (await queue()).promoted !== undefined, 'the promotion recorded');
    expect(await queue()).toMatchObject({
      lastGreen: { commit: c1, seq: 1 },
      promoted: { commit: c1, seq: 1 },
    });

    const c2 = remote.advanceMain({ 'two.txt': '2' });
    push(c2, 'failure');
    const c3 = remote.advanceMain({ 'three.txt': '3' });
    push(c3, 'success');
    await waitFor(
      async () => ((await queue()).promoted as { seq: number } | undefined)?.seq === 3,
      'seq 3 promoted',
      20_000,
    );
    expect(remote.tip('verified/main')).toBe(c3);
    const requests = query<{ id: string; payload: string }>(
      `SELECT id, payload FROM queue_messages WHERE topic = 'land.merge' ORDER BY "offset"`,
    );
    const key = `${REPO}@refs/heads/main`;
    expect(requests.map((r) => r.id)).toEqual([`promote/${key}/1`, `promote/${key}/3`]);
    expect(JSON.parse(requests[1]!.payload)).toEqual({
      id: `promote/${key}/3`,
      target: 'verified-main',
      steps: [
        {
          stepId: `v/${key}/3`,
          change: { uris: [`git://${s.knot.host}/${REPO}/refs%2Fheads%2Fmain/${c3}`] },
          strategy: 'PROMOTE',
        },
      ],
    });
    await waitFor(() => hooks('greenness.promoted').length === 2, 'two promoted hooks');
    expect(hooks('greenness.promoted').map((p) => p.seq)).toEqual([1, 3]);

    // A rewritten main: the next green commit is not a fast-forward of verified/main (ff-only).
    const [rewritten] = remote.branch('main', [{ 'four.txt': '4' }], c1);
    remote.git(['push', '-q', '-f', 'origin', 'main']);
    push(rewritten!, 'success');
    await waitFor(() => hooks('greenness.promotion_failed').length === 1, 'the failed promotion', 20_000);
    expect(hooks('greenness.promotion_failed')[0]).toMatchObject({
      seq: 4,
      commit: rewritten,
      target: 'verified-main',
    });
    expect(hooks('greenness.promotion_failed')[0]!.reason).toMatch(/not a fast-forward/);
    expect(await queue()).toMatchObject({
      lastGreen: { commit: rewritten, seq: 4 },
      promoted: { commit: c3, seq: 3 },
    });
    expect(remote.tip('verified/main')).toBe(c3);
  }, 60_000);
});
