/**
 * The greenness recorder (greenness-and-landing spec §6.1–§6.4) on treadle's durable topics:
 * `pipeline.started` and `workflow.status` feed ingest; a complete pipeline or a passed
 * deadline publishes `greenness.record`, which writes the facts and moves the validation, the
 * tip and the last-green bookmark. Each step is one SQLite transaction, so a crash between
 * steps cannot leave half a record, and each is idempotent under redelivery. Hook events go to
 * the `hook` topic with ids that a replay repeats.
 */
import {
  type GreennessStore,
  type QueueRow,
  type ValidationRow,
  validationId,
} from '../db/greenness-store.ts';
import type { UnitOfWork } from '../db/unit-of-work.ts';
import { PermanentError } from '../errors.ts';
import { formatCommitUri } from '../landing/commit-uri.ts';
import type { LandingTarget } from '../landing/config.ts';
import { type LandRequest, type LandResult, MERGE_TOPIC, pk } from '../landing/contract.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics/metrics.ts';
import type { PipelineStarted, WireStatus, WorkflowStatusChanged } from '../pipelines/pipeline.ts';
import { isTerminal } from '../pipelines/pipeline.ts';
import type { Delivery, Queue } from '../queue/index.ts';
import { type GreennessConfig, queueFor } from './config.ts';
import { computeDegree } from './degree.ts';

export const RECORD_TOPIC = 'greenness.record';
export const DEADLINE_TOPIC = 'greenness.deadline';
export const HOOK_TOPIC = 'hook';

const COMMIT = /^([0-9a-f]{40}|[0-9a-f]{64})$/;
const MAX_HOLD_MS = 3_600_000;

export interface RecordMessage {
  validationId: string;
  attempt: number;
  cause: 'complete' | 'deadline';
}

export interface DeadlineMessage {
  validationId: string;
  attempt: number;
}

export interface HookEvent {
  id: string;
  source: 'treadle';
  type: string;
  timestampMs: number;
  version: number;
  payload: Record<string, unknown>;
}

export interface RecorderDeps {
  store: GreennessStore;
  uow: UnitOfWork;
  queue: Queue;
  config: GreennessConfig;
  /** The landing targets a queue's `promote` may name. */
  landing: readonly LandingTarget[];
  log: Logger;
  clock?: () => number;
  metrics?: Pick<Metrics, 'greennessFacts' | 'greennessTransitions'>;
}

export function queueKey(repo: string, ref: string): string {
  return `${repo}@${ref}`;
}

/** The id of the PROMOTE request of a queue's seq (§6.4d). */
export function promotionId(key: string, seq: number): string {
  return `promote/${key}/${seq}`;
}

export function parsePromotionId(id: string): { key: string; seq: number } | undefined {
  const m = /^promote\/(.+)\/(\d+)$/.exec(id);
  return m ? { key: m[1]!, seq: Number(m[2]) } : undefined;
}

export class Recorder {
  private readonly d: RecorderDeps;
  private readonly now: () => number;

  constructor(deps: RecorderDeps) {
    this.d = deps;
    this.now = deps.clock ?? Date.now;
  }

  /** §6.1 PipelineObserved. */
  onPipeline(p: PipelineStarted): void {
    const { store } = this.d;
    if (p.trigger === 'push' && p.commit !== undefined && !COMMIT.test(p.commit))
      throw new PermanentError(
        `pipeline ${p.pipeline}: commit ${JSON.stringify(p.commit)} is not a commit id`,
      );
    this.d.uow.run(() => {
      store.insertPipeline({
        pipeline: p.pipeline,
        knot: p.knot,
        repo: p.repo,
        trigger: p.trigger,
        ref: p.ref ?? null,
        commit: p.commit ?? null,
        workflows: p.workflows,
        observedAt: p.observedAt,
      });
      if (p.trigger !== 'push' || !p.ref || !p.commit) return;
      const settings = queueFor(this.d.config, p.repoName ? [p.repo, p.repoName] : [p.repo], p.ref);
      if (!settings) return;
      const key = queueKey(store.linkRepo(p.repo, p.repoName), p.ref);
      store.ensureQueue(key, p.repo, p.ref);
      store.setRequired(key, settings.requiredWorkflows);
      const deadlineAt = p.observedAt + settings.pipelineDeadlineMs;
      const now = this.now();
      let v = store.validationByCommit(key, p.commit);
      if (!v) {
        const seq = store.takeSeq(key);
        store.insertValidation(
          {
            queue: key,
            seq,
            commit: p.commit,
            pipeline: p.pipeline,
            attempt: 1,
            deadlineAt,
          },
          now,
        );
      } else if ((v.state === 'cancelled' || v.state === 'expired') && v.pipeline !== p.pipeline) {
        store.rebind(v.id, p.pipeline, deadlineAt, now);
      }
      v = store.validationByCommit(key, p.commit)!;
      if (v.state !== 'pending' || v.pipeline !== p.pipeline) return;
      this.d.queue.publish<DeadlineMessage>(DEADLINE_TOPIC, v.id, `${v.id}#${v.attempt}`, {
        validationId: v.id,
        attempt: v.attempt,
      });
      this.checkComplete(v);
    });
  }

  /** §6.1 WorkflowStatusChanged: terminal statuses are write-once. */
  onStatus(s: WorkflowStatusChanged): void {
    const { store } = this.d;
    this.d.uow.run(() => {
      const before = store.runStatus(s.pipeline, s.workflow) as WireStatus | undefined;
      if (isTerminal(before)) return;
      store.upsertRun(s.pipeline, s.workflow, s.status, Date.parse(s.createdAt) || this.now());
      if (!isTerminal(s.status)) return;
      const v = store.pendingValidationOf(s.pipeline);
      if (v) this.checkComplete(v);
    });
  }

  /** §6.2: holds until the deadline, then asks for a record that may expire the validation. */
  deadline(m: DeadlineMessage, delivery: Pick<Delivery, 'hold'>): void {
    const v = this.d.store.validation(m.validationId);
    if (!v || v.attempt !== m.attempt || v.state !== 'pending') return;
    const wait = v.deadlineAt - this.now();
    if (wait > 0) {
      delivery.hold(Math.min(wait, MAX_HOLD_MS));
      return;
    }
    this.publishRecord(v, 'deadline');
  }

  /** §6.4, in one transaction. */
  record(m: RecordMessage): void {
    const { store } = this.d;
    this.d.uow.run(() => {
      const v = store.validation(m.validationId);
      if (!v) throw new PermanentError(`validation ${m.validationId} is not recorded`);
      if (v.attempt !== m.attempt) return;
      if (v.state === 'cancelled' || v.state === 'expired') return;
      if (v.state === 'pending' && !this.decide(v, m)) return;
      this.afterFact(store.validation(v.id)!);
    });
  }

  /** Writes the facts and the outcome of a pending validation; false when there is none yet or no fact follows. */
  private decide(v: ValidationRow, m: RecordMessage): boolean {
    const { store } = this.d;
    const now = this.now();
    const p = store.pipeline(v.pipeline);
    const runs = store.runs(v.pipeline) as Map<string, WireStatus>;
    const complete = !!p && p.workflows.every((w) => isTerminal(runs.get(w)));
    const q = store.queue(v.queue)!;
    if (!complete) {
      if (m.cause === 'deadline' && now >= v.deadlineAt && store.setState(v.id, v.attempt, 'expired', now))
        this.hook('greenness.validation_expired', v.id, v.attempt, q, {
          commit: v.commit,
          seq: v.seq,
          attempt: v.attempt,
          pipelineId: v.pipeline,
        });
      return false;
    }
    const settings = this.settingsOf(q);
    const d = computeDegree(p!.workflows, runs, settings?.requiredWorkflows);
    const facts = [
      ...d.workflows.map((w) => ({ project: `workflow:${w.name}`, degree: w.degree })),
      ...(d.degree !== undefined ? [{ project: '', degree: d.degree }] : []),
    ];
    for (const f of facts) {
      // Create-only: a fact already there (a replay) is kept as it is.
      // A fact is keyed by its validation's (queue, seq), so it can only ever belong to `v`.
      store.insertFact({
        queue: v.queue,
        commit: v.commit,
        project: f.project,
        degree: f.degree,
        createdAt: now,
      });
      const stored = store.fact(v.queue, v.commit, f.project)!;
      this.hook('greenness.fact_recorded', `${v.id}#${f.project}`, v.attempt, q, {
        commit: v.commit,
        seq: v.seq,
        project: f.project,
        degree: stored.degree,
        green: stored.degree === 0,
        validationId: v.id,
      });
    }
    store.setState(v.id, v.attempt, d.outcome, now);
    return d.outcome !== 'cancelled';
  }

  /** §6.4 step 5, from the stored whole-repo fact: tip and bookmark (the green log is the `gn_green` index). Idempotent. */
  private afterFact(v: ValidationRow): void {
    const { store } = this.d;
    const f = store.fact(v.queue, v.commit);
    if (!f) return;
    const green = f.degree === 0;
    const now = this.now();
    let q = store.queue(v.queue)!;
    if (q.tipSeq === null || v.seq > q.tipSeq) {
      store.setTip(v.queue, v.seq, green, q.tipGreen === null ? null : q.tipGreen === 1);
      q = store.queue(v.queue)!;
    }
    if (q.tipSeq === v.seq && (q.tipPrevGreen === null ? null : q.tipPrevGreen === 1) !== green) {
      const from = q.tipPrevGreen === null ? 'unknown' : q.tipPrevGreen === 1 ? 'green' : 'not_green';
      this.hook(green ? 'greenness.turned_green' : 'greenness.turned_not_green', v.queue, v.seq, q, {
        commit: v.commit,
        seq: v.seq,
        validationId: v.id,
        from,
        to: green ? 'green' : 'not_green',
      });
    }
    if (green && (q.lastGreenSeq === null || v.seq > q.lastGreenSeq)) {
      store.setLastGreen(v.queue, v.seq, now);
      this.hook('greenness.last_green_advanced', v.queue, v.seq, q, {
        commit: v.commit,
        seq: v.seq,
        validationId: v.id,
        previousCommit: q.lastGreenCommit,
      });
      q = store.queue(v.queue)!;
    }
    if (green && q.lastGreenSeq === v.seq) this.promote(v, q);
  }

  /**
   * §6.4d: the bookmark holder of a queue with `promote` asks landing to PROMOTE its commit.
   * A non-holder never does, so the verified branch never moves backwards; a replay publishes
   * the same request id, which the queue keeps once.
   */
  private promote(v: ValidationRow, q: QueueRow): void {
    const settings = this.settingsOf(q);
    if (!settings?.promote) return;
    const target = this.d.landing.find((t) => t.name === settings.promote!.target);
    const knot = this.d.store.pipeline(v.pipeline)?.knot;
    if (!target || !knot) {
      this.d.log.error(
        { queue: q.key, seq: v.seq, target: settings.promote.target },
        'promotion not requested: no such landing target or knot',
      );
      return;
    }
    const ids = this.repoIdsOf(q);
    const repoPath = ids.includes(target.repo) ? target.repo : q.repo;
    const uri = formatCommitUri({ host: knot.toLowerCase(), repoPath, ref: q.ref, sha: v.commit });
    const request: LandRequest = {
      id: promotionId(q.key, v.seq),
      target: target.name,
      steps: [{ stepId: v.id, change: { uris: [uri] }, strategy: 'PROMOTE' }],
    };
    this.d.queue.publish(MERGE_TOPIC, pk(target.repo, target.targetBranch), request.id, request);
  }

  /** §6.5: the answer to a promotion. SUCCEEDED moves `promotedSeq` up only; FAILED is reported, not retried. */
  promotionResult(result: LandResult): void {
    const parsed = parsePromotionId(result.id);
    if (!parsed) return;
    const { store } = this.d;
    this.d.uow.run(() => {
      const q = store.queue(parsed.key);
      if (!q) throw new PermanentError(`promotion ${result.id}: queue ${parsed.key} is not recorded`);
      const v = store.validation(validationId(parsed.key, parsed.seq));
      const base = { commit: v?.commit, seq: parsed.seq, target: result.target };
      if (result.outcome === 'SUCCEEDED') {
        store.setPromoted(parsed.key, parsed.seq);
        this.hook('greenness.promoted', parsed.key, parsed.seq, q, base);
      } else
        this.hook('greenness.promotion_failed', parsed.key, parsed.seq, q, {
          ...base,
          reason: result.reason ?? '',
        });
    });
  }

  /** Every id the queue's repo is known by (its DID and `<ownerDid>/<name>`). */
  private repoIdsOf(q: QueueRow): string[] {
    return [...new Set([q.repo, ...this.d.store.aliasesOf(q.repo)])];
  }

  private settingsOf(q: QueueRow) {
    return queueFor(this.d.config, this.repoIdsOf(q), q.ref);
  }

  private checkComplete(v: ValidationRow): void {
    const { store } = this.d;
    const p = store.pipeline(v.pipeline);
    if (!p) return;
    const runs = store.runs(v.pipeline) as Map<string, WireStatus>;
    if (p.workflows.every((w) => isTerminal(runs.get(w)))) this.publishRecord(v, 'complete');
  }

  private publishRecord(v: ValidationRow, cause: RecordMessage['cause']): void {
    this.d.queue.publish<RecordMessage>(RECORD_TOPIC, v.queue, `${v.id}#${v.attempt}#${cause}`, {
      validationId: v.id,
      attempt: v.attempt,
      cause,
    });
  }

  private hook(
    type: string,
    subject: string,
    version: number,
    q: { key: string; repo: string; ref: string },
    payload: Record<string, unknown>,
  ): void {
    const id = `treadle/${type}/${subject}/${version}`;
    const event: HookEvent = {
      id,
      source: 'treadle',
      type,
      timestampMs: this.now(),
      version,
      payload: { queue: q.key, repo: q.repo, ref: q.ref, ...payload },
    };
    const { published } = this.d.queue.publish(HOOK_TOPIC, q.key, id, event);
    const metrics = this.d.metrics;
    if (published && metrics)
      this.d.uow.afterCommit(() => {
        metrics.greennessTransitions.inc({ type });
        if (type === 'greenness.fact_recorded' && payload.project === '')
          metrics.greennessFacts.inc({ verdict: payload.green ? 'green' : 'not_green' });
      });
  }
}
