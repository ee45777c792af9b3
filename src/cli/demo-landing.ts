/**
 * The demo's landing part: a local bare repository stands in for the knot's git remote. The
 * demo pushes real commits of it; once greenness records the green one, `verified/main` is
 * promoted to it; then a side branch is rebased onto main through the land API, and a change
 * that conflicts is refused by a dry-run check with the conflicting paths in the reason.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { inheritedGitEnv } from '../git/git.ts';
import { LandGit } from '../landing/land-git.ts';
import type { Output } from './output.ts';

export interface DemoRepo {
  bare: string;
  /** The two commits of main the demo's pushes name: the first turns red, the second green. */
  red: string;
  green: string;
  author: LandGit;
  clone: string;
}

const ALICE = { name: 'Alice Author', email: 'alice@demo.example' };

export async function createDemoRepo(dir: string): Promise<DemoRepo> {
  const bare = join(dir, 'hello.git');
  const clone = join(dir, 'author');
  mkdirSync(clone, { recursive: true });
  const git = (cwd: string) =>
    new LandGit({ cwd, committer: ALICE, timeoutMs: 30_000, inherited: inheritedGitEnv() });
  await git(dir).ok(['init', '-q', '--bare', '-b', 'main', bare]);
  const author = git(clone);
  await author.ok(['init', '-q', '-b', 'main']);
  await author.ok(['remote', 'add', 'origin', bare]);
  const commit = async (path: string, text: string, message: string) => {
    writeFileSync(join(clone, path), text);
    await author.ok(['add', path]);
    await author.ok(['commit', '-q', '-m', message]);
    return author.ok(['rev-parse', 'HEAD']);
  };
  const red = await commit('README.md', '# hello\n', 'readme');
  const green = await commit('app.txt', 'version 1\n', 'the app');
  await author.ok(['push', '-q', 'origin', 'main']);
  return { bare, red, green, author, clone };
}

/** The TREADLE_CONFIG of the demo: two landing targets, and main of the demo repo promoted. */
export function demoLandingYaml(repo: string, bare: string): string {
  return [
    'landing:',
    '  targets:',
    '    - name: verified-main',
    `      repo: ${repo}`,
    `      remoteUrl: ${bare}`,
    '      targetBranch: verified/main',
    '      defaultStrategy: PROMOTE',
    '      checkStaleness: false',
    '      committer: { name: treadle, email: treadle@spindle.demo }',
    '    - name: main',
    `      repo: ${repo}`,
    `      remoteUrl: ${bare}`,
    '      targetBranch: main',
    '      committer: { name: treadle, email: treadle@spindle.demo }',
    'greenness:',
    '  queues:',
    `    - repo: ${repo}`,
    '      ref: main',
    '      promote: { target: verified-main }',
    '    - ref: "refs/heads/**"',
    '',
  ].join('\n');
}

interface Answer {
  outcome: string;
  reason?: string;
  steps: Array<{ outputs: Array<{ id: string }> }>;
}

export async function landingPart(
  io: Output,
  at: () => string,
  d: { base: string; token: string; repo: DemoRepo },
): Promise<void> {
  const { base, token, repo } = d;
  const auth = { authorization: `Bearer ${token}` };
  const tip = async (branch: string) =>
    (await repo.author.run(['ls-remote', 'origin', `refs/heads/${branch}`])).stdout.split('\t')[0] ?? '';
  for (const deadline = Date.now() + 15_000; Date.now() < deadline; await sleep(100))
    if ((await tip('verified/main')) === repo.green) break;
  const verified = await tip('verified/main');
  io.out(
    `${at()}  verified/main promoted to the last green commit: ${verified ? verified.slice(0, 12) : '(not yet)'} (landing target verified-main, PROMOTE)`,
  );

  const ask = async (body: object): Promise<Answer> => {
    const res = await fetch(`${base}/land/v1/requests`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const { id } = (await res.json()) as { id: string };
    for (;;) {
      const r = await fetch(`${base}/land/v1/requests/${encodeURIComponent(id)}`, { headers: auth });
      const json = (await r.json()) as Answer;
      if (json.outcome) return json;
      await sleep(100);
    }
  };
  await repo.author.ok(['checkout', '-q', '-b', 'feature', repo.green]);
  writeFileSync(join(repo.clone, 'feature.txt'), 'a feature\n');
  await repo.author.ok(['add', 'feature.txt']);
  await repo.author.ok(['commit', '-q', '-m', 'a feature']);
  const feature = await repo.author.ok(['rev-parse', 'HEAD']);
  await repo.author.ok(['push', '-q', 'origin', 'feature']);
  const landed = await ask({ target: 'main', strategy: 'REBASE', commits: [feature] });
  const out = landed.steps[0]?.outputs[0]?.id;
  io.out(
    `${at()}  POST /land/v1/requests REBASE of feature ${feature.slice(0, 12)} onto main: ${landed.outcome}, main is now ${out?.slice(0, 12)}`,
  );

  await repo.author.ok(['checkout', '-q', '-b', 'clash', repo.red]);
  writeFileSync(join(repo.clone, 'app.txt'), 'version 2, written elsewhere\n');
  await repo.author.ok(['add', 'app.txt']);
  await repo.author.ok(['commit', '-q', '-m', 'another app']);
  const clash = await repo.author.ok(['rev-parse', 'HEAD']);
  await repo.author.ok(['push', '-q', 'origin', 'clash']);
  const refused = await ask({ target: 'main', strategy: 'REBASE', commits: [clash], dryRun: true });
  io.out(
    `${at()}  dry-run check of clash ${clash.slice(0, 12)} on main: ${refused.outcome}: ${refused.reason}`,
  );
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
