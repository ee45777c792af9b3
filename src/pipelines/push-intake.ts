/**
 * Push pipelines treadle builds itself from a knot's new-shape `sh.tangled.git.refUpdate`
 * (2026 spec §3.2–3.5, §4.5): the repo DID must be served here and hosted by the sending knot;
 * `skip-ci`/`ci-skip` push options create nothing; the workflows are read from the knot's git at
 * `newSha`, compiled against the push, and the pipeline runs under a fresh TID (or the rkey a
 * knot's pipeline for the same push lent it) as `at://did:web:<knot>/sh.tangled.pipeline/<tid>`.
 * From a knot that may also send the pipeline itself, the message first waits `holdMs`
 * (measured from the frame's arrival) so the knot's record can lend its rkey.
 */
import { errorMessage, PermanentError } from '../errors.ts';
import type { Delivery, Queue } from '../queue/index.ts';
import type { BuildOutcome, SelfBuiltIntakeDeps } from './pipeline-builder.ts';
import { pushRunKey } from './run-keys.ts';

export const PUSH_TOPIC = 'push.intake';
export const REF_UPDATE_NSID = 'sh.tangled.git.refUpdate';
const SKIP_OPTIONS = new Set(['skip-ci', 'ci-skip']);

export interface PushMessage {
  knot: string;
  /** The refUpdate frame's rkey. */
  rkey: string;
  event: Record<string, unknown>;
  /** When the frame arrived (ms): the hold is measured from here. */
  receivedAt: number;
}

interface RefUpdate {
  ref: string;
  repo?: string;
  oldSha: string;
  newSha: string;
  changedFiles?: string[];
  pushOptions?: string[];
}

export interface PushIntakeDeps extends SelfBuiltIntakeDeps {
  holdMs: number;
}

/** Whether a knot frame's event is a new-shape ref update (it names the repo by DID). */
export function isNewShapeRefUpdate(event: Record<string, unknown>): boolean {
  return typeof event.repo === 'string' && event.repo.startsWith('did:');
}

/** Publishes a new-shape ref update for intake; a repeat of (knot, rkey) is not stored again. */
export function publishPushIntake(queue: Pick<Queue, 'publish'>, message: PushMessage): boolean {
  const id = `${message.knot}/${message.rkey}`;
  return queue.publish(PUSH_TOPIC, id, id, message).published;
}

export class PushIntake {
  private readonly d: PushIntakeDeps;

  constructor(deps: PushIntakeDeps) {
    this.d = deps;
  }

  private refused(reason: string): void {
    this.d.metrics?.pipelinesRefused.inc({ reason });
  }

  async handle(message: PushMessage, delivery: Pick<Delivery, 'hold'>): Promise<void> {
    const { knot } = message;
    const log = this.d.log.child({ knot, rkey: message.rkey });
    let update: RefUpdate;
    try {
      update = this.d.validator.validate<RefUpdate>(REF_UPDATE_NSID, message.event);
    } catch (err) {
      log.warn({ reason: errorMessage(err) }, 'ref update dropped');
      this.refused('invalid_record');
      return;
    }
    const repoDid = update.repo!;
    const repo = this.d.repos.servedRepoByDid(repoDid);
    if (!repo) {
      log.warn({ repoDid }, 'ref update dropped: no repo with this DID is served here');
      this.refused('not_served');
      return;
    }
    if (repo.knot !== knot) {
      log.warn(
        { repoDid, repoKnot: repo.knot },
        "ref update dropped: the sending knot is not the repo's knot",
      );
      this.refused('wrong_knot');
      return;
    }
    const skip = update.pushOptions?.find((o) => SKIP_OPTIONS.has(o));
    if (skip) {
      log.info({ repoDid, ref: update.ref, sha: update.newSha, option: skip }, 'push skipped by push option');
      this.refused('skip_ci');
      return;
    }
    const key = pushRunKey(repo, update.ref, update.newSha);
    const claimed = this.d.runKeys.get(key);
    if (claimed?.state === 'run') {
      log.info({ repoDid, runsAs: `${claimed.knot}/${claimed.rkey}` }, 'push already runs');
      return;
    }
    const waited = Date.now() - message.receivedAt;
    if (!claimed && this.d.runKeys.knotMode(knot).sendsPipelines !== false && waited < this.d.holdMs) {
      delivery.hold(this.d.holdMs - waited);
      return;
    }

    const ref = update.ref;
    let outcome: BuildOutcome;
    try {
      outcome = await this.d.builder.build({
        repo,
        sha: update.newSha,
        compile: { kind: 'push', ref, changedFiles: update.changedFiles ?? [] },
        trigger: { kind: 'push', push: { ref, newSha: update.newSha, oldSha: update.oldSha } },
        runKey: key,
        learnKnotMode: true,
      });
    } catch (err) {
      if (!(err instanceof PermanentError)) throw err;
      log.warn({ repoDid, sha: update.newSha, reason: errorMessage(err) }, 'push not run: workflows refused');
      this.refused('workflows_unreadable');
      return;
    }
    for (const d of outcome.diagnostics)
      log.warn({ repoDid, sha: update.newSha, workflow: d.workflow, reason: d.error }, 'workflow skipped');
    if (!outcome.started) {
      if (outcome.reason === 'already-runs') log.info({ repoDid }, 'push already runs');
      else log.info({ repoDid, ref, sha: update.newSha, files: outcome.files }, 'push: no workflows to run');
      return;
    }
    log.info(
      {
        repoDid,
        ref,
        sha: update.newSha,
        pipeline: outcome.rkey,
        lentByKnot: outcome.lent,
        workflows: outcome.workflows,
      },
      'push pipeline created',
    );
  }
}
