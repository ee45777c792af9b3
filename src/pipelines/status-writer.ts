/**
 * Writes `sh.tangled.pipeline.status` records for one workflow, keeping the wire's rules:
 * pending → running → one terminal status, a terminal status is final, and no two statuses of
 * one workflow share a `createdAt` second (the appview orders them by seconds), so a status
 * that would land in the same second as the previous one waits for the next second.
 * `error` and `exitCode` go with `failed`, and with a `cancelled` a user asked for.
 */
import { TID } from '@atproto/common-web';
import type { PipelineStore, WorkflowKey } from '../db/pipeline-store.ts';
import type { UnitOfWork } from '../db/unit-of-work.ts';
import type { EventLog } from '../events/index.ts';
import type { Metrics } from '../metrics/metrics.ts';
import type { Queue } from '../queue/index.ts';
import {
  isTerminal,
  pipelineSubject,
  STATUS_NSID,
  statusRank,
  type WireStatus,
  WORKFLOW_STATUS_TOPIC,
  type WorkflowStatusChanged,
} from './pipeline.ts';

export interface StatusUpdate {
  status: WireStatus;
  error?: string;
  exitCode?: number;
}

export type WriteResult =
  | { written: true; rkey: string }
  /** Not written: it would share a second with the previous status; try again after `waitMs`. */
  | { written: false; waitMs: number }
  /** Not written and never will be: the workflow is past this status already. */
  | { written: false; stale: true };

export interface StatusWriterDeps {
  store: PipelineStore;
  events: EventLog;
  queue: Queue;
  uow: UnitOfWork;
  clock?: () => number;
  metrics?: Pick<Metrics, 'workflowStatuses' | 'statusWrite' | 'triggerToRunning'>;
}

/**
 * Each status is written once, in one transaction: the workflow row, the `/events` frame and
 * the `workflow.status` message. So no status reaches the appview without reaching every
 * consumer of the topic, and a redelivered write finds the row moved on and writes nothing.
 */
export class StatusWriter {
  private readonly d: StatusWriterDeps;
  private readonly clock: () => number;

  constructor(deps: StatusWriterDeps) {
    this.d = deps;
    this.clock = deps.clock ?? Date.now;
  }

  /** Writes the status if the rules allow it now; joins the caller's unit of work, if any. */
  write(key: WorkflowKey, update: StatusUpdate): WriteResult {
    const started = performance.now();
    return this.d.uow.run(() => {
      const result = this.writeNow(key, update);
      if (result.written)
        this.d.uow.afterCommit(() =>
          this.d.metrics?.statusWrite.observe((performance.now() - started) / 1000),
        );
      return result;
    });
  }

  private writeNow(key: WorkflowKey, update: StatusUpdate): WriteResult {
    const { store } = this.d;
    const row = store.workflow(key);
    if (!row) throw new Error(`workflow ${key.knot}/${key.rkey}/${key.name} is not recorded`);
    if (
      row.status !== null &&
      (isTerminal(row.status) || statusRank(update.status) <= statusRank(row.status))
    ) {
      return { written: false, stale: true };
    }
    const pipeline = store.pipeline(key.knot, key.rkey);
    if (!pipeline) throw new Error(`pipeline ${key.knot}/${key.rkey} is not recorded`);
    const now = this.clock();
    const second = Math.floor(now / 1000);
    if (row.statusAt !== null && second <= row.statusAt) {
      return { written: false, waitMs: (row.statusAt + 1) * 1000 - now };
    }
    const subject = pipelineSubject(pipeline);
    // A failure always says why; a cancellation does when someone asked for it (2026 spec §2).
    const failed = update.status === 'failed' || (update.status === 'cancelled' && !!update.error);
    const record = {
      $type: STATUS_NSID,
      pipeline: subject.pipeline,
      workflow: key.name,
      status: update.status,
      // Whole seconds, never later than the write (the appview takes min(now, createdAt)).
      createdAt: new Date(second * 1000).toISOString().replace('.000Z', 'Z'),
      ...(failed ? { error: update.error ?? 'workflow failed', exitCode: update.exitCode ?? -1 } : {}),
    };
    const rkey = TID.nextStr();
    this.d.events.append(STATUS_NSID, rkey, record);
    store.setStatus(key, {
      status: update.status,
      statusAt: second,
      error: failed ? record.error : undefined,
      exitCode: failed ? record.exitCode : undefined,
    });
    const message: WorkflowStatusChanged = {
      ...subject,
      workflow: key.name,
      status: update.status,
      createdAt: record.createdAt,
      rkey,
      ...(failed ? { error: record.error, exitCode: record.exitCode } : {}),
    };
    this.d.queue.publish(WORKFLOW_STATUS_TOPIC, subject.pipeline, `${key.name}/${update.status}`, message);
    const metrics = this.d.metrics;
    if (metrics)
      this.d.uow.afterCommit(() => {
        metrics.workflowStatuses.inc({ runner: row.runner ?? 'none', status: update.status });
        if (update.status === 'running' && row.status === 'pending' && row.statusAt !== null)
          metrics.triggerToRunning.observe(second - row.statusAt);
      });
    return { written: true, rkey };
  }
}
