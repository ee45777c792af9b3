/**
 * The secret XRPCs on the real daemon (spindle protocol §10.3–10.5, §17 items 21–23): tokens
 * signed with real secp256k1 keys published by the fake PLC; values sealed at rest (the
 * database file is grepped), never in the daemon's log, and still readable after a restart.
 */
import { readFileSync, statSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readLogs } from '../fakes/appview.ts';
import { spawnNode, TREADLE } from './support/process.ts';
import { OWNER, onboard, pipelineRecord, rkey, type Stack, startStack } from './support/stack.ts';
import { waitFor } from './support/wait.ts';
import { Callers } from './support/xrpc-auth.ts';

const BOB = 'did:plc:bob22222222222222222222'; // collaborator, recorded by the owner
const CAROL = 'did:plc:carol222222222222222222'; // "collaborator" recorded by Mallory
const MALLORY = 'did:plc:mallory2222222222222222';
const STRANGER = 'did:plc:stranger22222222222222';
const VALUE = 'hunter2-very-secret-value';

let s: Stack;
let repoUri: string;

const callers = new Callers();
const token = (did: string, lxm: string, over: { aud?: string } = {}) => callers.token(did, lxm, over);
const call = (method: string, as: string | null, body?: object, query = '') =>
  callers.call(s.daemon.base, `sh.tangled.repo.${method}`, as, body, query);

/** Runs one stub workflow of the repo with one step, `command`, and reads its log. */
async function runStep(name: string, command: string) {
  const raw = [
    'engine: nixery',
    'steps:',
    `  - name: ${name}`,
    `    command: "${command}"`,
    'treadle:',
    '  stub:',
    '    outcome: success',
    '    duration: 200ms',
    '',
  ].join('\n');
  const key = rkey();
  s.knot.emit(
    'sh.tangled.pipeline',
    key,
    pipelineRecord(s.knot.host, [{ name: `${name}.yml`, raw }], { name: 'vault' }),
  );
  return readLogs(
    s.daemon.base,
    { knot: s.knot.host, rkey: key, workflow: `${name}.yml` },
    { timeoutMs: 20_000 },
  );
}

beforeAll(async () => {
  s = await startStack();
  await callers.register(s.pds, [OWNER, BOB, CAROL, MALLORY, STRANGER]);
  const key = await onboard(s, 'vault');
  repoUri = `at://${OWNER}/sh.tangled.repo/${key}`;
  for (const [author, subject] of [
    [MALLORY, CAROL],
    [OWNER, BOB],
  ] as const)
    s.jetstream.commit(author, 'sh.tangled.repo.collaborator', rkey(), 'create', {
      $type: 'sh.tangled.repo.collaborator',
      subject,
      repo: repoUri,
      createdAt: new Date().toISOString(),
    });
  // Jetstream is ordered: once the owner's record (sent last) is applied, Mallory's was handled.
  await waitFor(
    () => s.daemon.logs().includes(`"did":"${OWNER}","collection":"sh.tangled.repo.collaborator"`),
    'both collaborator records',
    20_000,
  );
}, 30_000);

afterAll(() => s?.close());

describe('secret XRPCs', () => {
  it('lets the owner add, list, refuse a duplicate, remove and refuse a second remove (§17.23)', async () => {
    const added = await call('addSecret', OWNER, { repo: repoUri, key: 'DEPLOY_TOKEN', value: VALUE });
    expect(added).toMatchObject({ status: 200, text: '', type: null });
    const list = await call('listSecrets', OWNER, undefined, `?repo=${encodeURIComponent(repoUri)}`);
    expect(list.status).toBe(200);
    expect(list.json.secrets).toEqual([
      {
        createdAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/),
        createdBy: OWNER,
        key: 'DEPLOY_TOKEN',
        repo: repoUri,
      },
    ]);
    expect(list.text).not.toContain(VALUE);
    expect(await call('addSecret', OWNER, { repo: repoUri, key: 'DEPLOY_TOKEN', value: 'x' })).toMatchObject({
      status: 500,
      json: { error: 'Generic', message: 'key already present' },
    });
    expect((await call('addSecret', OWNER, { repo: repoUri, key: 'TEMP', value: 'v' })).status).toBe(200);
    expect((await call('removeSecret', OWNER, { repo: repoUri, key: 'TEMP' })).status).toBe(200);
    expect(await call('removeSecret', OWNER, { repo: repoUri, key: 'TEMP' })).toMatchObject({
      status: 500,
      json: { error: 'Generic', message: 'key not found' },
    });
  });

  it('checks keys, lengths and the repo URI with 400s', async () => {
    expect(await call('addSecret', OWNER, { repo: repoUri, key: '1-bad', value: 'v' })).toMatchObject({
      status: 400,
      json: { error: 'Generic', message: 'key is not a valid identifier' },
    });
    expect(
      (await call('addSecret', OWNER, { repo: repoUri, key: 'K'.repeat(51), value: 'v' })).json.message,
    ).toMatch(/longer than 50/);
    expect((await call('addSecret', OWNER, { repo: repoUri, key: 'EMPTY', value: '' })).json.message).toMatch(
      /1 to 200/,
    );
    expect(
      (await call('addSecret', OWNER, { repo: repoUri, key: 'BIG', value: 'é'.repeat(101) })).json.message,
    ).toMatch(/got 202/);
    expect(await call('addSecret', OWNER, { repo: 'not-a-uri', key: 'K', value: 'v' })).toMatchObject({
      status: 400,
      json: { error: 'InvalidRepo' },
    });
    expect((await call('listSecrets', OWNER)).json).toEqual({ error: 'Generic', message: 'empty params' });
  });

  it('refuses bad tokens with 403 Auth and strangers or unauthorised collaborators with 401 (§17.21–22)', async () => {
    const body = JSON.stringify({ repo: repoUri, key: 'NOPE', value: 'v' });
    const post = (authorization?: string) =>
      fetch(`${s.daemon.base}/xrpc/sh.tangled.repo.addSecret`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(authorization ? { authorization } : {}) },
        body,
      });
    for (const auth of [
      undefined,
      'Bearer garbage',
      `Bearer ${await token(OWNER, 'sh.tangled.repo.addSecret', { aud: 'did:web:elsewhere.test' })}`,
      `Bearer ${await token(OWNER, 'sh.tangled.repo.listSecrets')}`,
    ]) {
      const res = await post(auth);
      expect(res.status).toBe(403);
      expect(((await res.json()) as { error: string }).error).toBe('Auth');
    }
    for (const who of [STRANGER, CAROL]) {
      expect(await call('addSecret', who, { repo: repoUri, key: 'NOPE', value: 'v' })).toMatchObject({
        status: 401,
        json: {
          error: 'AccessControl',
          message: `DID does not have sufficent access permissions for this operation: ${who}`,
        },
      });
    }
    expect(
      (await call('addSecret', BOB, { repo: repoUri, key: 'FROM_BOB', value: 'b0b-value' })).status,
    ).toBe(200);
    const names = (await call('listSecrets', OWNER, undefined, `?repo=${encodeURIComponent(repoUri)}`)).json
      .secrets;
    expect(names.map((x: { key: string }) => x.key)).not.toContain('NOPE');
  });

  it('hands the secrets to the run and masks their values and base64 forms in its logs', async () => {
    const b64 = Buffer.from(VALUE).toString('base64');
    const logs = await runStep('deploy', `deploy --token $DEPLOY_TOKEN --again \${DEPLOY_TOKEN} ${b64}`);
    const body = logs.steps[0]!.body.join('\n');
    expect(body).toContain('[stub] with env: deploy --token *** --again *** ***');
    expect(body).not.toContain(VALUE);
    expect(body).not.toContain(b64);
  }, 30_000);

  it('keeps values sealed at rest and out of the log, with a 0600 key file, across a restart', async () => {
    await s.daemon.stop();
    const file = readFileSync(s.db);
    expect(file.includes(Buffer.from(VALUE))).toBe(false);
    expect(file.includes(Buffer.from('DEPLOY_TOKEN'))).toBe(true); // names are not secret
    expect(s.daemon.logs()).not.toContain(VALUE);
    expect(statSync(`${s.db}.secrets-key`).mode & 0o777).toBe(0o600);
    expect(s.daemon.logs()).toContain('created a secrets key file');
    await s.restart();
    const list = await call('listSecrets', OWNER, undefined, `?repo=${encodeURIComponent(repoUri)}`);
    expect(list.json.secrets.map((x: { key: string }) => x.key)).toEqual(['DEPLOY_TOKEN', 'FROM_BOB']);
  }, 30_000);

  it('rotates the key with the daemon stopped (refused while it runs), and the secrets still reach runs', async () => {
    const env = { ...s.env };
    const running = spawnNode(TREADLE, ['secrets', 'rotate-key'], env);
    expect(await running.exited).toBe(75);
    await s.daemon.stop();
    const before = readFileSync(`${s.db}.secrets-key`, 'utf8');
    const rotate = spawnNode(TREADLE, ['secrets', 'rotate-key'], env);
    expect(await rotate.exited).toBe(0);
    expect(rotate.stdout()).toContain('resealed 2 secret(s)');
    const after = readFileSync(`${s.db}.secrets-key`, 'utf8');
    expect(after).not.toBe(before);
    expect(statSync(`${s.db}.secrets-key`).mode & 0o777).toBe(0o600);
    await s.restart();
    await waitFor(() => s.knot.connected > 0, 'the knot connection after the restart');
    const logs = await runStep('use', 'use $DEPLOY_TOKEN');
    expect(logs.steps[0]!.body).toContain('[stub] with env: use ***');
  }, 40_000);
});
