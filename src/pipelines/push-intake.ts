/**
 * Push pipelines treadle builds itself from a knot's new-shape `sh.tangled.git.refUpdate`
 * (2026 spec §3.2–3.5, §4.5): the repo DID must be served here and hosted by the sending knot;
 * `skip-ci`/`ci-skip` push options create nothing; the workflows are read from the knot's git at
 * `newSha`, compiled against the push, and the pipeline runs under a fresh TID (or the rkey a
 * knot's pipeline for the same push lent it) as `at://did:web:<knot>/sh.tangled.pipeline/<tid>`.
 * From a knot that may also send the pipeline itself, the message first waits `holdMs`
 * (measured from the frame's arrival) so the knot's record can lend its rkey.
 */
import { TID } from '@atproto/common-web';
import type { RepoRow } from '../db/repo-store.ts';
import { errorMessage, PermanentError } from '../errors.ts';
import type { WorkflowFetcher } from '../git/workflow-fetcher.ts';
import type { Delivery } from '../queue/index.ts';
import { pushRunKey } from './run-keys.ts';
import type { BuilderDeps, PipelineRecord } from './starter.ts';
import { PIPELINE_NSID } from './status-writer.ts';
import { compileWorkflows } from './when.ts';

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

export interface PushIntakeDeps extends BuilderDeps {
  holdMs: number;
}

/** Whether a knot frame's event is a new-shape ref update (it names the repo by DID). */
export function isNewShapeRefUpdate(event: Record<string, unknown>): boolean {
  return typeof event.repo === 'string' && event.repo.startsWith('did:');
}

export class PushIntake {
  private readonly d: PushIntakeDeps;

  constructor(deps: PushIntakeDeps) {
    this.d = deps;
  }

  publish(message: PushMessage): boolean {
    const id = `${message.knot}/${message.rkey}`;
    return this.d.queue.publish(PUSH_TOPIC, id, id, message).published;
  }

  async handle(message: PushMessage, delivery: Pick<Delivery, 'hold'>): Promise<void> {
    const { knot } = message;
    const log = this.d.log.child({ knot, rkey: message.rkey });
    let update: RefUpdate;
    try {
      update = this.d.validator.validate<RefUpdate>(REF_UPDATE_NSID, message.event);
    } catch (err) {
      log.warn({ reason: errorMessage(err) }, 'ref update dropped');
      return;
    }
    const repoDid = update.repo!;
    const repo = this.d.repos.servedRepoByDid(repoDid);
    if (!repo) {
      log.warn({ repoDid }, 'ref update dropped: no repo with this DID is served here');
      return;
    }
    if (repo.knot !== knot) {
      log.warn(
        { repoDid, repoKnot: repo.knot },
        "ref update dropped: the sending knot is not the repo's knot",
      );
      return;
    }
    const skip = update.pushOptions?.find((o) => SKIP_OPTIONS.has(o));
    if (skip) {
      log.info({ repoDid, ref: update.ref, sha: update.newSha, option: skip }, 'push skipped by push option');
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

    let files: Awaited<ReturnType<WorkflowFetcher['fetch']>>;
    try {
      files = await this.d.fetcher.fetch(knot, repoDid, update.newSha);
    } catch (err) {
      if (!(err instanceof PermanentError)) throw err;
      log.warn({ repoDid, sha: update.newSha, reason: errorMessage(err) }, 'push not run: workflows refused');
      return;
    }
    const ref = update.ref;
    const { workflows, diagnostics } = compileWorkflows(files, {
      kind: 'push',
      ref,
      changedFiles: update.changedFiles ?? [],
    });
    for (const d of diagnostics)
      log.warn({ repoDid, sha: update.newSha, workflow: d.workflow, reason: d.error }, 'workflow skipped');
    if (workflows.length === 0) {
      log.info({ repoDid, ref, sha: update.newSha, files: files.length }, 'push: no workflows to run');
      return;
    }
    const defaultBranch = await this.d.defaultBranches.get(knot, repoDid);
    const record = pushRecord(repo, update, defaultBranch, workflows);
    const started = this.d.events.transaction(() => {
      const now = this.d.runKeys.get(key);
      if (now?.state === 'run') return undefined;
      const lent = now?.state === 'lent' && now.knot === knot ? now.rkey : undefined;
      if (!lent && this.d.runKeys.knotMode(knot).sendsPipelines === null)
        this.d.runKeys.setSendsPipelines(knot, false);
      const rkey = lent ?? TID.nextStr();
      const result = this.d.starter.start({ knot, rkey, repo, record, origin: 'spindle', runKey: key });
      return { rkey, lent: lent !== undefined, ...result };
    });
    if (!started) {
      log.info({ repoDid }, 'push already runs');
      return;
    }
    log.info(
      {
        repoDid,
        ref,
        sha: update.newSha,
        pipeline: started.rkey,
        lentByKnot: started.lent,
        workflows: started.workflows,
      },
      'push pipeline created',
    );
  }
}

function pushRecord(
  repo: RepoRow,
  update: RefUpdate,
  defaultBranch: string,
  workflows: PipelineRecord['workflows'],
): PipelineRecord {
  return {
    $type: PIPELINE_NSID,
    triggerMetadata: {
      kind: 'push',
      push: { ref: update.ref, newSha: update.newSha, oldSha: update.oldSha },
      repo: { knot: repo.knot, did: repo.owner, repo: repo.rkey, repoDid: repo.repoDid!, defaultBranch },
    },
    workflows,
  };
}
