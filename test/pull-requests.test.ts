/**
 * Pull request pipelines from network records (2026 spec §3.2, §4.4, §5) against the real
 * daemon: `sh.tangled.repo.pull` create/update and `sh.tangled.repo.pull.status` from Jetstream,
 * the source sha read from a real `git format-patch` series in a gzip blob on the author's PDS,
 * workflows read over real git HTTP at that sha, and every refusal the issue names.
 */
import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppviewEvents } from '../fakes/appview.ts';
import type { BlobJson } from '../fakes/pds.ts';
import {
  addCollaborator,
  OWNER,
  onboard,
  rkey,
  type Stack,
  startStack,
  stubWorkflow,
} from './support/stack.ts';
import { waitFor } from './support/wait.ts';

const REPO = 'did:plc:pullrepo';
const ALICE = 'did:plc:alice';
const MALLORY = 'did:plc:mallory';
const PULL = 'sh.tangled.repo.pull';
const STATUS = 'sh.tangled.repo.pull.status';
const TID = /^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$/;
const ON_PULL = stubWorkflow('success', '0s', ['check'], '  - event: ["pull_request"]\n    branch: ["main"]');
const ON_CLOSE = stubWorkflow(
  'success',
  '0s',
  ['cleanup'],
  '  - event: ["pull_request"]\n    branch: ["main"]\n    types: ["closed"]',
);

let s: Stack;
let app: AppviewEvents;
let base: string;

beforeAll(async () => {
  s = await startStack();
  app = new AppviewEvents();
  await app.connect(s.daemon.base);
  for (const did of [ALICE, MALLORY]) s.pds.addIdentity(did);
  s.knot.git.create(REPO);
  base = s.knot.git.commit(REPO, { 'README.md': 'hello\n' });
  await onboard(s, 'pulls', OWNER, { repoDid: REPO });
  await addCollaborator(s, ALICE, REPO);
}, 30_000);

afterAll(async () => {
  if (process.env.DUMP_LOGS) (await import('node:fs')).writeFileSync(process.env.DUMP_LOGS, s.daemon.logs());
  await app?.close();
  await s?.close();
});

interface Announced {
  triggerMetadata: {
    kind: string;
    pullRequest?: { sourceBranch: string; targetBranch: string; sourceSha: string; action: string };
    repo: { knot: string; did: string; repoDid?: string; defaultBranch: string };
  };
  workflows: Array<{ name: string }>;
}

function pullPipelines(): Array<[string, Announced]> {
  return ([...app.pipelines.entries()] as Array<[string, Announced]>).filter(
    ([, p]) => p.triggerMetadata.kind === 'pull_request',
  );
}

function pipelinesAt(sha: string): Array<[string, Announced]> {
  return pullPipelines().filter(([, p]) => p.triggerMetadata.pullRequest?.sourceSha === sha);
}

async function finished(sha: string, action: string): Promise<[string, Announced]> {
  return (await waitFor(
    () => {
      const found = pipelinesAt(sha).find(([, p]) => p.triggerMetadata.pullRequest?.action === action);
      if (!found) return undefined;
      const latest = Object.values(app.latest(found[0]));
      return latest.length === found[1].workflows.length && latest.every((r) => r.status === 'success')
        ? found
        : undefined;
    },
    `a finished ${action} pipeline at ${sha.slice(0, 8)}`,
    20_000,
  )) as [string, Announced];
}

/** Commits on a new branch from main, as `git push origin feature` would leave them. */
function branch(name: string, commits: number): string[] {
  const shas: string[] = [];
  for (let i = 0; i < commits; i++) {
    shas.push(
      s.knot.git.commit(
        REPO,
        {
          '.tangled/workflows/pr.yml': ON_PULL,
          '.tangled/workflows/closed.yml': ON_CLOSE,
          [`${name}-${i}.txt`]: `${i}\n`,
        },
        { branch: name, from: base, message: `${name}: change ${i}` },
      ),
    );
  }
  return shas;
}

/** The gzip format-patch series from main to `tip`, uploaded to `author`'s PDS. */
function patchBlob(author: string, tip: string): BlobJson {
  return s.pds.putBlob(author, gzipSync(s.knot.git.formatPatch(REPO, base, tip)));
}

function pull(
  blobs: BlobJson[],
  options: { source?: Record<string, unknown> | null; target?: Record<string, unknown> } = {},
): Record<string, unknown> {
  return {
    $type: PULL,
    title: 'a change',
    target: options.target ?? { repo: REPO, branch: 'main' },
    ...(options.source === null ? {} : { source: options.source ?? { branch: 'feature' } }),
    rounds: blobs.map((b) => ({ patchBlob: b, createdAt: new Date().toISOString() })),
    createdAt: new Date().toISOString(),
  };
}

describe('pull request pipelines (2026 spec §3.2)', () => {
  it('runs an opened pull at the tip of its patch series, then each new round as synchronize, once each', async () => {
    const shas = branch('feature', 2);
    const pullKey = rkey();
    const first = pull([patchBlob(ALICE, shas[1]!)]);
    s.jetstream.commit(ALICE, PULL, pullKey, 'create', first);
    const [id, opened] = await finished(shas[1]!, 'opened');
    expect(id).toMatch(TID);
    expect(opened.triggerMetadata.pullRequest).toEqual({
      sourceBranch: 'feature',
      targetBranch: 'main',
      sourceSha: shas[1],
      action: 'opened',
    });
    expect(opened.triggerMetadata.repo).toMatchObject({ knot: s.knot.host, did: OWNER, repoDid: REPO });
    // `types:` defaults to opened/reopened/synchronize: the closed-only workflow does not run.
    expect(opened.workflows.map((w) => w.name)).toEqual(['pr.yml']);

    const next = s.knot.git.commit(REPO, { 'feature-2.txt': '2\n' }, { branch: 'feature' });
    const second = {
      ...first,
      rounds: [
        ...(first.rounds as unknown[]),
        { patchBlob: patchBlob(ALICE, next), createdAt: new Date().toISOString() },
      ],
    };
    s.jetstream.commit(ALICE, PULL, pullKey, 'update', second);
    await finished(next, 'synchronize');

    // Jetstream replays a few seconds on reconnect: the same records run nothing again.
    const connections = s.jetstream.connections.length;
    s.jetstream.dropConnections();
    await waitFor(
      () => s.jetstream.connected > 0 && s.jetstream.connections.length > connections,
      'the jetstream reconnection',
    );
    // A new pull after the reconnect, as a sentinel: once it has run, the replays were handled.
    const sentinelSha = branch('sentinel', 1)[0]!;
    s.jetstream.commit(
      ALICE,
      PULL,
      rkey(),
      'create',
      pull([patchBlob(ALICE, sentinelSha)], { source: { branch: 'sentinel' } }),
    );
    await finished(sentinelSha, 'opened');
    expect(pipelinesAt(shas[1]!)).toHaveLength(1);
    expect(pipelinesAt(next)).toHaveLength(1);

    const res = await fetch(
      `${s.daemon.base}/xrpc/sh.tangled.ci.queryPipelines?repo=${REPO}&kinds=pull_request&commits=${next}`,
    );
    const body = (await res.json()) as {
      pipelines: Array<{ trigger: Record<string, unknown> }>;
      total: number;
    };
    expect(body.total).toBe(1);
    expect(body.pipelines[0]!.trigger).toMatchObject({ sourceSha: next, action: 'synchronize' });
  }, 40_000);

  it('runs a status change (closed) read back from the author’s PDS, and only the workflows whose types match', async () => {
    const [tip] = branch('closing', 1);
    const pullKey = rkey();
    s.jetstream.commit(
      ALICE,
      PULL,
      pullKey,
      'create',
      pull([patchBlob(ALICE, tip!)], { source: { branch: 'closing' } }),
    );
    await finished(tip!, 'opened');
    const requests = s.pds.requests.length;
    s.jetstream.commit(ALICE, STATUS, rkey(), 'create', {
      $type: STATUS,
      pull: `at://${ALICE}/${PULL}/${pullKey}`,
      status: 'sh.tangled.repo.pull.status.closed',
    });
    const [, closed] = await finished(tip!, 'closed');
    expect(closed.workflows.map((w) => w.name)).toEqual(['closed.yml']);
    expect(s.pds.requests.slice(requests).some((r) => r.startsWith('/xrpc/com.atproto.repo.getRecord'))).toBe(
      true,
    );
  }, 30_000);

  it('runs nothing for a non-collaborator, a fork, a stranger’s status change, a blob that is not gzip, too large, or a gzip bomb', async () => {
    const before = pullPipelines().length;
    const [tip] = branch('bad', 1);
    const patch = gzipSync(s.knot.git.formatPatch(REPO, base, tip!));
    const patch0 = s.pds.putBlob(ALICE, patch);

    s.jetstream.commit(
      MALLORY,
      PULL,
      rkey(),
      'create',
      pull([s.pds.putBlob(MALLORY, patch)], { source: { branch: 'bad' } }),
    );
    s.jetstream.commit(
      ALICE,
      PULL,
      rkey(),
      'create',
      pull([s.pds.putBlob(ALICE, patch)], { source: { branch: 'bad', repo: 'did:plc:someonesfork' } }),
    );
    s.jetstream.commit(
      ALICE,
      PULL,
      rkey(),
      'create',
      pull([s.pds.putBlob(ALICE, Buffer.from(s.knot.git.formatPatch(REPO, base, tip!)))], {
        source: { branch: 'bad' },
      }),
    );
    s.jetstream.commit(
      ALICE,
      PULL,
      rkey(),
      'create',
      pull([s.pds.putBlob(ALICE, randomBytes(4 * 1024 * 1024 + 1))], { source: { branch: 'bad' } }),
    );
    s.jetstream.commit(
      ALICE,
      PULL,
      rkey(),
      'create',
      pull([s.pds.putBlob(ALICE, gzipSync(Buffer.alloc(33 * 1024 * 1024)))], { source: { branch: 'bad' } }),
    );
    // Malformed records: rounds not an array, a patch blob whose CID does not parse, a blob the
    // PDS does not have, and a status change naming something that is not a pull's AT-URI.
    s.jetstream.commit(ALICE, PULL, rkey(), 'create', { ...pull([patch0]), rounds: 'all of them' });
    s.jetstream.commit(
      ALICE,
      PULL,
      rkey(),
      'create',
      pull([{ ...patch0, ref: { $link: 'not-a-cid' } }], { source: { branch: 'bad' } }),
    );
    s.jetstream.commit(
      ALICE,
      PULL,
      rkey(),
      'create',
      pull([{ ...patch0, ref: { $link: 'bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku' } }], {
        source: { branch: 'bad' },
      }),
    );
    s.jetstream.commit(ALICE, STATUS, rkey(), 'create', {
      $type: STATUS,
      pull: 'https://example.com/not-an-at-uri',
      status: 'sh.tangled.repo.pull.status.closed',
    });
    // A pull for a repo not served here is dropped before it is queued, without a word.
    s.jetstream.commit(
      ALICE,
      PULL,
      rkey(),
      'create',
      pull([s.pds.putBlob(ALICE, patch)], { target: { repo: 'did:plc:elsewhere', branch: 'main' } }),
    );

    // Mallory closes Alice's (otherwise runnable) pull: refused; Alice's own open runs.
    const [good] = branch('good', 1);
    const goodKey = rkey();
    s.jetstream.commit(
      ALICE,
      PULL,
      goodKey,
      'create',
      pull([patchBlob(ALICE, good!)], { source: { branch: 'good' } }),
    );
    await finished(good!, 'opened');
    s.jetstream.commit(MALLORY, STATUS, rkey(), 'create', {
      $type: STATUS,
      pull: `at://${ALICE}/${PULL}/${goodKey}`,
      status: 'sh.tangled.repo.pull.status.closed',
    });

    const reasons = [
      'its author has no push rights on the target repo',
      'it comes from a fork',
      'the patch blob is not gzip',
      'over the 4194304-byte bound',
      'the patch blob inflates to more than 33554432 bytes',
      'whoever changed its status is neither its author nor has push rights',
      'rounds must be an array',
      'patchBlob should be a blob ref',
      'bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku of did:plc:alice not found at',
    ];
    // Each refusal is the handler's last word on its record: once all are logged, none can run.
    await waitFor(() => reasons.every((r) => s.daemon.logs().includes(r)), 'every refusal logged', 20_000);
    expect(pipelinesAt(tip!)).toEqual([]);
    expect(pullPipelines()).toHaveLength(before + 1);
    expect(s.daemon.logs()).not.toContain('did:plc:elsewhere');
  }, 40_000);

  it('runs a pull whose author’s PDS answers 503 at first, once it answers again', async () => {
    const [tip] = branch('flaky', 1);
    const blob = patchBlob(ALICE, tip!);
    s.pds.failNext(3);
    s.jetstream.commit(ALICE, PULL, rkey(), 'create', pull([blob], { source: { branch: 'flaky' } }));
    await finished(tip!, 'opened');
    expect(pipelinesAt(tip!)).toHaveLength(1);
    expect(s.daemon.logs()).toMatch(/HTTP 503/);
  }, 30_000);
});
