/**
 * Intake of `sh.tangled.pipeline` frames from knots (spindle protocol §6 with §16's fixes, and
 * 2026 spec §4.2–4.5): the record must validate, name the knot it came from and a repo this
 * spindle serves; a (knot, rkey) seen before runs nothing, nor does a push or PR that already
 * runs under its dedup key. From a legacy knot the pipeline is adopted at once. From a knot that
 * sends new-shape ref updates, treadle's own pipeline for the push is authoritative: the knot's
 * rkey is lent to it and this message waits; if no self-created run took the key by then, the
 * knot's pipeline is adopted after all, so nothing is ever lost.
 */
import type { RecordValidator } from '../atproto/lexicons.ts';
import type { PipelineStore } from '../db/pipeline-store.ts';
import type { RepoStore } from '../db/repo-store.ts';
import type { RunKeyStore } from '../db/run-key-store.ts';
import type { UnitOfWork } from '../db/unit-of-work.ts';
import { errorMessage } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics/metrics.ts';
import type { Delivery, Queue } from '../queue/index.ts';
import type { PipelineRecord } from './pipeline.ts';
import { PIPELINE_NSID } from './pipeline.ts';
import { runKeyOf } from './run-keys.ts';
import type { PipelineStarter } from './starter.ts';

export const INTAKE_TOPIC = 'pipeline.intake';
const REPLAY = 'already received (replay)';

export interface IntakeMessage {
  knot: string;
  rkey: string;
  /** The frame's `event`, unvalidated. */
  event: Record<string, unknown>;
}

export type IntakeOutcome =
  | { accepted: true; workflows: number; pending: number }
  | { accepted: false; reason: string; waiting?: true; duplicate?: true; code?: RefusalCode };

/** Why a knot's pipeline was refused, as a metric label. */
type RefusalCode = 'invalid_record' | 'wrong_knot' | 'not_served' | 'no_workflows';

export interface IntakeDeps {
  store: PipelineStore;
  repos: RepoStore;
  runKeys: RunKeyStore;
  uow: UnitOfWork;
  queue: Queue;
  starter: PipelineStarter;
  validator: RecordValidator;
  log: Logger;
  /** How long a lent knot pipeline waits for treadle's own before it is adopted. */
  adoptAfterMs: number;
  metrics?: Pick<Metrics, 'pipelinesRefused'>;
}

/** Publishes a knot's pipeline frame for intake; a repeat of (knot, rkey) is not stored again. */
export function publishPipelineIntake(queue: Pick<Queue, 'publish'>, message: IntakeMessage): boolean {
  const id = `${message.knot}/${message.rkey}`;
  // Partitioned per pipeline: one waiting for its self-created twin must not hold up the knot.
  return queue.publish(INTAKE_TOPIC, id, id, message).published;
}

export class Intake {
  private readonly d: IntakeDeps;

  constructor(deps: IntakeDeps) {
    this.d = deps;
  }

  handle(message: IntakeMessage, delivery?: Pick<Delivery, 'hold'>): IntakeOutcome {
    const outcome = this.accept(message, delivery);
    const where = { knot: message.knot, rkey: message.rkey };
    if (outcome.accepted) this.d.log.info({ ...where, ...outcome }, 'pipeline accepted');
    else if (outcome.reason === REPLAY) this.d.log.debug(where, 'pipeline already received; replay ignored');
    else if (outcome.waiting || outcome.duplicate)
      this.d.log.info({ ...where, reason: outcome.reason }, 'pipeline deferred');
    else {
      this.d.log.warn({ ...where, reason: outcome.reason }, 'pipeline dropped');
      this.d.metrics?.pipelinesRefused.inc({ reason: outcome.code ?? 'invalid_record' });
    }
    return outcome;
  }

  private accept({ knot, rkey, event }: IntakeMessage, delivery?: Pick<Delivery, 'hold'>): IntakeOutcome {
    const { store, repos, runKeys, validator } = this.d;
    if (store.pipeline(knot, rkey)) return { accepted: false, reason: REPLAY };
    let record: PipelineRecord;
    try {
      // Like stock's decoder, skip null workflow entries rather than failing the whole record.
      const workflows = Array.isArray(event.workflows)
        ? event.workflows.filter((w) => w !== null)
        : event.workflows;
      record = validator.validate<PipelineRecord>(PIPELINE_NSID, { ...event, workflows });
    } catch (err) {
      return { accepted: false, reason: errorMessage(err), code: 'invalid_record' };
    }
    const trigger = record.triggerMetadata;
    if (trigger.repo.knot !== knot) {
      return {
        accepted: false,
        reason: `triggerMetadata.repo.knot ${JSON.stringify(trigger.repo.knot)} is not the sending knot`,
        code: 'wrong_knot',
      };
    }
    const byDid = trigger.repo.repoDid ? repos.servedRepoByDid(trigger.repo.repoDid) : undefined;
    const repo =
      byDid?.knot === knot ? byDid : repos.servedRepoByName(knot, trigger.repo.did, trigger.repo.repo ?? '');
    if (!repo)
      return {
        accepted: false,
        reason: `repo ${trigger.repo.did}/${trigger.repo.repo} is not served here`,
        code: 'not_served',
      };
    if (record.workflows.length === 0)
      return { accepted: false, reason: 'no workflows', code: 'no_workflows' };

    const key = runKeyOf(repo, record);
    const mode = runKeys.knotMode(knot);
    return this.d.uow.run((): IntakeOutcome => {
      const claimed = key ? runKeys.get(key) : undefined;
      if (claimed?.state === 'run')
        return {
          accepted: false,
          duplicate: true,
          reason: `already runs as ${claimed.knot}/${claimed.rkey}`,
        };
      if (mode.mode === 'new' && key && delivery) {
        if (mode.sendsPipelines !== true) runKeys.setSendsPipelines(knot, true);
        if (!claimed) {
          runKeys.put(key, { state: 'lent', knot, rkey });
          delivery.hold(this.d.adoptAfterMs);
          return {
            accepted: false,
            waiting: true,
            reason: 'rkey lent to the pipeline built from the ref update',
          };
        }
        if (claimed.knot !== knot || claimed.rkey !== rkey)
          return {
            accepted: false,
            duplicate: true,
            reason: `the same push waits as ${claimed.knot}/${claimed.rkey}`,
          };
        // Lent earlier and nobody took it: adopt the knot's pipeline after all.
      }
      const started = this.d.starter.start({ knot, rkey, repo, record, origin: 'knot', runKey: key });
      return { accepted: true, workflows: started.workflows, pending: started.pending };
    });
  }
}
