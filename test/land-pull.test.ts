/**
 * Landing a Tangled pull request through the daemon: the pull record on its author's PDS, its
 * commit the tip of the last round's `git format-patch` series (read as the pull intake reads
 * it), landed from its source branch onto the knot's repository; fork, patch-only and
 * not-a-pull requests refused with the reason, nothing queued; `--require-green` in the CLI.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gitIn } from './support/git-remote.ts';
import { runTreadle } from './support/process.ts';
import { OWNER, onboard, rkey, type Stack, startStack } from './support/stack.ts';
import { tempDir } from './support/temp.ts';
import { waitFor } from './support/wait.ts';

const REPO = 'did:plc:pullrepo';
const PULL = 'sh.tangled.repo.pull';
const TOKEN = 'p'.repeat(40);
const dir = tempDir('treadle-landpull-');
let s: Stack;
let config = '';
let base = '';

beforeAll(async () => {
  s = await startStack({ TREADLE_ADMIN_TOKEN: TOKEN });
  s.knot.git.create(REPO);
  s.knot.defaultBranches.set(REPO, 'main');
  base = s.knot.git.commit(REPO, { 'README.md': 'hello\n' }, { branch: 'main', message: 'initial' });
  config = join(dir.dir, 'treadle.yaml');
  writeFileSync(
    config,
    `landing:\n  targets:\n    - name: main\n      repo: ${REPO}\n      remoteUrl: ${s.knot.git.path(REPO)}\n      targetBranch: main\n`,
  );
  await s.daemon.stop();
  await s.restart({ TREADLE_CONFIG: config });
  await onboard(s, 'pulled', OWNER, { repoDid: REPO });
}, 30_000);

afterAll(async () => {
  await s?.close();
  dir.cleanup();
});

/** A pull by OWNER from `branch` with one round whose patch series ends at `tip`; returns its AT-URI. */
function pull(tip: string, extra: Record<string, unknown> = {}): string {
  const blob = s.pds.putBlob(OWNER, gzipSync(s.knot.git.formatPatch(REPO, base, tip)));
  const key = rkey();
  s.pds.putRecord(OWNER, PULL, key, {
    $type: PULL,
    title: 'a change',
    target: { repo: REPO, branch: 'main' },
    source: { branch: 'feature' },
    rounds: [{ patchBlob: blob, createdAt: new Date().toISOString() }],
    createdAt: new Date().toISOString(),
    ...extra,
  });
  return `at://${OWNER}/${PULL}/${key}`;
}

async function post(body: object) {
  const res = await fetch(`${s.daemon.base}/land/v1/requests`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

describe('landing a Tangled pull request', () => {
  it('lands a pull from its source branch, and refuses forks, patch-only pulls and other URIs with the reason', async () => {
    const tip = s.knot.git.commit(
      REPO,
      { 'feature.txt': 'x\n' },
      { branch: 'feature', from: base, message: 'feature' },
    );
    const uri = pull(tip);
    const accepted = await post({ target: 'main', pull: uri, strategy: 'MERGE' });
    expect(accepted.status).toBe(202);
    const result = await waitFor(async () => {
      const res = await fetch(
        `${s.daemon.base}/land/v1/requests/${encodeURIComponent(accepted.json.id as string)}`,
        {
          headers: { authorization: `Bearer ${TOKEN}` },
        },
      );
      const json = (await res.json()) as Record<string, unknown>;
      return json.outcome ? json : undefined;
    }, 'the pull landed');
    expect(result).toMatchObject({ outcome: 'SUCCEEDED' });
    const merged = (result!.steps as Array<{ outputs: Array<{ id: string }> }>)[0]!.outputs[0]!.id;
    const parents = gitIn(s.knot.git.path(REPO), ['log', '-1', '--format=%P', 'refs/heads/main']).trim();
    expect(parents.split(' ')).toEqual([base, tip]);
    expect(gitIn(s.knot.git.path(REPO), ['rev-parse', 'refs/heads/main']).trim()).toBe(merged);

    const refusals: Array<[object, RegExp]> = [
      [
        { target: 'main', pull: pull(tip, { source: { branch: 'feature', repo: 'did:plc:fork' } }) },
        /from a fork/,
      ],
      [{ target: 'main', pull: pull(tip, { source: undefined }) }, /patch-only pull/],
      [
        { target: 'main', pull: `at://${OWNER}/sh.tangled.repo/abc` },
        /not the AT-URI of a sh\.tangled\.repo\.pull/,
      ],
      [{ target: 'main', pull: `at://${OWNER}/${PULL}/nosuchpull` }, /does not exist/],
    ];
    for (const [body, why] of refusals) {
      const r = await post(body);
      expect(r.status, String(why)).toBe(400);
      expect(r.json.message).toMatch(why);
    }
  }, 40_000);

  it('the CLI refuses a pull that is not green with --require-green', async () => {
    const tip = s.knot.git.commit(REPO, { 'other.txt': 'y\n' }, { branch: 'feature', message: 'more' });
    const r = await runTreadle(
      ['land', 'pull', '--target', 'main', '--require-green', '--check', pull(tip), '--db', s.db],
      { TREADLE_CONFIG: config, TREADLE_OWNER: OWNER, TREADLE_PLC_URL: s.pds.url, TREADLE_DEV: '1' },
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/has no pull-request pipeline here/);
  }, 30_000);
});
