/**
 * Dispatch: one queue message per workflow carries it from `pending` to a terminal status.
 * The handler triggers the build once (the runner deduplicates on the request id, and the
 * build id is stored before anything else happens), then polls the runner with queue `hold()`
 * — no timers, so a restart resumes every poll where it was. A build the runner no longer
 * knows (its state died with a restart) ends `failed` with `treadle restarted`.
 */
import type { BuildRunner, BuildStatus } from '../../providers/runner.ts';
import { TERMINAL_STATES, wireStatus } from '../../providers/runner.ts';
import type { PipelineStore, WorkflowKey, WorkflowRow } from '../db/pipeline-store.ts';
import { errorMessage, InvalidRequestError, NotFoundError, PermanentError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { LogCollection } from '../logs/module.ts';
import type { Delivery, QueueMessage } from '../queue/index.ts';
import type { RunSecrets } from '../secrets/module.ts';
import { buildRequest } from './build-request.ts';
import { isTerminal } from './pipeline.ts';
import type { DispatchMessage } from './starter.ts';
import type { StatusUpdate, StatusWriter } from './status-writer.ts';

export const RESTARTED_ERROR = 'treadle restarted';
/** What a workflow a user cancelled ends with, as stock words it (2026 spec §2). */
export const CANCELLED: StatusUpdate = {
  status: 'cancelled',
  error: 'User canceled the workflow',
  exitCode: -1,
};

export interface DispatcherDeps {
  store: PipelineStore;
  statuses: StatusWriter;
  runners: ReadonlyMap<string, BuildRunner>;
  log: Logger;
  dev: boolean;
  pollIntervalMs: number;
  /** Deliveries after which a failing trigger/status call fails the workflow instead of retrying. */
  maxAttempts: number;
  /** The repository's secrets, for a run's environment (none when absent). */
  secrets?: Pick<RunSecrets, 'forWorkflow'>;
  /** Told once a build exists, so its logs are collected. */
  logs: LogCollection;
}

/** How long to wait between polls of a runner that pushes its own progress. */
const PUSHED_POLL_MS = 30_000;

export class Dispatcher {
  private readonly d: DispatcherDeps;

  constructor(deps: DispatcherDeps) {
    this.d = deps;
  }

  async handle(message: QueueMessage<DispatchMessage>, delivery: Delivery): Promise<void> {
    const key: WorkflowKey = {
      knot: message.payload.knot,
      rkey: message.payload.rkey,
      name: message.payload.name,
    };
    const row = this.d.store.workflow(key);
    if (!row || isTerminal(row.status)) return;
    const runner = row.runner ? this.d.runners.get(row.runner) : undefined;
    if (!runner) {
      this.finish(key, delivery, {
        status: 'failed',
        error: `runner ${JSON.stringify(row.runner)} is not configured`,
        exitCode: -1,
      });
      return;
    }
    if (row.cancelRequestedBy) {
      await this.cancel(row, runner, delivery);
      return;
    }
    let buildId = row.buildId;
    if (!buildId) {
      try {
        const request = buildRequest(this.d.store, row, this.d.dev);
        Object.assign(request.env, Object.fromEntries(this.d.secrets?.forWorkflow(key) ?? []));
        buildId = await runner.trigger(request);
      } catch (err) {
        this.onRunnerError(key, delivery, err, 'could not start the build');
        return;
      }
      this.d.store.setBuild(key, buildId);
      this.d.logs.attach(key, runner, buildId);
    }
    let status: BuildStatus;
    try {
      status = await runner.status(buildId);
    } catch (err) {
      if (err instanceof NotFoundError) {
        this.finish(key, delivery, { status: 'failed', error: RESTARTED_ERROR, exitCode: -1 });
        return;
      }
      this.onRunnerError(key, delivery, err, 'could not read the build status');
      return;
    }
    const current = this.d.store.workflow(key)!;
    // Cancelled while this delivery waited on the runner: carry it out now, not after the hold.
    if (current.cancelRequestedBy && !isTerminal(current.status)) {
      await this.cancel(current, runner, delivery);
      return;
    }
    const next = this.advance(current, status, delivery);
    if (next === 'wait') return;
    delivery.hold(
      runner.pollAfterMs?.(buildId) ?? (runner.pushesProgress ? PUSHED_POLL_MS : this.d.pollIntervalMs),
    );
  }

  /**
   * Moves the wire status toward the runner's state: a runner that went straight to a
   * terminal state still shows `running` first. Returns 'wait' when it asked for a hold itself
   * (the next status must wait for the next second) or the workflow is finished.
   */
  private advance(row: WorkflowRow, status: BuildStatus, delivery: Delivery): 'wait' | 'poll' {
    const target = wireStatus(status.state);
    const terminal = TERMINAL_STATES.has(status.state);
    if (target === 'pending') return 'poll';
    if (row.status === 'pending') {
      const r = this.d.statuses.write(row, { status: 'running' });
      if (!r.written && 'waitMs' in r) {
        delivery.hold(spread(r.waitMs));
        return 'wait';
      }
    }
    if (!terminal) return 'poll';
    const update: StatusUpdate = { status: target };
    if (target === 'failed') {
      update.error = status.error ?? 'workflow failed';
      update.exitCode = status.exitCode ?? -1;
    }
    this.finish(row, delivery, update);
    return 'wait';
  }

  /**
   * Carries out a requested cancel: the runner is asked to stop the build (a build not started
   * yet never is), then the workflow ends `cancelled`. A runner that cannot be reached is asked
   * again by the queue's retries; after the last attempt the workflow ends cancelled anyway and
   * an error is logged saying the build may still run. A build that finished before the cancel
   * reached it keeps its real outcome.
   */
  private async cancel(row: WorkflowRow, runner: BuildRunner, delivery: Delivery): Promise<void> {
    const log = this.d.log.child({ knot: row.knot, rkey: row.rkey, name: row.name });
    if (row.buildId) {
      try {
        await runner.cancel(row.buildId);
      } catch (err) {
        const permanent = err instanceof InvalidRequestError || err instanceof PermanentError;
        if (!permanent && delivery.attempt < this.d.maxAttempts) throw err;
        log.error(
          { buildId: row.buildId, err: errorMessage(err) },
          'the runner did not take the cancel; the build may still run there',
        );
      }
      const status = await runner.status(row.buildId).catch(() => undefined);
      if (status && TERMINAL_STATES.has(status.state) && status.state !== 'cancelled') {
        log.info({ state: status.state }, 'the build finished before the cancel reached it');
        this.advance(row, status, delivery);
        return;
      }
    }
    if (this.finish(row, delivery, CANCELLED))
      log.info({ by: row.cancelRequestedBy, buildId: row.buildId }, 'workflow cancelled');
  }

  /** Writes a terminal status, holding until the next second if needed; true when written. */
  private finish(key: WorkflowKey, delivery: Delivery, update: StatusUpdate): boolean {
    const r = this.d.statuses.write(key, update);
    if (!r.written && 'waitMs' in r) {
      delivery.hold(spread(r.waitMs));
      return false;
    }
    if (r.written)
      this.d.log.info({ ...key, status: update.status, error: update.error }, 'workflow finished');
    return true;
  }

  private onRunnerError(key: WorkflowKey, delivery: Delivery, err: unknown, what: string): void {
    const permanent = err instanceof InvalidRequestError || err instanceof PermanentError;
    if (permanent || delivery.attempt >= this.d.maxAttempts) {
      this.finish(key, delivery, { status: 'failed', error: `${what}: ${errorMessage(err)}`, exitCode: -1 });
      return;
    }
    throw err;
  }
}

/**
 * A wait for the next second, spread over its first quarter: statuses held for the same
 * second boundary would otherwise all wake at once and delay new work behind them.
 */
function spread(waitMs: number): number {
  return waitMs + Math.floor(Math.random() * 250);
}
