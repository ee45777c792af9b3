/**
 * `treadle land check|merge|promote`: queues a landing request beside the running daemon (or
 * for its next start) and, with `--wait`, waits for the answer. Exit 0 when it succeeded, 1 when
 * it failed (the reason on stderr) or the request is refused, 2 on a usage error.
 */
import { parseArgs } from 'node:util';
import { RecordValidator } from '../atproto/lexicons.ts';
import { loadAdminConfig } from '../config.ts';
import { openExistingDatabase } from '../db/database.ts';
import { LandingStore } from '../db/landing-store.ts';
import { PipelineStore } from '../db/pipeline-store.ts';
import { QueueStore } from '../db/queue-store.ts';
import { RepoStore } from '../db/repo-store.ts';
import { InvalidRequestError } from '../errors.ts';
import type { LandResult } from '../landing/contract.ts';
import { CHECK_TOPIC, MERGE_TOPIC } from '../landing/contract.ts';
import { pullBody } from '../landing/pulls.ts';
import { readSubmission, submit } from '../landing/requests.ts';
import { createLogger } from '../logger.ts';
import { PullReader } from '../pipelines/pull-reader.ts';
import { Queue } from '../queue/index.ts';
import { EXIT } from './exit-codes.ts';
import type { Output } from './output.ts';

export const LAND_USAGE = `usage:
  treadle land check   --target <name> <commit-uri|sha>… [--strategy S] [--wait] [--json]
  treadle land merge   --target <name> <commit-uri|sha>… [--strategy S] [--wait] [--json]
  treadle land promote --target <name> <commit-uri|sha> [--wait] [--json]
  treadle land pull    --target <name> <at-uri of a sh.tangled.repo.pull> [--check] [--require-green] [--wait] [--json]
<commit-uri> is git://<knot>/<repo>/<encoded ref>/<sha>; a bare sha names a commit of the
target's repo. Strategies: DEFAULT (the target's), REBASE, SQUASH_REBASE, MERGE, PROMOTE.
options: --db <file> (default: TREADLE_DB), --timeout <seconds> for --wait (default 600)`;

export async function landCommand(args: string[], env: NodeJS.ProcessEnv, io: Output): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      target: { type: 'string' },
      strategy: { type: 'string' },
      wait: { type: 'boolean' },
      json: { type: 'boolean' },
      timeout: { type: 'string' },
      check: { type: 'boolean' },
      'require-green': { type: 'boolean' },
      db: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    io.out(LAND_USAGE);
    return EXIT.ok;
  }
  const [sub, ...commits] = positionals;
  const timeoutS = values.timeout === undefined ? 600 : Number(values.timeout);
  const usable =
    ['check', 'merge', 'promote', 'pull'].includes(sub ?? '') &&
    (sub === 'pull' ? commits.length === 1 : !values.check && !values['require-green']) &&
    values.target !== undefined &&
    commits.length > 0 &&
    (sub !== 'promote' || (commits.length === 1 && values.strategy === undefined)) &&
    timeoutS > 0;
  if (!usable) {
    io.err(LAND_USAGE);
    return EXIT.usage;
  }
  const { config } = loadAdminConfig(env);
  if (sub === 'pull' && !config.owner) {
    io.err(
      'treadle: land pull needs TREADLE_OWNER (as the daemon has it) to know which repos are served here',
    );
    return EXIT.config;
  }
  const db = openExistingDatabase(values.db ?? config.db);
  try {
    let submission: ReturnType<typeof readSubmission>;
    try {
      const body =
        sub === 'pull'
          ? await pullBody(
              {
                reader: new PullReader({
                  identity: { plcUrl: config.plcUrl, dev: config.dev },
                  validator: new RecordValidator(),
                }),
                repos: new RepoStore(db, config.owner!),
                pipelines: new PipelineStore(db),
              },
              {
                target: values.target,
                pull: commits[0],
                dryRun: values.check === true,
                requireGreen: values['require-green'] === true,
                ...(values.strategy ? { strategy: values.strategy } : {}),
              },
              config.landing.targets,
            )
          : {
              target: values.target,
              strategy: sub === 'promote' ? 'PROMOTE' : (values.strategy ?? 'DEFAULT'),
              commits,
              dryRun: sub === 'check',
            };
      submission = readSubmission(body, config.landing.targets, () => 'localhost');
    } catch (err) {
      if (!(err instanceof InvalidRequestError)) throw err;
      io.err(`treadle: ${err.message}`);
      return EXIT.failure;
    }
    const queueStore = new QueueStore(db);
    // The daemon subscribes when it starts; subscribing here keeps a request made before that.
    queueStore.subscribe(CHECK_TOPIC, 'land-check', Date.now());
    queueStore.subscribe(MERGE_TOPIC, 'land-merge', Date.now());
    submit(new Queue(queueStore, createLogger('silent')), submission);
    const id = submission.request.id;
    if (!values.wait) {
      io.out(values.json ? JSON.stringify({ id }) : `queued ${id}; the daemon runs it`);
      return EXIT.ok;
    }
    const store = new LandingStore(db);
    const deadline = Date.now() + timeoutS * 1000;
    for (;;) {
      const done = store.result(id);
      if (done) return report(JSON.parse(done.result) as LandResult, values.json ?? false, io);
      if (Date.now() > deadline) {
        io.err(`treadle: no answer for ${id} after ${timeoutS} s (is the daemon running?); it stays queued`);
        return EXIT.failure;
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  } finally {
    db.close();
  }
}

function report(r: LandResult, json: boolean, io: Output): number {
  if (json) io.out(JSON.stringify(r, null, 2));
  else {
    io.out(`${r.outcome} ${r.id} (target ${r.target})`);
    for (const step of r.steps)
      io.out(
        `  ${step.stepId}: ${step.outputs.length > 0 ? step.outputs.map((o) => o.id).join(' ') : step.alreadyPresent ? 'already present' : 'no outputs'}`,
      );
  }
  if (r.outcome === 'FAILED') {
    io.err(`treadle: ${r.reason ?? 'failed'}`);
    return EXIT.failure;
  }
  return EXIT.ok;
}
