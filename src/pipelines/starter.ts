/**
 * Starts a pipeline, whoever built it (a knot's record adopted by Intake, or treadle's own from a
 * ref update, pull request or trigger): the `sh.tangled.pipeline` frame on /events, the pipeline
 * and workflow rows, the `pipeline.started` message, each workflow's `pending` (and dispatch
 * message) or single `failed`, and the dedup key it runs under. The caller runs it inside a
 * unit of work, so it all commits at once.
 */
import type { PipelineOrigin, PipelineStore } from '../db/pipeline-store.ts';
import type { RepoRow } from '../db/repo-store.ts';
import type { RunKeyStore } from '../db/run-key-store.ts';
import type { UnitOfWork } from '../db/unit-of-work.ts';
import type { EventLog } from '../events/index.ts';
import type { Metrics } from '../metrics/metrics.ts';
import type { Queue } from '../queue/index.ts';
import {
  PIPELINE_NSID,
  PIPELINE_STARTED_TOPIC,
  type PipelineRecord,
  type PipelineStarted,
  pipelineCommit,
  pipelineSubject,
} from './pipeline.ts';
import { type RoutingTable, routeWorkflow } from './routing.ts';
import type { StatusWriter } from './status-writer.ts';

export const DISPATCH_TOPIC = 'workflow.dispatch';

export interface DispatchMessage {
  knot: string;
  rkey: string;
  name: string;
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

export interface StarterDeps {
  store: PipelineStore;
  runKeys: RunKeyStore;
  events: EventLog;
  queue: Queue;
  statuses: StatusWriter;
  routing: RoutingTable;
  /** With `uow`: counts pipelines started, once their transaction commits. */
  metrics?: Pick<Metrics, 'pipelinesAccepted'>;
  uow?: UnitOfWork;
}

const TRIGGERS = new Set(['push', 'pull_request', 'manual']);

export class PipelineStarter {
  private readonly d: StarterDeps;

  constructor(deps: StarterDeps) {
    this.d = deps;
  }

  /** Call inside a unit of work. */
  start(req: StartRequest, commit: string | null = pipelineCommit(req.record)): Started {
    const { store, events, queue, statuses } = this.d;
    const { knot, rkey, repo, record } = req;
    const routes = record.workflows.map((w) => ({
      w,
      route: routeWorkflow(w.raw, w.engine, this.d.routing),
    }));
    const { created } = events.append(PIPELINE_NSID, rkey, record);
    const row = {
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
    };
    store.insertPipeline(row);
    const subject = pipelineSubject(row);
    queue.publish<PipelineStarted>(PIPELINE_STARTED_TOPIC, subject.pipeline, subject.pipeline, {
      ...subject,
      workflows: record.workflows.map((w) => w.name),
      observedAt: row.receivedAt,
    });
    const { metrics, uow } = this.d;
    if (metrics && uow) {
      const trigger = TRIGGERS.has(row.kind) ? row.kind : 'other';
      uow.afterCommit(() => metrics.pipelinesAccepted.inc({ trigger }));
    }
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
