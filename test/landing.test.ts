/**
 * Landing on real git against local bare repositories (greenness-and-landing spec §7,
 * behaviours 36–51, 56, 57): a bare `remote.git`, an author clone pushing change branches, the
 * lander's own checkout, and contention from a pre-receive hook that moves main and rejects.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { ConflictError, InvalidRequestError, RetryableError } from '../src/errors.ts';
import { inheritedGitEnv } from '../src/git/git.ts';
import { formatCommitUri } from '../src/landing/commit-uri.ts';
import type { LandingTarget, Strategy } from '../src/landing/config.ts';
import { type LandRequest, validateRequest } from '../src/landing/contract.ts';
import { Lander } from '../src/landing/lander.ts';
import { createLogger } from '../src/logger.ts';
import { serveGitHttp } from './support/git-http.ts';
import { ALICE, GitRemote, gitIn } from './support/git-remote.ts';
import { tempDir } from './support/temp.ts';

const REPO = 'did:plc:landrepo';
const COMMITTER = { name: 'treadle', email: 'treadle@spindle.test' };
let cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups) c();
  cleanups = [];
});

function setup(overrides: Partial<LandingTarget> = {}, executable?: string) {
  const t = tempDir('treadle-land-');
  cleanups.push(t.cleanup);
  const remote = new GitRemote(join(t.dir, 'r'));
  const target: LandingTarget = {
    name: 'main',
    repo: REPO,
    remoteUrl: remote.bare,
    remote: 'origin',
    targetBranch: 'main',
    checkoutPath: join(t.dir, 'checkout'),
    defaultStrategy: 'REBASE',
    maxPushAttempts: 10,
    checkStaleness: true,
    allowUnrelatedHistories: false,
    promoteMode: 'ff-only',
    committer: COMMITTER,
    gitCommandTimeoutMs: 60_000,
    ...overrides,
  };
  let logged = '';
  const sink = new Writable({
    write(chunk, _enc, cb) {
      logged += chunk.toString();
      cb();
    },
  });
  const lander = new Lander(target, inheritedGitEnv(), createLogger('debug', sink), executable);
  const uri = (sha: string, branch: string) =>
    formatCommitUri({ host: 'knot.test', repoPath: REPO, ref: `refs/heads/${branch}`, sha });
  let n = 0;
  const request = (steps: Array<{ strategy: Strategy; uris: string[] }>): LandRequest => ({
    id: `req-${++n}`,
    target: target.name,
    steps: steps.map((s, i) => ({ stepId: `step${i + 1}`, change: { uris: s.uris }, strategy: s.strategy })),
  });
  /** Validates and runs a request: a merge, or a check with `check`. */
  const land = async (steps: Array<{ strategy: Strategy; uris: string[] }>, check = false) => {
    const req = request(steps);
    const valid = validateRequest(req, [target]);
    return lander.land(req.id, valid.steps, !check);
  };
  return { dir: t.dir, remote, target, lander, uri, land, request, logs: () => logged };
}

const outputs = (r: Awaited<ReturnType<ReturnType<typeof setup>['land']>>) =>
  r.result.steps.flatMap((s) => s.outputs.map((o) => o.id));

describe('REBASE (36–39)', () => {
  it('36: lands a one-commit change on an advanced target, keeping its author, as the committer', async () => {
    const t = setup();
    const [change] = t.remote.branch('c1', [{ 'a.txt': 'a\n' }]);
    t.remote.advanceMain({ 'b.txt': 'b\n' });
    const r = await t.land([{ strategy: 'REBASE', uris: [t.uri(change!, 'c1')] }]);
    expect(r.result.outcome).toBe('SUCCEEDED');
    expect(r.pushed).toBe(true);
    const out = outputs(r);
    expect(out).toHaveLength(1);
    expect(t.remote.tip('main')).toBe(out[0]);
    expect(t.remote.format(out[0]!, '%an <%ae>|%cn <%ce>')).toBe(
      `${ALICE.name} <${ALICE.email}>|${COMMITTER.name} <${COMMITTER.email}>`,
    );
    expect(t.remote.show('main', 'b.txt')).toBe('b');
  });

  it('37: three commits give three outputs in order; a two-URI stack gives their concatenation', async () => {
    const t = setup();
    const shas = t.remote.branch('c3', [{ '1.txt': '1' }, { '2.txt': '2' }, { '3.txt': '3' }]);
    const r = await t.land([{ strategy: 'REBASE', uris: [t.uri(shas[2]!, 'c3')] }]);
    expect(outputs(r).map((o) => t.remote.format(o, '%s'))).toEqual(
      shas.map((s) => t.remote.format(s, '%s')),
    );
    const [s1] = t.remote.branch('s1', [{ 's1.txt': 'x' }]);
    const [s2] = t.remote.branch('s2', [{ 's2.txt': 'y' }], 's1');
    const stack = await t.land([{ strategy: 'REBASE', uris: [t.uri(s1!, 's1'), t.uri(s2!, 's2')] }]);
    expect(outputs(stack).map((o) => t.remote.format(o, '%s'))).toEqual([
      t.remote.format(s1!, '%s'),
      t.remote.format(s2!, '%s'),
    ]);
    expect(t.remote.tip('main')).toBe(outputs(stack)[1]);
  });

  it('38–39: an already landed change succeeds with no outputs; a partly landed one replays only what is missing', async () => {
    const t = setup();
    const [c] = t.remote.branch('c', [{ 'a.txt': 'a' }]);
    await t.land([{ strategy: 'REBASE', uris: [t.uri(c!, 'c')] }]);
    const tip = t.remote.tip('main');
    const again = await t.land([{ strategy: 'REBASE', uris: [t.uri(c!, 'c')] }]);
    expect(again.result).toMatchObject({
      outcome: 'SUCCEEDED',
      steps: [{ outputs: [], alreadyPresent: true }],
    });
    expect(again.pushed).toBe(false);
    expect(t.remote.tip('main')).toBe(tip);

    const [p1, p2] = t.remote.branch('p', [{ 'p1.txt': '1' }, { 'p2.txt': '2' }]);
    gitIn(t.remote.bare, ['update-ref', 'refs/heads/p-first', p1!]);
    await t.land([{ strategy: 'REBASE', uris: [t.uri(p1!, 'p-first')] }]);
    const rest = await t.land([{ strategy: 'REBASE', uris: [t.uri(p2!, 'p')] }]);
    expect(outputs(rest).map((o) => t.remote.format(o, '%s'))).toEqual([t.remote.format(p2!, '%s')]);
  });
});

describe('conflicts and failures (40, 41)', () => {
  it('40: a content conflict is FAILED naming the paths, the remote unchanged, the next request lands cleanly', async () => {
    const t = setup();
    const [c] = t.remote.branch('c', [{ 'README.md': 'theirs\n' }]);
    const tip = t.remote.advanceMain({ 'README.md': 'ours\n' });
    const err = await t.land([{ strategy: 'REBASE', uris: [t.uri(c!, 'c')] }]).catch((e) => e);
    expect(err).toBeInstanceOf(ConflictError);
    expect(err.message).toMatch(/conflict applying [0-9a-f]{40}: README\.md/);
    expect(t.remote.tip('main')).toBe(tip);
    const [ok] = t.remote.branch('ok', [{ 'new.txt': 'fine' }]);
    const r = await t.land([{ strategy: 'REBASE', uris: [t.uri(ok!, 'ok')] }]);
    expect(r.result.outcome).toBe('SUCCEEDED');
    expect(gitIn(t.target.checkoutPath, ['status', '--porcelain'])).toBe('');
  });

  it('41: a git failure without unmerged paths is retryable, never FAILED', async () => {
    // A git whose cherry-pick fails as a full disk or a broken object store would: no unmerged paths.
    const wrap = tempDir('treadle-git-wrap-');
    cleanups.push(wrap.cleanup);
    const bin = join(wrap.dir, 'git');
    writeFileSync(
      bin,
      `#!/bin/sh
case " $* " in
  *" cherry-pick --abort "*|*" cherry-pick --skip "*) ;;
  *" cherry-pick "*) echo "fatal: unable to write new index file" >&2; exit 128 ;;
esac
exec git "$@"
`,
    );
    chmodSync(bin, 0o755);
    const t = setup({}, bin);
    const [c] = t.remote.branch('c', [{ 'c.txt': 'c' }]);
    const err = await t.land([{ strategy: 'REBASE', uris: [t.uri(c!, 'c')] }]).catch((e) => e);
    expect(err).toBeInstanceOf(RetryableError);
    expect(String(err.message)).toContain('unable to write new index file');
    expect(gitIn(t.target.checkoutPath, ['status', '--porcelain'])).toBe('');
  });

  it('a change that brings merge commits is refused at once for REBASE and SQUASH_REBASE, naming them; MERGE lands it', async () => {
    const t = setup();
    t.remote.branch('side', [{ 'side.txt': 's' }]);
    t.remote.branch('m', [{ 'm.txt': 'm' }]);
    t.remote.git(['merge', '-q', '--no-ff', '--no-edit', 'side']);
    t.remote.git(['push', '-q', '-f', 'origin', 'm']);
    const sha = t.remote.git(['rev-parse', 'HEAD']);
    const tip = t.remote.tip('main');
    for (const strategy of ['REBASE', 'SQUASH_REBASE'] as const) {
      const err = await t.land([{ strategy, uris: [t.uri(sha, 'm')] }]).catch((e) => e);
      expect(err).toBeInstanceOf(InvalidRequestError);
      expect(err.message).toContain(`1 merge commit (${sha.slice(0, 12)})`);
      expect(err.message).toContain('land it with MERGE');
      expect(t.remote.tip('main')).toBe(tip);
    }
    const r = await t.land([{ strategy: 'MERGE', uris: [t.uri(sha, 'm')] }]);
    expect(r.result.outcome).toBe('SUCCEEDED');
    expect(t.remote.show(t.remote.tip('main')!, 'side.txt')).toBe('s');
  });
});

describe('SQUASH_REBASE and MERGE (42–44)', () => {
  it('42: one commit per URI with the squash message and the pinned author; a net-unchanged change gives nothing', async () => {
    const t = setup();
    const shas = t.remote.branch('sq', [{ 'a.txt': '1' }, { 'b.txt': '2' }]);
    const r = await t.land([{ strategy: 'SQUASH_REBASE', uris: [t.uri(shas[1]!, 'sq')] }]);
    const [out] = outputs(r);
    expect(outputs(r)).toHaveLength(1);
    expect(t.remote.format(out!, '%s|%an|%cn|%P')).toBe(
      `squash: step1 (${REPO}@refs/heads/sq)|${ALICE.name}|${COMMITTER.name}|${t.remote.format(out!, '%P')}`,
    );
    expect(t.remote.show(out!, 'b.txt')).toBe('2');
    const nets = t.remote.branch('net', [{ 'tmp.txt': 'x' }, { 'tmp.txt': null }]);
    const none = await t.land([{ strategy: 'SQUASH_REBASE', uris: [t.uri(nets[1]!, 'net')] }]);
    expect(none.result.steps[0]).toMatchObject({ outputs: [], alreadyPresent: true });
    expect(t.remote.tip('main')).toBe(out);
  });

  it('43: MERGE makes a two-parent commit, second parent the pinned sha, authored by its author; a contained sha gives nothing', async () => {
    const t = setup();
    const [c] = t.remote.branch('feature', [{ 'f.txt': 'f' }]);
    const base = t.remote.advanceMain({ 'm.txt': 'm' });
    const r = await t.land([{ strategy: 'MERGE', uris: [t.uri(c!, 'feature')] }]);
    const [out] = outputs(r);
    expect(t.remote.format(out!, '%P')).toBe(`${base} ${c}`);
    expect(t.remote.format(out!, '%an|%cn')).toBe(`${ALICE.name}|${COMMITTER.name}`);
    const again = await t.land([{ strategy: 'MERGE', uris: [t.uri(c!, 'feature')] }]);
    expect(again.result.steps[0]).toMatchObject({ outputs: [], alreadyPresent: true });
  });

  it('44: an unrelated history is invalid for every strategy unless MERGE allows it', async () => {
    const t = setup();
    t.remote.git(['checkout', '-q', '--orphan', 'orphan']);
    t.remote.git(['rm', '-q', '-rf', '.']);
    const sha = t.remote.commit({ 'o.txt': 'o' });
    t.remote.git(['push', '-q', 'origin', 'orphan']);
    for (const strategy of ['MERGE', 'REBASE', 'SQUASH_REBASE'] as const) {
      const err = await t.land([{ strategy, uris: [t.uri(sha, 'orphan')] }]).catch((e) => e);
      expect(err, strategy).toBeInstanceOf(InvalidRequestError);
    }
    const allowed = setup({ allowUnrelatedHistories: true });
    allowed.remote.git(['checkout', '-q', '--orphan', 'orphan']);
    allowed.remote.git(['rm', '-q', '-rf', '.']);
    const o = allowed.remote.commit({ 'o.txt': 'o' });
    allowed.remote.git(['push', '-q', 'origin', 'orphan']);
    const r = await allowed.land([{ strategy: 'MERGE', uris: [allowed.uri(o, 'orphan')] }]);
    expect(allowed.remote.format(outputs(r)[0]!, '%P').split(' ')[1]).toBe(o);
  });
});

describe('PROMOTE (45, 46)', () => {
  it('45: fast-forwards (creating the branch), is a no-op when contained, refuses divergence in ff-only, resets with a lease otherwise', async () => {
    const t = setup({ targetBranch: 'verified/main', defaultStrategy: 'PROMOTE', checkStaleness: false });
    const first = t.remote.tip('main')!;
    const r1 = await t.land([{ strategy: 'PROMOTE', uris: [t.uri(first, 'main')] }]);
    expect(outputs(r1)).toEqual([first]);
    expect(t.remote.tip('verified/main')).toBe(first);
    const second = t.remote.advanceMain({ 'x.txt': 'x' });
    const r2 = await t.land([{ strategy: 'DEFAULT', uris: [t.uri(second, 'main')] }]);
    expect(outputs(r2)).toEqual([second]);
    expect(t.remote.tip('verified/main')).toBe(second);
    const pushes = t.remote.pushes().length;
    const again = await t.land([{ strategy: 'PROMOTE', uris: [t.uri(first, 'main')] }]);
    expect(again.result.steps[0]).toMatchObject({ outputs: [{ id: first }], alreadyPresent: true });
    expect(t.remote.pushes()).toHaveLength(pushes);
    expect(t.remote.tip('verified/main')).toBe(second);
    // A rewritten history: a commit that is not a descendant of verified/main.
    const [divergent] = t.remote.branch('rewrite', [{ 'y.txt': 'y' }], first);
    const err = await t.land([{ strategy: 'PROMOTE', uris: [t.uri(divergent!, 'rewrite')] }]).catch((e) => e);
    expect(err).toBeInstanceOf(ConflictError);
    expect(err.message).toMatch(/not a fast-forward/);
    expect(t.remote.tip('verified/main')).toBe(second);

    const leased = setup({
      targetBranch: 'verified/main',
      promoteMode: 'reset-with-lease',
      checkStaleness: false,
    });
    const a = leased.remote.tip('main')!;
    await leased.land([
      { strategy: 'PROMOTE', uris: [leased.uri(leased.remote.advanceMain({ z: 'z' }), 'main')] },
    ]);
    const [b] = leased.remote.branch('rewrite', [{ 'w.txt': 'w' }], a);
    const r = await leased.land([{ strategy: 'PROMOTE', uris: [leased.uri(b!, 'rewrite')] }]);
    expect(outputs(r)).toEqual([b]);
    expect(leased.remote.tip('verified/main')).toBe(b);
  });

  it('46: PROMOTE with another step or URI is invalid before any git command', () => {
    const t = setup();
    const sha = t.remote.tip('main')!;
    const twoUris = t.request([{ strategy: 'PROMOTE', uris: [t.uri(sha, 'main'), t.uri(sha, 'main')] }]);
    const twoSteps = t.request([
      { strategy: 'PROMOTE', uris: [t.uri(sha, 'main')] },
      { strategy: 'REBASE', uris: [t.uri(sha, 'main')] },
    ]);
    for (const req of [twoUris, twoSteps])
      expect(() => validateRequest(req, [t.target])).toThrow(/PROMOTE must be the only step/);
    expect(existsSync(t.target.checkoutPath)).toBe(false);
  });
});

describe('validation, availability, staleness (47–49)', () => {
  it('47: invalid requests are refused without touching the checkout; DEFAULT uses defaultStrategy', async () => {
    const t = setup({ defaultStrategy: 'MERGE' });
    const sha = t.remote.tip('main')!;
    const good = t.uri(sha, 'main');
    const cases: Array<[unknown, RegExp]> = [
      [{ id: 'x', target: 'main', steps: [] }, /no steps/],
      [
        { id: 'x', target: 'main', steps: [{ stepId: 's', change: { uris: [] }, strategy: 'REBASE' }] },
        /no commit URIs/,
      ],
      [
        { id: 'x', target: 'main', steps: [{ stepId: 's', change: { uris: [good] }, strategy: 'FF' }] },
        /strategy/,
      ],
      [
        {
          id: 'x',
          target: 'main',
          steps: [
            { stepId: 's', change: { uris: [good.replace('git://', 'https://')] }, strategy: 'REBASE' },
          ],
        },
        /git:\/\//,
      ],
      [
        {
          id: 'x',
          target: 'main',
          steps: [
            { stepId: 's', change: { uris: [good.replace(sha, sha.toUpperCase())] }, strategy: 'REBASE' },
          ],
        },
        /40 lowercase hex/,
      ],
      [
        {
          id: 'x',
          target: 'main',
          steps: [
            { stepId: 's', change: { uris: [good.replace(sha, sha.slice(0, 12))] }, strategy: 'REBASE' },
          ],
        },
        /40 lowercase hex/,
      ],
      [
        {
          id: 'x',
          target: 'main',
          steps: [
            { stepId: 's', change: { uris: [good.replace(REPO, 'did:plc:other')] }, strategy: 'REBASE' },
          ],
        },
        /not a commit of did:plc:landrepo/,
      ],
      [{ id: 'x', target: 'nope', steps: [] }, /unknown landing target/],
    ];
    for (const [req, why] of cases)
      expect(() => validateRequest(req as LandRequest, [t.target]), String(why)).toThrow(why);
    expect(existsSync(t.target.checkoutPath)).toBe(false);
    const [c] = t.remote.branch('c', [{ 'c.txt': 'c' }]);
    const r = await t.land([{ strategy: 'DEFAULT', uris: [t.uri(c!, 'c')] }]);
    expect(t.remote.format(outputs(r)[0]!, '%P').split(' ')).toHaveLength(2);
  });

  it('48: a commit the remote cannot serve is invalid; an unreachable remote is retryable', async () => {
    const t = setup({ checkStaleness: false });
    const err = await t.land([{ strategy: 'REBASE', uris: [t.uri('1'.repeat(40), 'main')] }]).catch((e) => e);
    expect(err).toBeInstanceOf(InvalidRequestError);
    expect(err.message).toMatch(/not available from the remote/);
    const gone = setup({ remoteUrl: '/nonexistent/remote.git' });
    const down = await gone
      .land([{ strategy: 'REBASE', uris: [gone.uri('1'.repeat(40), 'main')] }])
      .catch((e) => e);
    expect(down).toBeInstanceOf(RetryableError);
  });

  it('49: a change whose ref moved is stale; a deleted ref does not block', async () => {
    const t = setup();
    const [c1] = t.remote.branch('c', [{ 'a.txt': 'a' }]);
    t.remote.branch('c', [{ 'b.txt': 'b' }], 'c');
    const err = await t.land([{ strategy: 'REBASE', uris: [t.uri(c1!, 'c')] }]).catch((e) => e);
    expect(err).toBeInstanceOf(InvalidRequestError);
    expect(err.message).toMatch(/change is stale/);
    const [d] = t.remote.branch('d', [{ 'd.txt': 'd' }]);
    t.remote.git(['push', '-q', 'origin', '--delete', 'd']);
    const r = await t.land([{ strategy: 'REBASE', uris: [t.uri(d!, 'd')] }]);
    expect(r.result.outcome).toBe('SUCCEEDED');
  });
});

describe('contention and checks (50, 51)', () => {
  it('50: a target that moves between reset and push is landed on its new tip; endless contention is retryable', async () => {
    const t = setup();
    const [c] = t.remote.branch('c', [{ 'mine.txt': 'm' }]);
    t.remote.contend(2);
    const r = await t.land([{ strategy: 'REBASE', uris: [t.uri(c!, 'c')] }]);
    const [out] = outputs(r);
    expect(t.remote.tip('main')).toBe(out);
    expect(t.remote.show('main', 'other-1.txt')).toBe('other 1');
    expect(t.remote.show('main', 'other-2.txt')).toBe('other 2');
    const few = setup({ maxPushAttempts: 3 });
    const [d] = few.remote.branch('d', [{ 'd.txt': 'd' }]);
    few.remote.contend(100);
    const err = await few.land([{ strategy: 'REBASE', uris: [few.uri(d!, 'd')] }]).catch((e) => e);
    expect(err).toBeInstanceOf(RetryableError);
    expect(err.message).toBe('exceeded 3 merge attempts due to remote contention');
  });

  it('51: a check reports no outputs and leaves the remote and checkout at the tip; two steps conflict only together', async () => {
    const t = setup();
    const [c] = t.remote.branch('c', [{ 'c.txt': 'c' }]);
    const tip = t.remote.tip('main');
    const r = await t.land([{ strategy: 'REBASE', uris: [t.uri(c!, 'c')] }], true);
    expect(r.result).toMatchObject({ outcome: 'SUCCEEDED', steps: [{ outputs: [] }] });
    expect(r.pushed).toBe(false);
    expect(t.remote.tip('main')).toBe(tip);
    expect(gitIn(t.target.checkoutPath, ['rev-parse', 'HEAD'])).toBe(tip);
    const [s1] = t.remote.branch('s1', [{ 'shared.txt': 'one\n' }]);
    const [s2] = t.remote.branch('s2', [{ 'shared.txt': 'two\n' }]);
    for (const [sha, b] of [
      [s1!, 's1'],
      [s2!, 's2'],
    ] as const)
      expect((await t.land([{ strategy: 'REBASE', uris: [t.uri(sha, b)] }], true)).result.outcome).toBe(
        'SUCCEEDED',
      );
    const both = await t
      .land(
        [
          { strategy: 'REBASE', uris: [t.uri(s1!, 's1')] },
          { strategy: 'REBASE', uris: [t.uri(s2!, 's2')] },
        ],
        true,
      )
      .catch((e) => e);
    expect(both).toBeInstanceOf(ConflictError);
    expect(both.message).toMatch(/shared\.txt/);
    expect(t.remote.tip('main')).toBe(tip);
    expect(gitIn(t.target.checkoutPath, ['rev-parse', 'HEAD'])).toBe(tip);
  });
});

describe('safety (56, 57)', () => {
  it('56: a user-level git config (signing, hooks, aliases) has no effect', async () => {
    const t = setup();
    const home = join(t.dir, 'home');
    const hooks = join(home, 'hooks');
    mkdirSync(hooks, { recursive: true });
    writeFileSync(join(hooks, 'pre-commit'), '#!/bin/sh\necho refused by a user hook >&2\nexit 1\n');
    chmodSync(join(hooks, 'pre-commit'), 0o755);
    writeFileSync(
      join(home, '.gitconfig'),
      `[commit]\n\tgpgsign = true\n[core]\n\thooksPath = ${hooks}\n[alias]\n\tcommit = !false\n[user]\n\tname = Someone Else\n`,
    );
    const saved = { HOME: process.env.HOME, GIT_CONFIG_GLOBAL: process.env.GIT_CONFIG_GLOBAL };
    process.env.HOME = home;
    process.env.GIT_CONFIG_GLOBAL = join(home, '.gitconfig');
    try {
      const lander = new Lander(t.target, inheritedGitEnv(), createLogger('silent'));
      const [, c] = t.remote.branch('c', [{ 'a.txt': '1' }, { 'b.txt': '2' }]);
      const req = t.request([{ strategy: 'SQUASH_REBASE', uris: [t.uri(c!, 'c')] }]);
      const r = await lander.land(req.id, validateRequest(req, [t.target]).steps, true);
      const [out] = outputs(r);
      expect(t.remote.format(out!, '%cn|%G?')).toBe(`${COMMITTER.name}|N`);
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });

  it('57: the HTTP credential is kept in a 0600 file, never in git arguments, remote URLs, logs or results', async () => {
    const t0 = tempDir('treadle-wrap-');
    cleanups.push(t0.cleanup);
    const argvLog = join(t0.dir, 'argv.log');
    const wrapper = join(t0.dir, 'git');
    writeFileSync(wrapper, `#!/bin/sh\nprintf '%s\\n' "$*" >> "${argvLog}"\nexec git "$@"\n`);
    chmodSync(wrapper, 0o755);
    const SECRET = 'Authorization: Bearer s3cr3t-landing-token';
    const t = setup({ authHeaderEnv: 'LAND_AUTH', authHeader: SECRET }, wrapper);
    const [c] = t.remote.branch('c', [{ 'a.txt': 'a' }]);
    const r = await t.land([{ strategy: 'REBASE', uris: [t.uri(c!, 'c')] }]);
    expect(r.result.outcome).toBe('SUCCEEDED');
    const authFile = join(t.target.checkoutPath, '.git', 'treadle-auth.config');
    expect(statSync(authFile).mode & 0o777).toBe(0o600);
    expect(readFileSync(authFile, 'utf8')).toContain(
      'extraheader = "Authorization: Bearer s3cr3t-landing-token"',
    );
    const argv = readFileSync(argvLog, 'utf8');
    expect(argv).toContain('cherry-pick');
    for (const text of [
      argv,
      t.logs(),
      JSON.stringify(r.result),
      gitIn(t.target.checkoutPath, ['remote', '-v']),
    ])
      expect(text).not.toContain('s3cr3t');
  });

  it('57: over smart HTTP the header reaches the server on every request, and a land without it is refused', async () => {
    const HEADER = 'Authorization: Bearer s3cr3t-http-token';
    const t = setup({ authHeaderEnv: 'LAND_AUTH', authHeader: HEADER });
    const server = await serveGitHttp(t.remote.dir, 'Bearer s3cr3t-http-token');
    cleanups.push(() => void server.close());
    // The target has not run yet: point it at the HTTP face of the same bare repository.
    t.target.remoteUrl = `${server.base}/remote.git`;
    const [c] = t.remote.branch('c', [{ 'http.txt': 'over http' }]);
    const r = await t.land([{ strategy: 'REBASE', uris: [t.uri(c!, 'c')] }]);
    expect(r.result.outcome).toBe('SUCCEEDED');
    const [landed] = outputs(r);
    expect(gitIn(t.remote.bare, ['rev-parse', 'main'])).toBe(landed);
    expect(server.requests.some((q) => q.path === '/remote.git/git-receive-pack')).toBe(true);
    expect(server.requests.every((q) => q.authorization === 'Bearer s3cr3t-http-token')).toBe(true);
    expect(t.logs()).not.toContain('s3cr3t');

    const bare = setup();
    bare.target.remoteUrl = `${server.base}/remote.git`;
    const before = server.requests.length;
    const [d] = t.remote.branch('d', [{ 'd.txt': 'd' }]);
    const refused = await bare.land([{ strategy: 'REBASE', uris: [bare.uri(d!, 'd')] }]).catch((e) => e);
    expect(refused).toBeInstanceOf(RetryableError);
    expect(String(refused.message)).toMatch(/fetching main's remote failed/);
    expect(server.requests.slice(before).every((q) => q.authorization === undefined)).toBe(true);
    expect(gitIn(t.remote.bare, ['rev-parse', 'main'])).toBe(landed);
  });
});
