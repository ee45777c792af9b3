/**
 * The 2026 protocol against the real daemon (2026 spec §5 checklist): push pipelines built from
 * new-shape ref updates with workflows read over real git HTTP, per-knot mode and dedup with the
 * v1.14 burst in both orders, repo DIDs from knots, and the bad input of the issue's acceptance list.
 */
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppviewEvents } from '../fakes/appview.ts';
import type { FileChanges } from '../fakes/git-repos.ts';
import { FakeKnot } from '../fakes/knot.ts';
import {
  OWNER,
  onboard,
  pipelineRecord,
  refUpdate,
  rkey,
  type Stack,
  startStack,
  stubWorkflow,
} from './support/stack.ts';
import { waitFor } from './support/wait.ts';

const TID = /^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$/;
const REPO = 'did:plc:hellorepo';
const CI = stubWorkflow('success', '0s', ['build']);
const DEV_ONLY = stubWorkflow('success', '0s', ['test'], '  - event: push\n    branch: dev');

let s: Stack;
let app: AppviewEvents;

beforeAll(async () => {
  s = await startStack({ TREADLE_PUSH_HOLD: '1s' });
  app = new AppviewEvents();
  await app.connect(s.daemon.base);
  s.knot.git.create(REPO);
  s.knot.defaultBranches.set(REPO, 'main');
  await onboard(s, 'hello', OWNER, { repoDid: REPO });
}, 30_000);

afterAll(async () => {
  if (process.env.DUMP_LOGS) (await import('node:fs')).writeFileSync(process.env.DUMP_LOGS, s.daemon.logs());
  await app?.close();
  await s?.close();
});

interface Announced {
  triggerMetadata: {
    kind: string;
    push?: { ref: string; newSha: string };
    repo: { knot: string; did: string; repo?: string; repoDid?: string; defaultBranch: string };
  };
  workflows: Array<{ name: string; engine: string; clone: Record<string, unknown> }>;
}

/** Pipelines announced on /events for a commit, as [rkey, record]. */
function pipelinesFor(sha: string): Array<[string, Announced]> {
  return ([...app.pipelines.entries()] as Array<[string, Announced]>).filter(
    ([, p]) => p.triggerMetadata.push?.newSha === sha,
  );
}

/** Every intake message handled, held ones included: no pipeline can still appear from them. */
async function intakeIdle(): Promise<void> {
  await waitFor(
    () => {
      const db = new Database(s.db, { readonly: true });
      try {
        return (
          (
            db
              .prepare(
                `SELECT count(*) AS n FROM queue_delivery WHERE topic IN ('push.intake', 'pipeline.intake')`,
              )
              .get() as { n: number }
          ).n === 0
        );
      } finally {
        db.close();
      }
    },
    'every intake message handled',
    20_000,
  );
}

async function finishedPipeline(sha: string): Promise<[string, Announced]> {
  return waitFor<[string, Announced] | undefined>(
    () => {
      const found = pipelinesFor(sha)[0];
      if (!found) return undefined;
      const latest = Object.values(app.latest(found[0]));
      return latest.length === found[1].workflows.length && latest.every((r) => r.status === 'success')
        ? found
        : undefined;
    },
    `a finished pipeline for ${sha.slice(0, 8)}`,
    20_000,
  ) as Promise<[string, Announced]>;
}

/** A commit on the served repo's main branch and its new-shape ref update. */
function push(files: FileChanges, options: Parameters<typeof refUpdate>[2] = {}): string {
  const sha = s.knot.git.commit(REPO, files, { branch: options.ref?.replace('refs/heads/', '') });
  s.knot.emit('sh.tangled.git.refUpdate', rkey(), refUpdate(REPO, sha, options));
  return sha;
}

describe('push pipelines built from new-shape refUpdate (2026 §3.2–3.5)', () => {
  it('reads the workflows at the pushed commit, compiles when:, and runs the pipeline under a TID', async () => {
    const sha = push({
      '.tangled/workflows/ci.yml': CI,
      '.tangled/workflows/dev-only.yml': DEV_ONLY,
      'src/main.c': 'int main(void) { return 0; }\n',
    });
    const [tid, record] = await finishedPipeline(sha);
    expect(tid).toMatch(TID);
    expect(record.triggerMetadata).toMatchObject({
      kind: 'push',
      push: { ref: 'refs/heads/main', newSha: sha },
      repo: { knot: s.knot.host, did: OWNER, repoDid: REPO, defaultBranch: 'main' },
    });
    expect(record.workflows.map((w) => w.name)).toEqual(['ci.yml']);
    expect(record.workflows[0]!.clone).toEqual({ skip: false, depth: 0, submodules: true, tags: true });
    const statuses = [...app.statuses.values()].filter((r) => r.pipelineRkey === tid);
    expect(new Set(statuses.map((r) => r.pipelineKnot))).toEqual(new Set([s.knot.host]));
    expect(app.history(tid, 'ci.yml')).toEqual(['pending', 'running', 'success']);
  });

  it('creates nothing for skip-ci or ci-skip, an old-shape refUpdate, a commit without workflows, or a replay', async () => {
    const before = app.pipelines.size;
    push({ '.tangled/workflows/ci.yml': CI, 'a.txt': '1' }, { pushOptions: ['skip-ci'] });
    push({ 'a.txt': '2' }, { pushOptions: ['verbose-ci', 'ci-skip'] });
    const legacySha = s.knot.git.commit(REPO, { 'a.txt': '3' });
    s.knot.emit('sh.tangled.git.refUpdate', rkey(), {
      ref: 'refs/heads/main',
      committerDid: OWNER,
      repoDid: OWNER,
      repoName: 'hello',
      oldSha: '0'.repeat(40),
      newSha: legacySha,
      meta: { isDefaultRef: true, commitCount: {} },
    });
    const bare = s.knot.git.commit(REPO, { '.tangled/workflows/ci.yml': null, 'b.txt': 'x' });
    s.knot.emit('sh.tangled.git.refUpdate', rkey(), refUpdate(REPO, bare));
    // The same push again under another frame rkey (a knot replaying after a restart).
    const sentinel = push({ '.tangled/workflows/ci.yml': CI, 'c.txt': 'x' });
    s.knot.emit('sh.tangled.git.refUpdate', rkey(), refUpdate(REPO, sentinel));
    await finishedPipeline(sentinel);
    await intakeIdle();
    expect(app.pipelines.size).toBe(before + 1);
    expect(pipelinesFor(sentinel)).toHaveLength(1);
    expect(s.daemon.logs()).toContain('"msg":"push skipped by push option"');
    expect(s.daemon.logs()).toContain('"msg":"push: no workflows to run"');
  });

  it('runs paths: entries only when a changed file matches', async () => {
    const workflow = stubWorkflow(
      'success',
      '0s',
      ['test'],
      '  - event: push\n    branch: main\n    paths: ["src/**"]',
    );
    const docsOnly = push(
      { '.tangled/workflows/ci.yml': workflow, 'docs/x.md': 'x' },
      { changedFiles: ['docs/x.md'] },
    );
    const code = push({ 'src/y.c': 'y' }, { changedFiles: ['src/y.c'] });
    await finishedPipeline(code);
    expect(pipelinesFor(docsOnly)).toEqual([]);
  });
});

describe('bad input from knots and repos (acceptance)', () => {
  it('drops a refUpdate from a knot that is not the repo’s, an unknown repo DID, a huge workflow file, an invalid glob, an alias bomb, a file not in UTF-8 and a symlink', async () => {
    const other = await FakeKnot.start();
    try {
      await onboard(s, 'elsewhere', OWNER, { knot: other, repoDid: 'did:plc:elsewhere' });
      const before = app.pipelines.size;
      const stolen = s.knot.git.commit(REPO, { '.tangled/workflows/ci.yml': CI, 'd.txt': 'x' });
      other.emit('sh.tangled.git.refUpdate', rkey(), refUpdate(REPO, stolen));
      s.knot.emit('sh.tangled.git.refUpdate', rkey(), refUpdate('did:plc:nobody', stolen));
      const huge = push({ '.tangled/workflows/huge.yml': `# ${'x'.repeat(3 * 1024 * 1024)}\n${CI}` });
      const badGlob = stubWorkflow('success', '0s', ['test'], '  - event: push\n    branch: "release-[0-9"');
      const globSha = push({ '.tangled/workflows/huge.yml': null, '.tangled/workflows/ci.yml': badGlob });
      // An alias bomb, a file that is not UTF-8, and a symbolic link (to a file outside the
      // workflow directory) in .tangled/workflows: each is refused by itself.
      const bomb = [
        'a: &a ["x","x","x","x","x","x","x","x","x"]',
        ...Array.from({ length: 8 }, (_, i) => {
          const prev = i === 0 ? 'a' : String.fromCharCode(97 + i);
          const name = String.fromCharCode(98 + i);
          return `${name}: &${name} [*${prev},*${prev},*${prev},*${prev},*${prev},*${prev},*${prev},*${prev},*${prev}]`;
        }),
        'engine: nixery',
        'steps: []',
      ].join('\n');
      const yamlSha = push({
        '.tangled/workflows/ci.yml': null,
        '.tangled/workflows/bomb.yml': bomb,
        '.tangled/workflows/latin1.yml': Buffer.from('engine: nixery\n# caf\xe9\n', 'latin1'),
        '.tangled/workflows/link.yml': { symlink: '../../README.md' },
      });
      // Malformed fields of a new-shape ref update: a sha that is not hex, a ref that is not a
      // string, changed files that are not a list.
      s.knot.emit('sh.tangled.git.refUpdate', rkey(), refUpdate(REPO, 'z'.repeat(40)));
      s.knot.emit('sh.tangled.git.refUpdate', rkey(), { ...refUpdate(REPO, globSha), ref: 42 });
      s.knot.emit('sh.tangled.git.refUpdate', rkey(), {
        ...refUpdate(REPO, globSha),
        changedFiles: 'README.md',
      });
      const sentinel = push({
        '.tangled/workflows/bomb.yml': null,
        '.tangled/workflows/latin1.yml': null,
        '.tangled/workflows/link.yml': null,
        '.tangled/workflows/ci.yml': CI,
      });
      await finishedPipeline(sentinel);
      // Each refusal is the intake's last word on its push (pushes run in parallel partitions).
      const refusals = [
        "ref update dropped: the sending knot is not the repo's knot",
        'ref update dropped: no repo with this DID is served here',
        /"reason":"workflow file huge\.yml is \d+ bytes; the limit is 1048576"/,
        /"workflow":"ci.yml","reason":"when\[0\]\.branch: invalid glob/,
        /"workflow":"bomb.yml","reason":"workflow is not valid YAML: [^"]*[Aa]lias/,
        /"workflow":"latin1.yml","reason":"workflow file is not valid UTF-8"/,
        /"reason":"not a commit id: \\"z{40}\\"","msg":"push not run: workflows refused"/,
        /"reason":"invalid sh\.tangled\.git\.refUpdate record: [^"]*ref must be a string","msg":"ref update dropped"/,
        /"reason":"invalid sh\.tangled\.git\.refUpdate record: [^"]*changedFiles must be an array","msg":"ref update dropped"/,
      ];
      await waitFor(
        () =>
          refusals.every((r) =>
            typeof r === 'string' ? s.daemon.logs().includes(r) : r.test(s.daemon.logs()),
          ),
        'every refusal logged',
      );
      const noneLeft = new RegExp(`"sha":"${yamlSha}"[^\\n]*"msg":"push: no workflows to run"`);
      await waitFor(() => noneLeft.test(s.daemon.logs()), 'the YAML push refused whole');
      expect(app.pipelines.size).toBe(before + 1);
      for (const sha of [stolen, huge, globSha, yamlSha]) expect(pipelinesFor(sha)).toEqual([]);
      // The symlink is not read at all: it is neither run nor reported as a bad workflow.
      expect(s.daemon.logs()).not.toContain('"workflow":"link.yml"');
      expect(app.fatal).toBe(0);
    } finally {
      await other.close();
    }
  }, 30_000);
});

describe('per-knot mode and dedup (2026 §4.3, §4.5)', () => {
  /** A second knot with its own repo, first contact for the daemon. */
  async function freshKnot(name: string): Promise<{ knot: FakeKnot; repoDid: string }> {
    const knot = await FakeKnot.start();
    const repoDid = `did:plc:${name}`;
    knot.git.create(repoDid);
    await onboard(s, name, OWNER, { knot, repoDid });
    return { knot, repoDid };
  }

  /** The knot's own pipeline for the push, as a v1.14 Go knot sends it. */
  function knotPipeline(knot: FakeKnot, name: string, repoDid: string, sha: string): Record<string, unknown> {
    const record = pipelineRecord(knot.host, [{ name: 'ci.yml', raw: CI }], { name }, { newSha: sha });
    (record.triggerMetadata as { repo: Record<string, unknown> }).repo.repoDid = repoDid;
    return record;
  }

  it('runs a v1.14 burst (refUpdate then pipeline) once, under the knot’s rkey, with the self-built record', async () => {
    const { knot, repoDid } = await freshKnot('burst');
    try {
      for (let i = 0; i < 2; i++) {
        // The first burst is first contact (mode unknown); the second finds the knot "new".
        const sha = knot.git.commit(repoDid, { '.tangled/workflows/ci.yml': CI, 'n.txt': String(i) });
        const knotRkey = rkey();
        knot.emit('sh.tangled.git.refUpdate', rkey(), refUpdate(repoDid, sha));
        knot.emit('sh.tangled.pipeline', knotRkey, knotPipeline(knot, 'burst', repoDid, sha));
        const [tid, record] = await finishedPipeline(sha);
        expect(tid).toBe(knotRkey);
        expect(record.triggerMetadata.repo.repoDid).toBe(repoDid);
        expect(record.triggerMetadata.repo.repo).not.toBe('burst');
        await intakeIdle();
        expect(pipelinesFor(sha)).toHaveLength(1);
        expect(app.history(tid, 'ci.yml')).toEqual(['pending', 'running', 'success']);
      }
    } finally {
      await knot.close();
    }
  }, 30_000);

  it('runs the reverse order (pipeline then refUpdate) once, on a first-contact knot and on a known-new one', async () => {
    const { knot, repoDid } = await freshKnot('reverse');
    try {
      for (let i = 0; i < 2; i++) {
        const sha = knot.git.commit(repoDid, { '.tangled/workflows/ci.yml': CI, 'n.txt': String(i) });
        const knotRkey = rkey();
        knot.emit('sh.tangled.pipeline', knotRkey, knotPipeline(knot, 'reverse', repoDid, sha));
        // The knot's pipeline is taken in (run, or lent to the push) before the ref update comes.
        await waitFor(
          () =>
            new RegExp(`"rkey":"${knotRkey}"[^\\n]*"msg":"pipeline (accepted|deferred)"`).test(
              s.daemon.logs(),
            ),
          'the knot pipeline taken in',
        );
        knot.emit('sh.tangled.git.refUpdate', rkey(), refUpdate(repoDid, sha));
        const [tid] = await finishedPipeline(sha);
        expect(tid).toBe(knotRkey);
        await intakeIdle();
        expect(pipelinesFor(sha)).toHaveLength(1);
      }
    } finally {
      await knot.close();
    }
  }, 30_000);

  it('adopts a knot pipeline whose refUpdate never comes, after the wait', async () => {
    const { knot, repoDid } = await freshKnot('lonely');
    try {
      const first = knot.git.commit(repoDid, { '.tangled/workflows/ci.yml': CI });
      knot.emit('sh.tangled.git.refUpdate', rkey(), refUpdate(repoDid, first));
      await finishedPipeline(first);
      const sha = knot.git.commit(repoDid, { 'x.txt': 'x' });
      const knotRkey = rkey();
      knot.emit('sh.tangled.pipeline', knotRkey, knotPipeline(knot, 'lonely', repoDid, sha));
      const [tid] = await finishedPipeline(sha);
      expect(tid).toBe(knotRkey);
    } finally {
      await knot.close();
    }
  }, 30_000);
});

describe('repo DIDs from knots (2026 §3.6, §4.2)', () => {
  it('maps a repo known by owner and name to the DID a didAssign names, and refuses a DID another repo holds', async () => {
    for (const name of ['legacy', 'squatter']) {
      const key = await onboard(s, name);
      await waitFor(
        () => s.daemon.logs().includes(`"rkey":"${key}","op":"create","msg":"record applied"`),
        'the repo',
      );
    }
    // Before it has a DID, the repo's branch is recorded by <ownerDid>/<name> (a knot-sent pipeline).
    const before = 'b'.repeat(40);
    s.knot.emit(
      'sh.tangled.pipeline',
      rkey(),
      pipelineRecord(s.knot.host, [{ name: 'ci.yml', raw: CI }], { name: 'legacy' }, { newSha: before }),
    );
    const greenness = async (repo: string, commit: string) => {
      const res = await fetch(
        `${s.daemon.base}/greenness/v1/status?repo=${encodeURIComponent(repo)}&ref=main&commit=${commit}`,
      );
      return res.status === 200
        ? ((await res.json()) as { repo: string; status: string; seq: number })
        : undefined;
    };
    await waitFor(
      async () => (await greenness(`${OWNER}/legacy`, before))?.status === 'green',
      'the commit before the DID recorded green',
      20_000,
    );
    const did = 'did:plc:legacyrepo';
    s.knot.git.create(did);
    s.knot.emit('sh.tangled.repo.didAssign', rkey(), {
      ownerDid: OWNER,
      repoName: 'legacy',
      repoDid: did,
      oldRepoAt: '',
    });
    // `hello` already holds REPO: a second repo claiming it is refused.
    s.knot.emit('sh.tangled.repo.didAssign', rkey(), {
      ownerDid: OWNER,
      repoName: 'squatter',
      repoDid: REPO,
    });
    await waitFor(() => s.daemon.logs().includes('"msg":"repo DID assigned"'), 'the assignment');
    const sha = s.knot.git.commit(did, { '.tangled/workflows/ci.yml': CI });
    s.knot.emit('sh.tangled.git.refUpdate', rkey(), refUpdate(did, sha));
    const [, record] = await finishedPipeline(sha);
    expect(record.triggerMetadata.repo.repoDid).toBe(did);
    // The branch keeps its history under the DID: one queue, either id finds both commits.
    const after = await waitFor(
      async () => {
        const g = await greenness(did, sha);
        return g?.status === 'green' ? g : undefined;
      },
      'the commit after the DID recorded green',
      20_000,
    );
    expect(after).toMatchObject({ repo: did, seq: 2 });
    expect(await greenness(did, before)).toMatchObject({ repo: did, status: 'green', seq: 1 });
    expect(await greenness(`${OWNER}/legacy`, sha)).toMatchObject({ repo: did, status: 'green', seq: 2 });
    await waitFor(
      () => s.daemon.logs().includes('didAssign refused: another owner already holds this repo DID'),
      'the refusal',
    );
  });
});

describe('knot generations from sh.tangled.knot.version (capabilities)', () => {
  const modeOf = (knot: string) => {
    const db = new Database(s.db, { readonly: true });
    try {
      return (
        db.prepare('SELECT mode FROM knot_modes WHERE knot = ?').get(knot) as { mode: string } | undefined
      )?.mode;
    } finally {
      db.close();
    }
  };

  it('marks a knot that reports repo-did-input as new on first contact, and leaves one without capabilities to inference', async () => {
    const reporting = await FakeKnot.start();
    const silent = await FakeKnot.start();
    try {
      reporting.capabilities = ['knot-acl', 'repo-did-input'];
      await onboard(s, 'caps', OWNER, { knot: reporting, repoDid: 'did:plc:capsrepo' });
      await onboard(s, 'nocaps', OWNER, { knot: silent, repoDid: 'did:plc:nocapsrepo' });
      await waitFor(() => modeOf(reporting.host) === 'new', 'the reporting knot marked new');
      await waitFor(() => silent.versionRequests > 0, 'the silent knot asked');
      expect(s.daemon.logs()).toMatch(
        new RegExp(
          `"knot":"${reporting.host.replace('.', '\\.')}","version":"v1\\.15\\.0-fake".*"generation":"new"`,
        ),
      );
      expect(modeOf(silent.host)).toBeUndefined();
      expect(reporting.versionRequests).toBe(1);
    } finally {
      await reporting.close();
      await silent.close();
    }
  }, 30_000);
});
