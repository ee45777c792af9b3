/**
 * Writes `sh.tangled.pipeline.status` records for one workflow, keeping the wire's rules:
 * pending → running → one terminal status, a terminal status is final, and no two statuses of
 * one workflow share a `createdAt` second (the appview orders them by seconds), so a status
 * that would land in the same second as the previous one waits for the next second.
 * `error` and `exitCode` go with `failed`, and with a `cancelled` a user asked for.
 */
import { TID } from '@atproto/common-web';
import type { WireStatus } from '../../providers/runner.ts';
import type { PipelineStore, WorkflowKey } from '../db/pipeline-store.ts';
import type { EventLog } from '../events/index.ts';

export const STATUS_NSID = 'sh.tangled.pipeline.status';
export const PIPELINE_NSID = 'sh.tangled.pipeline';

const RANK: Record<WireStatus, number> = {
  pending: 0,
  running: 1,
  success: 2,
  failed: 2,
  timeout: 2,
  cancelled: 2,
};

export function isTerminal(status: WireStatus | null | undefined): boolean {
  return status !== null && status !== undefined && RANK[status] === 2;
}

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

export function pipelineUri(knot: string, rkey: string): string {
  return `at://did:web:${knot}/${PIPELINE_NSID}/${rkey}`;
}

export class StatusWriter {
  private readonly store: PipelineStore;
  private readonly events: EventLog;
  private readonly clock: () => number;
  private readonly onWritten: (key: WorkflowKey, status: WireStatus) => void;

  constructor(options: {
    store: PipelineStore;
    events: EventLog;
    clock?: () => number;
    onWritten?: (key: WorkflowKey, status: WireStatus) => void;
  }) {
    this.store = options.store;
    this.events = options.events;
    this.clock = options.clock ?? Date.now;
    this.onWritten = options.onWritten ?? (() => {});
  }

  /** Writes the status if the rules allow it now; the caller runs inside `events.transaction` or not. */
  write(key: WorkflowKey, update: StatusUpdate): WriteResult {
    const result = this.events.transaction(() => this.writeNow(key, update));
    if (result.written) this.onWritten(key, update.status);
    return result;
  }

  private writeNow(key: WorkflowKey, update: StatusUpdate): WriteResult {
    const row = this.store.workflow(key);
    if (!row) throw new Error(`workflow ${key.knot}/${key.rkey}/${key.name} is not recorded`);
    if (row.status !== null && (isTerminal(row.status) || RANK[update.status] <= RANK[row.status])) {
      return { written: false, stale: true };
    }
    const now = this.clock();
    const second = Math.floor(now / 1000);
    if (row.statusAt !== null && second <= row.statusAt) {
      return { written: false, waitMs: (row.statusAt + 1) * 1000 - now };
    }
    // A failure always says why; a cancellation does when someone asked for it (2026 spec §2).
    const failed = update.status === 'failed' || (update.status === 'cancelled' && !!update.error);
    const record = {
      $type: STATUS_NSID,
      pipeline: pipelineUri(key.knot, key.rkey),
      workflow: key.name,
      status: update.status,
      // Whole seconds, never later than the write (the appview takes min(now, createdAt)).
      createdAt: new Date(second * 1000).toISOString().replace('.000Z', 'Z'),
      ...(failed ? { error: update.error ?? 'workflow failed', exitCode: update.exitCode ?? -1 } : {}),
    };
    const rkey = TID.nextStr();
    this.events.append(STATUS_NSID, rkey, record);
    this.store.setStatus(key, {
      status: update.status,
      statusAt: second,
      error: failed ? record.error : undefined,
      exitCode: failed ? record.exitCode : undefined,
    });
    return { written: true, rkey };
  }
}
