/**
 * The land API through the real daemon, landing on a local bare repository: who may ask (the
 * admin token, the repo owner's or a collaborator's service-auth token; nobody else), bad
 * input refused with the reason and nothing queued, a merge and a check answered, and the CLI
 * beside the daemon (`treadle land …`).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ALICE, GitRemote } from './support/git-remote.ts';
import { runTreadle } from './support/process.ts';
import { OWNER, onboard, type Stack, startStack } from './support/stack.ts';
import { tempDir } from './support/temp.ts';
import { waitFor } from './support/wait.ts';
import { Callers } from './support/xrpc-auth.ts';

const REPO = `${OWNER}/hello`;
const TOKEN = `${'a'.repeat(24)}admin-token-for-tests`;
const STRANGER = 'did:plc:stranger';
const dir = tempDir('treadle-landapi-');
const callers = new Callers();
let s: Stack;
let remote: GitRemote;
let configFile = '';

beforeAll(async () => {
  remote = new GitRemote(join(dir.dir, 'git'));
  const config = join(dir.dir, 'treadle.yaml');
  configFile = config;
  writeFileSync(
    config,
    [
      'landing:',
      '  targets:',
      '    - name: main',
      `      repo: ${REPO}`,
      `      remoteUrl: ${remote.bare}`,
      '      targetBranch: main',
      '      committer: { name: treadle, email: treadle@spindle.test }',
      '',
    ].join('\n'),
  );
  s = await startStack({ TREADLE_CONFIG: config, TREADLE_ADMIN_TOKEN: TOKEN });
  await callers.register(s.pds, [OWNER, STRANGER]);
  await onboard(s);
}, 30_000);

afterAll(async () => {
  await s?.close();
  dir.cleanup();
});

async function post(
  body: unknown,
  auth?: string,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (auth) headers.authorization = auth;
  const res = await fetch(`${s.daemon.base}/land/v1/requests`, {
    method: 'POST',
    headers,
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

async function get(path: string, auth = `Bearer ${TOKEN}`) {
  const res = await fetch(`${s.daemon.base}${path}`, { headers: { authorization: auth } });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

const queued = () => {
  const db = new Database(s.db, { readonly: true });
  try {
    return (
      db
        .prepare(`SELECT count(*) AS n FROM queue_messages WHERE topic IN ('land.check', 'land.merge')`)
        .get() as {
        n: number;
      }
    ).n;
  } finally {
    db.close();
  }
};

async function result(id: string): Promise<Record<string, unknown>> {
  return waitFor(
    async () => {
      const r = await get(`/land/v1/requests/${encodeURIComponent(id)}`);
      return r.json.outcome ? r.json : undefined;
    },
    `the result of ${id}`,
    20_000,
  ) as Promise<Record<string, unknown>>;
}

describe('the land API', () => {
  it('refuses callers without rights and bad input with the reason, queueing nothing', async () => {
    const [sha] = remote.branch('c0', [{ 'c0.txt': 'x' }]);
    const body = { target: 'main', strategy: 'REBASE', commits: [sha] };
    expect((await post(body)).status).toBe(401);
    expect((await post(body, 'Bearer not-the-token')).status).toBe(401);
    const stranger = await post(body, `Bearer ${await callers.token(STRANGER, 'treadle.land.request')}`);
    expect(stranger).toMatchObject({ status: 403 });
    const admin = `Bearer ${TOKEN}`;
    const bad: Array<[unknown, RegExp]> = [
      ['{not json', /invalid JSON body/],
      [{ target: 'nowhere', commits: [sha] }, /unknown landing target "nowhere"/],
      [{ target: 'main', commits: ['1'.repeat(40)] }, /commit 1{40} is not in did:plc:owner\/hello/],
      [
        { target: 'main', commits: [`git://knot/did:plc:other/refs%2Fheads%2Fmain/${'2'.repeat(40)}`] },
        /not a commit of/,
      ],
      [{ target: 'main', commits: [sha], colour: 'red' }, /unknown field "colour"/],
      [{ target: 'main', strategy: 'YOLO', commits: [sha] }, /strategy/],
    ];
    for (const [b, why] of bad) {
      const r = await post(b, admin);
      expect(r.status, String(why)).toBe(400);
      expect(r.json.message).toMatch(why);
    }
    expect(queued()).toBe(0);
  });

  it('lands a change for the admin and checks one for the repo owner, answering each', async () => {
    const [sha] = remote.branch('c1', [{ 'c1.txt': 'one' }]);
    const merged = await post({ target: 'main', strategy: 'REBASE', commits: [sha] }, `Bearer ${TOKEN}`);
    expect(merged.status).toBe(202);
    const r = await result(merged.json.id as string);
    expect(r).toMatchObject({ outcome: 'SUCCEEDED', kind: 'merge', target: 'main' });
    const out = (r.steps as Array<{ outputs: Array<{ id: string }> }>)[0]!.outputs[0]!.id;
    expect(remote.tip('main')).toBe(out);
    expect(remote.format(out, '%an|%cn')).toBe(`${ALICE.name}|treadle`);

    const [clash] = remote.branch('c2', [{ 'c1.txt': 'two' }], 'origin/main~1');
    const owner = `Bearer ${await callers.token(OWNER, 'treadle.land.request')}`;
    const check = await post({ target: 'main', strategy: 'REBASE', commits: [clash], dryRun: true }, owner);
    expect(check.status).toBe(202);
    const answer = await result(check.json.id as string);
    expect(answer).toMatchObject({ outcome: 'FAILED', kind: 'check' });
    expect(answer.reason).toMatch(/^conflict applying [0-9a-f]{40}: c1\.txt$/);
    expect(remote.tip('main')).toBe(out);

    const targets = await get('/land/v1/targets');
    expect(targets.json.targets).toEqual([
      expect.objectContaining({ name: 'main', repo: REPO, targetBranch: 'main', latest: expect.any(Array) }),
    ]);
    expect((targets.json.targets as Array<{ latest: unknown[] }>)[0]!.latest.length).toBe(2);
    expect((await get('/land/v1/requests/nope')).status).toBe(404);
  }, 40_000);

  it('the CLI queues a merge beside the daemon and waits for its outcome', async () => {
    const [sha] = remote.branch('c3', [{ 'c3.txt': 'three' }]);
    const env = { TREADLE_CONFIG: configFile };
    const r = await runTreadle(
      ['land', 'merge', '--target', 'main', '--strategy', 'SQUASH_REBASE', '--wait', sha!, '--db', s.db],
      env,
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/SUCCEEDED/);
    const tip = remote.tip('main')!;
    expect(r.stdout).toContain(tip);
    expect(remote.format(tip, '%s')).toBe(`squash: change (${REPO}@refs/heads/main)`);
    const usage = await runTreadle(['land', 'merge', '--db', s.db], env);
    expect(usage.code).toBe(2);
    const bad = await runTreadle(['land', 'check', '--target', 'nowhere', sha!, '--db', s.db], env);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/unknown landing target "nowhere"/);
  }, 40_000);
});
