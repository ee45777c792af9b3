/**
 * `treadle runs …`: pipelines for operators. Works on the database file directly and is safe
 * while `serve` runs: a cancel is recorded on the workflows and their dispatch is woken, a retry
 * is queued with its new TID; the daemon carries both out (at once when it runs, else when it
 * next starts), exactly as for the XRPC methods.
 */
import { parseArgs } from 'node:util';
import { loadAdminConfig } from '../config.ts';
import { openExistingDatabase } from '../db/database.ts';
import { type PipelineRow, PipelineStore } from '../db/pipeline-store.ts';
import { QueueStore } from '../db/queue-store.ts';
import { createLogger } from '../logger.ts';
import { isTerminal, parsePipelineUri, pipelineUri } from '../pipelines/pipeline.ts';
import { Queue } from '../queue/index.ts';
import {
  cancelWorkflows,
  nothingToCancel,
  queueRetry,
  RETRY_GROUP,
  RETRY_TOPIC,
} from '../runs/run-control.ts';
import { EXIT } from './exit-codes.ts';
import { type Output, table } from './output.ts';

export const RUNS_USAGE = `usage:
  treadle runs list [--active] [--limit N] [--json]   newest pipelines first, with each workflow's status
  treadle runs cancel <pipeline> [workflow…]          cancel a pipeline's unfinished workflows (or those named)
  treadle runs retry <pipeline>                        run a pipeline again under a new id
<pipeline> is a TID, <knot>/<tid> or the pipeline's AT-URI
options: --db <file> (default: TREADLE_DB)`;

const BY = 'cli';

export function runsCommand(args: string[], env: NodeJS.ProcessEnv, io: Output): number {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      active: { type: 'boolean' },
      limit: { type: 'string' },
      json: { type: 'boolean' },
      db: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    io.out(RUNS_USAGE);
    return EXIT.ok;
  }
  const [sub, target, ...names] = positionals;
  const limit = values.limit === undefined ? 20 : Number(values.limit);
  const usable =
    (sub === 'list' && target === undefined && Number.isInteger(limit) && limit >= 1 && limit <= 1000) ||
    (sub === 'cancel' && target !== undefined) ||
    (sub === 'retry' && target !== undefined && names.length === 0);
  if (!usable) {
    io.err(RUNS_USAGE);
    return EXIT.usage;
  }
  const db = openExistingDatabase(values.db ?? loadAdminConfig(env).config.db);
  try {
    const store = new PipelineStore(db);
    if (sub === 'list') return list(store, limit, values.active ?? false, values.json ?? false, io);
    const pipeline = find(store, target!);
    if (!pipeline) {
      io.err(`treadle: no pipeline ${target}`);
      return EXIT.failure;
    }
    const queueStore = new QueueStore(db);
    const queue = new Queue(queueStore, createLogger('silent'));
    if (sub === 'cancel') return cancel(store, queue, pipeline, names, io);
    // The daemon subscribes when it starts; subscribing here keeps a retry asked for before that.
    queueStore.subscribe(RETRY_TOPIC, RETRY_GROUP, Date.now());
    const { uri } = queueRetry(queue, pipeline, BY);
    io.out(`retry queued as ${uri}; the daemon starts it`);
    return EXIT.ok;
  } finally {
    db.close();
  }
}

function find(store: PipelineStore, target: string): PipelineRow | undefined {
  const uri = parsePipelineUri(target);
  if (uri) return store.pipeline(uri.knot, uri.rkey);
  const slash = target.lastIndexOf('/');
  if (slash > 0) return store.pipeline(target.slice(0, slash), target.slice(slash + 1));
  return store.pipelineByTid(target);
}

function cancel(
  store: PipelineStore,
  queue: Queue,
  pipeline: PipelineRow,
  names: string[],
  io: Output,
): number {
  const outcome = cancelWorkflows(store, queue, pipeline, names, BY);
  if (outcome.unknown.length > 0) {
    io.err(`treadle: pipeline ${pipeline.rkey} has no workflow ${outcome.unknown.join(', ')}`);
    return EXIT.failure;
  }
  for (const f of outcome.finished) io.out(`${f.name}: already finished (${f.status}), left as it is`);
  for (const n of outcome.cancelling) io.out(`${n}: a cancel was already requested`);
  for (const n of outcome.cancelled) io.out(`${n}: cancel requested; the daemon stops it`);
  const nothing = nothingToCancel(outcome);
  if (nothing) {
    io.err(`treadle: ${nothing}`);
    return EXIT.failure;
  }
  return EXIT.ok;
}

function list(store: PipelineStore, limit: number, active: boolean, json: boolean, io: Output): number {
  const rows = store.recentPipelines(limit, active).map((p) => ({
    pipeline: pipelineUri(p.knot, p.rkey),
    repo: p.repoDid ?? `${p.repoOwner}/${p.repoName}`,
    kind: p.kind,
    commit: p.commit,
    createdAt: new Date(Number(p.created / 1_000_000n)).toISOString(),
    workflows: store.workflowsOf(p.knot, p.rkey).map((w) => ({
      name: w.name,
      status: w.status ?? 'pending',
      ...(w.error ? { error: w.error } : {}),
      ...(w.cancelRequestedBy && !isTerminal(w.status) ? { cancelRequestedBy: w.cancelRequestedBy } : {}),
    })),
  }));
  if (json) {
    io.out(JSON.stringify(rows, null, 2));
    return EXIT.ok;
  }
  if (rows.length === 0) {
    io.out(active ? 'no active pipelines' : 'no pipelines yet');
    return EXIT.ok;
  }
  const lines = table(
    ['PIPELINE', 'REPO', 'KIND', 'COMMIT', 'CREATED', 'WORKFLOWS'],
    rows.map((r) => [
      r.pipeline,
      r.repo,
      r.kind,
      r.commit?.slice(0, 12) ?? '-',
      r.createdAt.replace(/\.\d{3}Z$/, 'Z'),
      r.workflows
        .map((w) => `${w.name}:${w.status}${'cancelRequestedBy' in w ? ' (cancelling)' : ''}`)
        .join(' '),
    ]),
  );
  for (const line of lines) io.out(line);
  return EXIT.ok;
}
