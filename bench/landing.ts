/**
 * Landing benchmark (`npm run bench -- landing`), against a local bare repository with 10,000
 * commits on main:
 * (a) PROMOTE (fast-forward) and a one-commit REBASE merge through the lander, each beside the
 *     very same git command sequence (recorded from the lander, replayed by a shell script with
 *     the same environment), on identical copies of the repository and a provisioned checkout;
 * (b) a one-commit conflict check;
 * (c) 100 merges queued on one target through the real queue and handler (merges/min), and 100
 *     on each of 4 targets at once, with the speed-up.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { openDatabase } from '../src/db/database.ts';
import { LandingStore } from '../src/db/landing-store.ts';
import { QueueStore } from '../src/db/queue-store.ts';
import { UnitOfWork } from '../src/db/unit-of-work.ts';
import { inheritedGitEnv } from '../src/git/git.ts';
import { formatCommitUri } from '../src/landing/commit-uri.ts';
import type { LandingTarget } from '../src/landing/config.ts';
import { CHECK_TOPIC, type LandRequest, MERGE_TOPIC, pk, validateRequest } from '../src/landing/contract.ts';
import { LandingHandler } from '../src/landing/handler.ts';
import { Lander } from '../src/landing/lander.ts';
import { createLogger } from '../src/logger.ts';
import { Queue } from '../src/queue/index.ts';
import { fmt, percentile, printTable } from './stats.ts';

const COMMITS = Number(process.env.BENCH_LANDING_COMMITS ?? 10_000);
const CHANGES = Number(process.env.BENCH_LANDING_CHANGES ?? 100);
const RUNS = Number(process.env.BENCH_LANDING_RUNS ?? 10);
const REPO = 'did:plc:benchrepo';
const ENV = {
  PATH: process.env.PATH ?? '/usr/bin:/bin',
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_CONFIG_GLOBAL: '/dev/null',
  LC_ALL: 'C',
};
const log = createLogger('silent');

export async function landingBench(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'treadle-bench-land-'));
  try {
    const template = makeRepository(join(dir, 'template.git'));
    const checkout = join(dir, 'template-checkout');
    await new Lander(target('t', join(dir, 'template.git'), checkout), inheritedGitEnv(), log).provision();

    console.log(
      `(a) one operation on a ${COMMITS.toLocaleString('en')}-commit repository, median of ${RUNS} (ms)`,
    );
    const rows: string[][] = [];
    for (const kind of ['PROMOTE', 'REBASE'] as const) {
      const [treadle, bare] = await sequenceVersusScript(dir, template, checkout, kind);
      const name = kind === 'PROMOTE' ? 'PROMOTE (fast-forward)' : 'REBASE merge, one commit';
      rows.push([name, fmt(treadle, 1), fmt(bare, 1), `${(treadle / bare).toFixed(2)}×`]);
    }
    printTable(['', 'treadle', 'same git sequence from sh', 'ratio'], rows);

    const check = await timeOne(dir, template, checkout, 'check');
    console.log(
      `\n(b) one-commit conflict check (answered FAILED with the path), median of ${RUNS}: ${fmt(check, 1)} ms`,
    );

    console.log(`\n(c) ${CHANGES} one-commit merges queued through the queue and handler`);
    const one = await queued(dir, template, 1);
    const four = await queued(dir, template, 4);
    printTable(
      ['', 'merges', 'seconds', 'merges/min'],
      [
        ['one target', String(CHANGES), fmt(one / 1000, 1), fmt((CHANGES / one) * 60_000)],
        ['4 targets at once', String(4 * CHANGES), fmt(four / 1000, 1), fmt(((4 * CHANGES) / four) * 60_000)],
      ],
    );
    console.log(`    speed-up with 4 targets: ${((4 * CHANGES) / four / (CHANGES / one)).toFixed(2)}×`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function target(name: string, remoteUrl: string, checkoutPath: string, branch = 'main'): LandingTarget {
  return {
    name,
    repo: REPO,
    remoteUrl,
    remote: 'origin',
    targetBranch: branch,
    checkoutPath,
    defaultStrategy: 'REBASE',
    maxPushAttempts: 10,
    checkStaleness: true,
    allowUnrelatedHistories: false,
    promoteMode: 'ff-only',
    committer: { name: 'treadle', email: 'treadle@bench' },
    gitCommandTimeoutMs: 120_000,
  };
}

interface Template {
  bare: string;
  main: string;
  changes: string[];
  clash: string;
}

/** 10,000 commits on main (fast-import), `verified` one behind, 100 change branches and a clash. */
function makeRepository(bare: string): Template {
  execFileSync('git', ['init', '-q', '--bare', '-b', 'main', bare], { env: ENV });
  const parts: string[] = [];
  const data = (s: string) => `data ${Buffer.byteLength(s)}\n${s}\n`;
  const who = (t: number) =>
    `author Alice <alice@bench> ${t} +0000\ncommitter Alice <alice@bench> ${t} +0000\n`;
  for (let i = 1; i <= COMMITS; i++)
    parts.push(
      `commit refs/heads/main\nmark :${i}\n${who(1_700_000_000 + i)}${data(`commit ${i}`)}M 100644 inline f${i % 100}.txt\n${data(`line ${i}\n`)}`,
    );
  parts.push(`reset refs/heads/verified\nfrom :${COMMITS - 1}\n\n`);
  for (let c = 0; c < CHANGES; c++)
    parts.push(
      `commit refs/heads/c${c}\n${who(1_800_000_000 + c)}${data(`change ${c}`)}from :${COMMITS}\nM 100644 inline c${c}.txt\n${data(`change ${c}\n`)}`,
    );
  parts.push(
    `commit refs/heads/clash\n${who(1_900_000_000)}${data('clash')}from :${COMMITS - 100}\nM 100644 inline f${COMMITS % 100}.txt\n${data('elsewhere\n')}`,
  );
  execFileSync('git', ['fast-import', '--quiet'], { cwd: bare, env: ENV, input: parts.join('') });
  const rev = (r: string) =>
    execFileSync('git', ['rev-parse', r], { cwd: bare, env: ENV, encoding: 'utf8' }).trim();
  return {
    bare,
    main: rev('main'),
    changes: Array.from({ length: CHANGES }, (_, c) => rev(`c${c}`)),
    clash: rev('clash'),
  };
}

/** A fresh copy of the repository and of a provisioned checkout pointing at it. */
function copy(
  dir: string,
  template: Template,
  checkout: string,
  n: string,
): { bare: string; checkout: string } {
  const bare = join(dir, `${n}.git`);
  const co = join(dir, `${n}-checkout`);
  cpSync(template.bare, bare, { recursive: true });
  cpSync(checkout, co, { recursive: true });
  execFileSync('git', ['remote', 'set-url', 'origin', bare], { cwd: co, env: ENV });
  return { bare, checkout: co };
}

function requestFor(
  kind: 'PROMOTE' | 'REBASE' | 'check',
  t: Template,
): { steps: LandRequest['steps']; branch: string } {
  if (kind === 'PROMOTE')
    return {
      branch: 'verified',
      steps: [{ stepId: 's', strategy: 'PROMOTE', change: { uris: [uri(t.main, 'main')] } }],
    };
  const [sha, ref] = kind === 'REBASE' ? [t.changes[0]!, 'c0'] : [t.clash, 'clash'];
  return { branch: 'main', steps: [{ stepId: 's', strategy: 'REBASE', change: { uris: [uri(sha, ref)] } }] };
}

function uri(sha: string, branch: string): string {
  return formatCommitUri({ host: 'knot.bench', repoPath: REPO, ref: `refs/heads/${branch}`, sha });
}

async function landOnce(
  bare: string,
  checkout: string,
  kind: 'PROMOTE' | 'REBASE' | 'check',
  t: Template,
  executable?: string,
  afterProvision?: () => void,
) {
  const { steps, branch } = requestFor(kind, t);
  const tg = target('t', bare, checkout, branch);
  const lander = new Lander(tg, inheritedGitEnv(), log, executable);
  const req = { id: 'bench', target: 't', steps };
  await lander.provision(); // a running daemon's checkout is provisioned once, at start
  afterProvision?.();
  const start = performance.now();
  await lander.land(req.id, validateRequest(req, [tg]).steps, kind !== 'check').catch((err) => {
    if (kind !== 'check') throw err;
  });
  return performance.now() - start;
}

/** Median time of the lander, and of the same git commands replayed by sh, on fresh copies. */
async function sequenceVersusScript(
  dir: string,
  t: Template,
  checkout: string,
  kind: 'PROMOTE' | 'REBASE',
): Promise<[number, number]> {
  // Record the command sequence once, through a wrapper that logs each argv.
  const rec = copy(dir, t, checkout, `rec-${kind}`);
  const argvLog = join(dir, `argv-${kind}`);
  const wrapper = join(dir, `wrap-${kind}`);
  // One write per command (O_APPEND keeps it whole), so commands the lander runs side by side
  // are recorded apart: fields end in \x1f, commands in \x1e.
  writeFileSync(
    wrapper,
    `#!/bin/sh\nline=$(for a in "$@"; do printf '%s\\037' "$a"; done)\nprintf '%s\\036' "$line" >> "${argvLog}"\nexec git "$@"\n`,
  );
  chmodSync(wrapper, 0o755);
  await landOnce(rec.bare, rec.checkout, kind, t, wrapper, () => writeFileSync(argvLog, ''));
  const commands = readFileSync(argvLog, 'utf8')
    .split('\x1e')
    .filter((c) => c.length > 0)
    .map((c) => c.split('\x1f').slice(0, -1));
  if (process.env.BENCH_LANDING_SHOW) console.log(commands.map((c) => `  git ${c.join(' ')}`).join('\n'));
  const quote = (a: string) => `'${a.replace(/'/g, `'\\''`)}'`;
  const home = (co: string) => join(co, '.git', 'treadle-home');
  const script = (co: string, bare: string) =>
    [
      'set -e',
      `export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null GIT_ATTR_NOSYSTEM=1 GIT_TERMINAL_PROMPT=0 GIT_PAGER=cat GIT_EDITOR=: LC_ALL=C LANG=C HOME=${quote(home(co))} XDG_CONFIG_HOME=${quote(join(home(co), 'xdg'))}`,
      `cd ${quote(co)}`,
      ...commands.map(
        (argv) =>
          `git ${argv.map((a) => quote(a.replaceAll(rec.bare, bare))).join(' ')} >/dev/null 2>&1 || true`,
      ),
    ].join('\n');
  const mine: number[] = [];
  const bare: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const a = copy(dir, t, checkout, `a-${kind}-${i}`);
    mine.push(await landOnce(a.bare, a.checkout, kind, t));
    const b = copy(dir, t, checkout, `b-${kind}-${i}`);
    const file = join(dir, `script-${kind}-${i}.sh`);
    writeFileSync(file, script(b.checkout, b.bare));
    const start = performance.now();
    execFileSync('sh', [file], { env: { PATH: ENV.PATH } });
    bare.push(performance.now() - start);
    for (const p of [a, b]) {
      rmSync(p.bare, { recursive: true, force: true });
      rmSync(p.checkout, { recursive: true, force: true });
    }
  }
  return [percentile(mine, 50), percentile(bare, 50)];
}

async function timeOne(dir: string, t: Template, checkout: string, kind: 'check'): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const c = copy(dir, t, checkout, `chk-${i}`);
    times.push(await landOnce(c.bare, c.checkout, kind, t));
    rmSync(c.bare, { recursive: true, force: true });
    rmSync(c.checkout, { recursive: true, force: true });
  }
  return percentile(times, 50);
}

/** `targets` targets with CHANGES merges each queued at once; ms until every result is in. */
async function queued(dir: string, t: Template, targets: number): Promise<number> {
  const work = mkdtempSync(join(dir, `q${targets}-`));
  const db = openDatabase(join(work, 'treadle.db'));
  const uow = new UnitOfWork(db);
  const queue = new Queue(new QueueStore(db), log, {}, uow);
  const tgs = Array.from({ length: targets }, (_, i) => {
    const bare = join(work, `r${i}.git`);
    cpSync(t.bare, bare, { recursive: true });
    return { ...target(`t${i}`, bare, join(work, `co${i}`)), repo: `did:plc:bench${i}` };
  });
  const landers = new Map(tgs.map((tg) => [tg.name, new Lander(tg, inheritedGitEnv(), log)]));
  await Promise.all([...landers.values()].map((l) => l.provision()));
  const handler = new LandingHandler({ targets: tgs, landers, store: new LandingStore(db), uow, queue, log });
  let answered = 0;
  let failed = 0;
  queue.consume(MERGE_TOPIC, 'land-merge', (m) => handler.handle(m), { visibilityTimeoutMs: 900_000 });
  queue.consume(CHECK_TOPIC, 'land-check', (m) => handler.handle(m));
  queue.consume<{ outcome: string }>(`${MERGE_TOPIC}.result`, 'bench', (m) => {
    answered++;
    if (m.payload.outcome !== 'SUCCEEDED') failed++;
  });
  queue.start();
  const start = performance.now();
  for (const tg of tgs)
    for (let c = 0; c < CHANGES; c++) {
      const req: LandRequest = {
        id: `${tg.name}-${c}`,
        target: tg.name,
        steps: [
          {
            stepId: 's',
            strategy: 'REBASE',
            change: {
              uris: [
                formatCommitUri({
                  host: 'knot.bench',
                  repoPath: tg.repo,
                  ref: `refs/heads/c${c}`,
                  sha: t.changes[c]!,
                }),
              ],
            },
          },
        ],
      };
      queue.publish(MERGE_TOPIC, pk(tg.repo, 'main'), req.id, req);
    }
  while (answered < targets * CHANGES) await new Promise((r) => setTimeout(r, 20));
  const ms = performance.now() - start;
  await queue.stop(5_000);
  db.close();
  if (failed > 0) throw new Error(`${failed} queued merges failed`);
  rmSync(work, { recursive: true, force: true });
  return ms;
}
