/**
 * Cancelling and re-running pipelines, for the XRPC methods and for `treadle runs` alike.
 *
 * A cancel is recorded on each workflow's row and the workflow's dispatch message is woken; the
 * dispatcher asks the runner to stop and writes `cancelled` (pipelines/dispatch.ts). A retry is a
 * queue message naming the pipeline to copy and the TID the copy gets, so the command line can
 * ask for one while the daemon runs, and the daemon starts it (in its own event log) as soon as
 * it sees the message. Both only touch the database, so they are safe from either process.
 */
import { TID } from '@atproto/common-web';
import type { PipelineRow, PipelineStore } from '../db/pipeline-store.ts';
import type { RepoRow, RepoStore } from '../db/repo-store.ts';
import type { UnitOfWork } from '../db/unit-of-work.ts';
import type { Logger } from '../logger.ts';
import type { WireStatus } from '../pipelines/pipeline.ts';
import { isTerminal, type PipelineRecord, pipelineUri } from '../pipelines/pipeline.ts';
import { DISPATCH_TOPIC, type PipelineStarter } from '../pipelines/starter.ts';
import type { Queue } from '../queue/index.ts';

export const RETRY_TOPIC = 'pipeline.retry';
export const RETRY_GROUP = 'runs';

export interface RetryMessage {
  knot: string;
  /** The pipeline to run again. */
  rkey: string;
  /** The TID the new pipeline gets, minted when the retry was asked for. */
  newRkey: string;
  /** Who asked: a DID, or `cli` for the command line. */
  by: string;
}

export interface CancelOutcome {
  /** Workflows whose cancel was recorded now. */
  cancelled: string[];
  /** Workflows someone asked to cancel before, not finished yet. */
  cancelling: string[];
  /** Workflows that had finished already: left as they were. */
  finished: Array<{ name: string; status: WireStatus }>;
  /** Names asked for that the pipeline does not have. */
  unknown: string[];
}

/**
 * Asks to cancel the pipeline's workflows (all, or those named). Finished ones stay as they are
 * and are reported; the first request for a workflow stands. A name the pipeline does not have
 * changes nothing and is reported in `unknown`.
 */
export function cancelWorkflows(
  store: PipelineStore,
  queue: Pick<Queue, 'wake'>,
  pipeline: Pick<PipelineRow, 'knot' | 'rkey'>,
  names: readonly string[] | undefined,
  by: string,
): CancelOutcome {
  const all = store.workflowsOf(pipeline.knot, pipeline.rkey);
  const wanted = names?.length ? new Set(names) : undefined;
  const outcome: CancelOutcome = {
    cancelled: [],
    cancelling: [],
    finished: [],
    unknown: wanted ? [...wanted].filter((n) => !all.some((w) => w.name === n)) : [],
  };
  if (outcome.unknown.length > 0) return outcome;
  for (const w of all) {
    if (wanted && !wanted.has(w.name)) continue;
    if (w.status && isTerminal(w.status)) {
      outcome.finished.push({ name: w.name, status: w.status });
      continue;
    }
    if (!store.requestCancel(w, by)) {
      outcome.cancelling.push(w.name);
      continue;
    }
    outcome.cancelled.push(w.name);
    queue.wake(DISPATCH_TOPIC, `${w.knot}/${w.rkey}/${w.name}`);
  }
  return outcome;
}

/** In words, for a 400 or the command line: why nothing was cancelled. */
export function nothingToCancel(outcome: CancelOutcome): string | undefined {
  if (outcome.cancelled.length > 0 || outcome.cancelling.length > 0) return undefined;
  if (outcome.finished.length === 0) return 'the pipeline has no workflows to cancel';
  const list = outcome.finished.map((f) => `${f.name} (${f.status})`).join(', ');
  return `nothing to cancel: already finished: ${list}`;
}

/** Queues a re-run of `pipeline` under a fresh TID; returns the new pipeline's AT-URI. */
export function queueRetry(
  queue: Pick<Queue, 'publish'>,
  pipeline: Pick<PipelineRow, 'knot' | 'rkey'>,
  by: string,
): { rkey: string; uri: string } {
  const newRkey = TID.nextStr();
  const message: RetryMessage = { knot: pipeline.knot, rkey: pipeline.rkey, newRkey, by };
  queue.publish(RETRY_TOPIC, `${pipeline.knot}/${pipeline.rkey}`, newRkey, message);
  return { rkey: newRkey, uri: pipelineUri(pipeline.knot, newRkey) };
}

export interface RetrierDeps {
  store: PipelineStore;
  repos: RepoStore;
  uow: UnitOfWork;
  starter: PipelineStarter;
  log: Logger;
}

/**
 * Starts queued retries: the same trigger and workflow files as the pipeline copied (the files
 * at a commit never change), under the minted TID, as a pipeline treadle created. Starting twice
 * starts once.
 */
export class Retrier {
  private readonly d: RetrierDeps;

  constructor(deps: RetrierDeps) {
    this.d = deps;
  }

  handle(m: RetryMessage): void {
    const log = this.d.log.child({ knot: m.knot, rkey: m.rkey, pipeline: m.newRkey, by: m.by });
    const source = this.d.store.pipeline(m.knot, m.rkey);
    if (!source) {
      log.warn('retry not run: the pipeline is not recorded');
      return;
    }
    const repo = this.repoOf(source);
    if (!repo) {
      log.warn('retry not run: its repository is no longer served here');
      return;
    }
    const record = JSON.parse(source.record) as PipelineRecord;
    const started = this.d.uow.run(() => {
      if (this.d.store.pipeline(m.knot, m.newRkey)) return undefined;
      return this.d.starter.start(
        { knot: m.knot, rkey: m.newRkey, repo, record, origin: 'spindle' },
        source.commit,
      );
    });
    if (started) log.info({ workflows: started.workflows }, 'pipeline re-run');
  }

  private repoOf(p: PipelineRow): RepoRow | undefined {
    return p.repoDid
      ? this.d.repos.servedRepoByDid(p.repoDid)
      : this.d.repos.servedRepoByName(p.knot, p.repoOwner, p.repoName);
  }
}
