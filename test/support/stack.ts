/**
 * The real daemon (`bin/treadle.js serve`) against faithful fakes: a Jetstream, a PLC + PDS and
 * a knot, with helpers to onboard a repo and build pipeline records as a stock knot does.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { FakeJetstream } from '../../fakes/jetstream.ts';
import { FakeKnot } from '../../fakes/knot.ts';
import { FakePds } from '../../fakes/pds.ts';
import { type Spawned, spawnNode, TREADLE } from './process.ts';
import { tempDir } from './temp.ts';
import { waitFor } from './wait.ts';

export const HOSTNAME = 'spindle.test';
export const OWNER = 'did:plc:owner';

export interface Stack {
  jetstream: FakeJetstream;
  pds: FakePds;
  knot: FakeKnot;
  dir: string;
  db: string;
  env: Record<string, string>;
  daemon: Daemon;
  /** Starts the daemon again on the same database (after `daemon.kill()` or `daemon.stop()`). */
  restart(extraEnv?: Record<string, string>): Promise<Daemon>;
  close(): Promise<void>;
}

export interface Daemon {
  p: Spawned;
  base: string;
  port: number;
  logs(): string;
  kill(): Promise<void>;
  stop(): Promise<number | string>;
}

export async function startDaemon(env: Record<string, string>): Promise<Daemon> {
  const p = spawnNode(TREADLE, ['serve'], env);
  const line = await waitFor(
    () =>
      p
        .stdout()
        .split('\n')
        .find((l) => l.includes('"msg":"listening"')) ?? (p.child.exitCode !== null ? 'exit' : ''),
    'the listening log line',
  );
  if (line === 'exit') throw new Error(`treadle exited early:\n${p.stderr()}\n${p.stdout()}`);
  const port = JSON.parse(line).port as number;
  return {
    p,
    port,
    base: `http://127.0.0.1:${port}`,
    logs: () => p.stdout(),
    async kill() {
      p.child.kill('SIGKILL');
      await p.exited;
    },
    async stop() {
      p.child.kill('SIGTERM');
      return p.exited;
    },
  };
}

export async function startStack(
  extraEnv: Record<string, string> = {},
  seed: (pds: FakePds, knot: FakeKnot) => void = () => {},
): Promise<Stack> {
  const t = tempDir();
  const [jetstream, pds, knot] = await Promise.all([
    FakeJetstream.start(),
    FakePds.start(),
    FakeKnot.start(),
  ]);
  pds.addIdentity(OWNER);
  jetstream.pds = pds;
  seed(pds, knot);
  const db = join(t.dir, 'treadle.db');
  const env = {
    TREADLE_HOSTNAME: HOSTNAME,
    TREADLE_OWNER: OWNER,
    TREADLE_LISTEN: '127.0.0.1:0',
    TREADLE_DB: db,
    TREADLE_JETSTREAM_URL: jetstream.url,
    TREADLE_PLC_URL: pds.url,
    TREADLE_DEV: '1',
    TREADLE_ENGINES: 'nixery=stub',
    TREADLE_POLL_INTERVAL: '100ms',
    TREADLE_SHUTDOWN_TIMEOUT: '3s',
    TREADLE_QUEUE_INITIAL_BACKOFF: '100ms',
    TREADLE_LOG_LEVEL: 'debug',
    ...extraEnv,
  };
  const stack: Stack = {
    jetstream,
    pds,
    knot,
    dir: t.dir,
    db,
    env,
    daemon: await startDaemon(env),
    async restart(more = {}) {
      stack.daemon = await startDaemon({ ...env, ...more });
      return stack.daemon;
    },
    async close() {
      stack.daemon.p.child.kill('SIGKILL');
      await stack.daemon.p.exited;
      await Promise.all([jetstream.close(), pds.close(), knot.close()]);
      t.cleanup();
    },
  };
  return stack;
}

let rkeys = 0;
/** A fresh record key of TID shape (13 base32-sortable characters). */
export function rkey(): string {
  const n = (BigInt(Date.now()) * 1000n + BigInt(rkeys++ % 1000)) << 10n;
  const chars = '234567abcdefghijklmnopqrstuvwxyz';
  let s = '';
  let v = n;
  for (let i = 0; i < 13; i++) {
    s = chars[Number(v & 31n)] + s;
    v >>= 5n;
  }
  return s;
}

/** A repo record; `spindle: null` leaves the field out. */
export function repoRecord(
  name: string,
  knot: string,
  spindle: string | null = HOSTNAME,
  repoDid?: string,
): Record<string, unknown> {
  return {
    $type: 'sh.tangled.repo',
    name,
    knot,
    ...(spindle === null ? {} : { spindle }),
    ...(repoDid ? { repoDid } : {}),
    createdAt: new Date().toISOString(),
  };
}

/** Puts a repo record on Jetstream (authored by `did`) and waits until the knot has a connection. */
export async function onboard(
  stack: Stack,
  name = 'hello',
  did = OWNER,
  options: { knot?: FakeKnot; repoDid?: string } = {},
): Promise<string> {
  const key = rkey();
  const knot = options.knot ?? stack.knot;
  stack.jetstream.commit(
    did,
    'sh.tangled.repo',
    key,
    'create',
    repoRecord(name, knot.host, HOSTNAME, options.repoDid),
  );
  await waitFor(() => knot.connected > 0, 'the knot connection');
  return key;
}

/** A new-shape `sh.tangled.git.refUpdate` (knot v1.14+): `repo` is the repo DID. */
export function refUpdate(
  repoDid: string,
  newSha: string,
  options: { ref?: string; changedFiles?: string[]; pushOptions?: string[]; oldSha?: string } = {},
): Record<string, unknown> {
  return {
    $type: 'sh.tangled.git.refUpdate',
    ref: options.ref ?? 'refs/heads/main',
    repo: repoDid,
    ownerDid: OWNER,
    committerDid: OWNER,
    oldSha: options.oldSha ?? '0'.repeat(40),
    newSha,
    changedFiles: options.changedFiles ?? [],
    pushOptions: options.pushOptions ?? [],
    meta: { isDefaultRef: true, commitCount: {} },
  };
}

export interface WorkflowSpec {
  name: string;
  engine?: string;
  raw?: string;
}

/**
 * A `sh.tangled.pipeline` record exactly as a stock knot sends it (push trigger). Each call is a
 * new push (a fresh random sha) unless `push.newSha` is given.
 */
export function pipelineRecord(
  knot: string,
  workflows: WorkflowSpec[],
  repo: { did?: string; name?: string } = {},
  push: { newSha?: string; ref?: string } = {},
): Record<string, unknown> {
  return {
    $type: '',
    triggerMetadata: {
      kind: 'push',
      push: {
        newSha: push.newSha ?? randomBytes(20).toString('hex'),
        oldSha: '0000000000000000000000000000000000000000',
        ref: push.ref ?? 'refs/heads/main',
      },
      repo: { defaultBranch: '', did: repo.did ?? OWNER, knot, repo: repo.name ?? 'hello' },
    },
    workflows: workflows.map((w) => ({
      clone: { depth: 0, skip: false, submodules: false },
      engine: w.engine ?? 'nixery',
      name: w.name,
      raw: w.raw ?? stubWorkflow('success', '0s'),
    })),
  };
}

export function stubWorkflow(
  outcome: string,
  duration: string,
  steps = ['test'],
  when = '  - event: ["push"]\n    branch: ["main"]',
): string {
  return [
    'when:',
    when,
    'engine: nixery',
    'steps:',
    ...steps.flatMap((s) => [`  - name: ${s}`, `    command: echo ${s}`]),
    'treadle:',
    '  stub:',
    `    outcome: ${outcome}`,
    `    duration: ${duration}`,
    '',
  ].join('\n');
}

export interface StubPush {
  workflow?: string;
  ref?: string;
  steps?: string[];
  duration?: string;
  /** The whole workflow file instead of a stub workflow with these steps. */
  raw?: string;
}

/**
 * The knot sends a push of `sha` with one stub workflow that ends as `outcome` (any branch);
 * returns the pipeline's record key.
 */
export function pushStub(stack: Stack, sha: string, outcome: string, o: StubPush = {}): string {
  const key = rkey();
  const raw = o.raw ?? stubWorkflow(outcome, o.duration ?? '0s', o.steps, '  - event: ["push"]');
  stack.knot.emit(
    'sh.tangled.pipeline',
    key,
    pipelineRecord(
      stack.knot.host,
      [{ name: o.workflow ?? 'ci.yml', raw }],
      {},
      {
        newSha: sha,
        ref: o.ref ?? 'refs/heads/main',
      },
    ),
  );
  return key;
}

/** The owner records `subject` as a collaborator on `repo` (a repo DID); waits until it is taken in. */
export async function addCollaborator(stack: Stack, subject: string, repo: string): Promise<void> {
  const before = stack.daemon.logs().split('"collection":"sh.tangled.repo.collaborator"').length;
  stack.jetstream.commit(OWNER, 'sh.tangled.repo.collaborator', rkey(), 'create', {
    $type: 'sh.tangled.repo.collaborator',
    subject,
    repo,
    createdAt: new Date().toISOString(),
  });
  await waitFor(
    () => stack.daemon.logs().split('"collection":"sh.tangled.repo.collaborator"').length > before,
    'the collaborator record',
  );
}
