/**
 * Starts a pipeline, whoever built it (a knot's record adopted by Intake, or treadle's own from a
 * ref update or pull request): the `sh.tangled.pipeline` frame on /events, the pipeline and
 * workflow rows, each workflow's `pending` (and dispatch message) or single `failed`, and the
 * dedup key it runs under. The caller runs it inside `events.transaction`, so it all commits at once.
 */
import type { RecordValidator } from '../atproto/lexicons.ts';
import type { PipelineOrigin, PipelineStore } from '../db/pipeline-store.ts';
import type { RepoRow, RepoStore } from '../db/repo-store.ts';
import type { RunKeyStore } from '../db/run-key-store.ts';
import type { EventLog } from '../events/index.ts';
import type { WorkflowFetcher } from '../git/workflow-fetcher.ts';
import type { DefaultBranches } from '../knots/default-branch.ts';
import type { Logger } from '../logger.ts';
import type { Queue } from '../queue/index.ts';
import { type RoutingTable, routeWorkflow } from './routing.ts';
import { PIPELINE_NSID, type StatusWriter } from './status-writer.ts';

export const DISPATCH_TOPIC = 'workflow.dispatch';

export interface DispatchMessage {
  knot: string;
  rkey: string;
  name: string;
}

export interface PipelineRecord {
  $type: string;
  triggerMetadata: {
    kind: string;
    repo: { knot: string; did: string; repo?: string; repoDid?: string; defaultBranch?: string };
    push?: { ref: string; newSha: string; oldSha: string };
    pullRequest?: {
      sourceBranch: string;
      targetBranch: string;
      sourceSha: string;
      action: string;
      sourceRepo?: string;
      pull?: string;
    };
    manual?: {
      sha?: string;
      ref?: string;
      sourceRepo?: string;
      inputs?: Array<{ key: string; value: string }>;
    };
  };
  workflows: Array<{ name: string; engine: string; raw: string; clone?: unknown }>;
}

export interface StartRequest {
  knot: string;
  rkey: string;
  repo: RepoRow;
  record: PipelineRecord;
  origin: PipelineOrigin;
  /** The dedup key (§4.5) this run claims; none for manual runs. */
  runKey?: string;
}

export interface Started {
  workflows: number;
  pending: number;
  created: bigint;
}

/** What the intakes that build pipelines themselves (pushes, pull requests) share. */
export interface BuilderDeps {
  repos: RepoStore;
  runKeys: RunKeyStore;
  events: EventLog;
  queue: Queue;
  starter: PipelineStarter;
  fetcher: WorkflowFetcher;
  defaultBranches: DefaultBranches;
  validator: RecordValidator;
  log: Logger;
}

export interface StarterDeps {
  store: PipelineStore;
  runKeys: RunKeyStore;
  events: EventLog;
  queue: Queue;
  statuses: StatusWriter;
  routing: RoutingTable;
}

/** The commit a pipeline builds, as the ci API reports and filters it. */
export function pipelineCommit(record: PipelineRecord): string | null {
  const t = record.triggerMetadata;
  return t.push?.newSha ?? t.pullRequest?.sourceSha ?? t.manual?.sha ?? null;
}

export class PipelineStarter {
  private readonly d: StarterDeps;

  constructor(deps: StarterDeps) {
    this.d = deps;
  }

  /** Call inside `events.transaction`. */
  start(req: StartRequest, commit: string | null = pipelineCommit(req.record)): Started {
    const { store, events, queue, statuses } = this.d;
    const { knot, rkey, repo, record } = req;
    const routes = record.workflows.map((w) => ({
      w,
      route: routeWorkflow(w.raw, w.engine, this.d.routing),
    }));
    const { created } = events.append(PIPELINE_NSID, rkey, record);
    store.insertPipeline({
      knot,
      rkey,
      repoOwner: repo.owner,
      repoName: repo.name,
      repoDid: repo.repoDid,
      kind: record.triggerMetadata.kind,
      commit,
      created,
      origin: req.origin,
      record: JSON.stringify(record),
      receivedAt: Date.now(),
    });
    if (req.runKey) {
      this.d.runKeys.put(req.runKey, { state: 'run', knot, rkey });
      this.d.runKeys.expire();
    }
    let pending = 0;
    for (const { w, route } of routes) {
      const key = { knot, rkey, name: w.name };
      store.insertWorkflow({
        ...key,
        engine: w.engine,
        runner: route.ok ? route.runner : null,
        options: JSON.stringify(route.ok ? route.options : {}),
      });
      if (!route.ok) {
        statuses.write(key, { status: 'failed', error: route.error, exitCode: -1 });
        continue;
      }
      statuses.write(key, { status: 'pending' });
      const id = `${knot}/${rkey}/${w.name}`;
      queue.publish<DispatchMessage>(DISPATCH_TOPIC, id, id, key);
      pending++;
    }
    return { workflows: routes.length, pending, created };
  }
}
