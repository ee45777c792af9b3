/**
 * The landing handlers (greenness-and-landing spec §7.3, §7.5 step 1, §7.8): one per inbound
 * topic, serialised per checkout by an in-process lock on top of the topics' per-branch
 * partitions, so a check and a merge never touch one working tree at once. Every decodable
 * request gets exactly one result on the matching result topic (id = the request id, partition
 * = the inbound one); a merge that pushed is ledgered with its result in one transaction, so a
 * redelivery republishes that result and pushes nothing. The DLQ reconcilers answer FAILED
 * `dead-lettered: …` with id `<id>/dlq`.
 */
import type { LandingStore } from '../db/landing-store.ts';
import type { UnitOfWork } from '../db/unit-of-work.ts';
import { ConflictError, InvalidRequestError, PermanentError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics/metrics.ts';
import type { Queue, QueueMessage } from '../queue/index.ts';
import type { LandingTarget } from './config.ts';
import { decodeRequest, type LandResult, MERGE_TOPIC, RESULT_SUFFIX, validateRequest } from './contract.ts';
import type { Lander } from './lander.ts';

export interface LandingDeps {
  targets: readonly LandingTarget[];
  landers: ReadonlyMap<string, Lander>;
  store: LandingStore;
  uow: UnitOfWork;
  queue: Queue;
  log: Logger;
  clock?: () => number;
  metrics?: Pick<Metrics, 'landingResults'>;
}

export class LandingHandler {
  private readonly d: LandingDeps;
  private readonly locks = new Map<string, Promise<void>>();
  private readonly now: () => number;

  constructor(deps: LandingDeps) {
    this.d = deps;
    this.now = deps.clock ?? Date.now;
  }

  /** Handles one message of `land.check` or `land.merge`. */
  async handle(m: QueueMessage<unknown>): Promise<void> {
    const merge = m.topic === MERGE_TOPIC;
    const req = decodeRequest(m.payload);
    if (!req) throw new PermanentError('not a landing request (it needs a string id and target)');
    if (merge) {
      const ledgered = this.d.store.ledgered(req.id);
      if (ledgered) {
        this.d.log.info({ request: req.id }, 'merge already pushed: republishing its result');
        this.answer(m, JSON.parse(ledgered) as LandResult, false);
        return;
      }
    }
    let result: LandResult;
    let pushed = false;
    try {
      const { target, steps } = validateRequest(req, this.d.targets);
      const lander = this.d.landers.get(target.name)!;
      const outcome = await this.locked(target.checkoutPath, () => lander.land(req.id, steps, merge));
      result = outcome.result;
      pushed = outcome.pushed;
    } catch (err) {
      if (!(err instanceof ConflictError || err instanceof InvalidRequestError)) throw err;
      result = { id: req.id, target: req.target, outcome: 'FAILED', reason: err.message, steps: [] };
    }
    this.d.log.info(
      {
        request: req.id,
        target: req.target,
        kind: merge ? 'merge' : 'check',
        outcome: result.outcome,
        reason: result.reason,
      },
      'landing request answered',
    );
    this.answer(m, result, pushed);
  }

  /** The DLQ reconciler of either inbound topic. */
  deadLettered(m: QueueMessage<unknown>): void {
    const req = decodeRequest(m.payload);
    if (!req) {
      this.d.log.error(
        { topic: m.topic, id: m.id, payload: m.payload },
        'undecodable landing request dropped',
      );
      return;
    }
    const why = m.metadata['dlq.last_error'] || 'landing failed to process the request';
    const original = m.topic.replace(/_dlq$/, '');
    this.answer(
      { ...m, topic: original },
      { id: req.id, target: req.target, outcome: 'FAILED', reason: `dead-lettered: ${why}`, steps: [] },
      false,
      `${req.id}/dlq`,
    );
  }

  private answer(m: QueueMessage<unknown>, result: LandResult, pushed: boolean, id = result.id): void {
    const kind = m.topic === MERGE_TOPIC ? 'merge' : 'check';
    const json = JSON.stringify(result);
    this.d.uow.run(() => {
      if (pushed) this.d.store.ledger(result.id, json, this.now());
      this.d.store.saveResult({
        requestId: result.id,
        kind,
        target: result.target,
        outcome: result.outcome,
        result: json,
        finishedAt: this.now(),
      });
      const { published } = this.d.queue.publish(`${m.topic}${RESULT_SUFFIX}`, m.partitionKey, id, result);
      const metrics = this.d.metrics;
      if (published && metrics)
        this.d.uow.afterCommit(() => metrics.landingResults.inc({ kind, outcome: result.outcome }));
    });
  }

  /** Runs `fn` holding the checkout lock of `target`. */
  withCheckout<T>(target: LandingTarget, fn: () => Promise<T>): Promise<T> {
    return this.locked(target.checkoutPath, fn);
  }

  private async locked<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const before = this.locks.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const chain = before.then(() => mine);
    this.locks.set(key, chain);
    await before;
    try {
      return await fn();
    } finally {
      release();
      if (this.locks.get(key) === chain) this.locks.delete(key);
    }
  }
}
