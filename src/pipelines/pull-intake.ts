/**
 * Pull request pipelines treadle builds itself from network records (2026 spec §3.2, §4.4):
 * `sh.tangled.repo.pull` create → `opened`, update → `synchronize`; `sh.tangled.repo.pull.status`
 * create → `reopened`/`closed`/`merged` (the pull record is then read from its author's PDS).
 * Only pulls naming their target repo by DID, served here, from a branch of that same repo
 * (no `source.repo`), by an author with push rights (and, for a status change, an actor who is
 * the author or has push rights too). The source sha is the tip commit of the last round's patch
 * blob (from the author's PDS, bounded, gunzipped); the workflows are read from the target
 * repo's knot at that sha and compiled for the pull request.
 *
 * Any account may author these records, so `offer` filters cheaply before anything is queued:
 * pulls for repos not served here, and status changes of pulls whose author could not push to
 * any served repo, are dropped without a word.
 */
import { createHash } from 'node:crypto';
import type { IdentityOptions } from '../atproto/identity.ts';
import type { RepoRow } from '../db/repo-store.ts';
import type { RecordEvent } from '../discovery/records.ts';
import { errorMessage, NotFoundError, RetryableError, TreadleError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { SelfBuiltIntakeDeps } from './pipeline-builder.ts';
import { PULL_NSID, PULL_URI, PullReader, type PullRecord } from './pull-reader.ts';
import { pullRunKey } from './run-keys.ts';
import type { PullAction } from './when.ts';

export const PULL_TOPIC = 'pull.intake';
export const PULL_STATUS_NSID = 'sh.tangled.repo.pull.status';
export { PATCH_BLOB_MAX_BYTES, PATCH_MAX_BYTES, PULL_NSID } from './pull-reader.ts';
export const PULL_COLLECTIONS = [PULL_NSID, PULL_STATUS_NSID] as const;

const STATUS_ACTIONS: Record<string, PullAction> = {
  'sh.tangled.repo.pull.status.open': 'reopened',
  'sh.tangled.repo.pull.status.closed': 'closed',
  'sh.tangled.repo.pull.status.merged': 'merged',
};
export interface PullMessage {
  /** The pull's author and record key. */
  author: string;
  rkey: string;
  action: PullAction;
  /** Whose record caused this: the author, or whoever changed the status. */
  actor: string;
  /** The pull record as Jetstream delivered it; absent for a status change (read from the PDS). */
  record?: unknown;
}

export interface PullIntakeDeps extends SelfBuiltIntakeDeps {
  identity: IdentityOptions;
  maxBlobBytes?: number;
  maxPatchBytes?: number;
}

export class PullIntake {
  private readonly d: PullIntakeDeps;

  private readonly reader: PullReader;

  constructor(deps: PullIntakeDeps) {
    this.d = deps;
    this.reader = new PullReader(deps);
  }

  /** A Jetstream record of a pull collection: queues it if it may concern a repo served here. */
  offer(ev: RecordEvent): boolean {
    const message = this.toMessage(ev);
    if (!message) return false;
    const partition = `at://${message.author}/${PULL_NSID}/${message.rkey}`;
    const id = `${ev.collection} ${ev.did} ${ev.rkey} ${ev.operation} ${digest(ev.record)}`;
    return this.d.queue.publish<PullMessage>(PULL_TOPIC, partition, id, message).published;
  }

  private toMessage(ev: RecordEvent): PullMessage | undefined {
    if (ev.collection === PULL_NSID) {
      if (ev.operation === 'delete') return undefined;
      const target = (ev.record as { target?: { repo?: unknown } } | undefined)?.target?.repo;
      // Legacy records name the target by AT-URI; their knots send the pipeline themselves.
      if (typeof target !== 'string' || !target.startsWith('did:')) return undefined;
      if (!this.d.repos.servedRepoByDid(target)) return undefined;
      const action = ev.operation === 'create' ? 'opened' : 'synchronize';
      return { author: ev.did, rkey: ev.rkey, action, actor: ev.did, record: ev.record };
    }
    if (ev.collection !== PULL_STATUS_NSID || ev.operation !== 'create') return undefined;
    const status = ev.record as { pull?: unknown; status?: unknown } | undefined;
    const uri = typeof status?.pull === 'string' ? PULL_URI.exec(status.pull) : null;
    const action = typeof status?.status === 'string' ? STATUS_ACTIONS[status.status] : undefined;
    if (!uri || !action) return undefined;
    const author = uri[1]!;
    if (!this.d.repos.mayPushSomewhere(author)) return undefined;
    return { author, rkey: uri[2]!, action, actor: ev.did };
  }

  async handle(m: PullMessage): Promise<void> {
    const log = this.d.log.child({ pull: `at://${m.author}/${PULL_NSID}/${m.rkey}`, action: m.action });
    try {
      await this.run(m, log);
    } catch (err) {
      // Unreachable PDSes and knots are retried by the queue; bad or refused input is not.
      if (!(err instanceof TreadleError) || err instanceof RetryableError) throw err;
      log.warn({ reason: errorMessage(err) }, 'pull request not run');
    }
  }

  private async run(m: PullMessage, log: Logger): Promise<void> {
    let pull: PullRecord;
    try {
      pull = await this.reader.record(m.author, m.rkey, m.record);
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
      log.info('pull status ignored: the pull record no longer exists');
      return;
    }
    const repo = pull.target.repo.startsWith('did:')
      ? this.d.repos.servedRepoByDid(pull.target.repo)
      : undefined;
    if (!repo) {
      log.debug({ target: pull.target.repo }, 'pull ignored: its target repo is not served here');
      return;
    }
    const refused = this.refusal(pull, repo, m);
    if (refused) {
      log.warn(
        { repoDid: repo.repoDid, author: m.author, actor: m.actor },
        `pull request not run: ${refused.reason}`,
      );
      this.d.metrics?.pipelinesRefused.inc({ reason: refused.code });
      return;
    }
    const sourceSha = await this.reader.tip(m.author, pull);
    const targetBranch = pull.target.branch;
    const key = pullRunKey(repo, sourceSha, targetBranch, m.action);
    if (this.d.runKeys.get(key)?.state === 'run') {
      log.info({ repoDid: repo.repoDid, sha: sourceSha }, 'pull request already runs');
      return;
    }
    const outcome = await this.d.builder.build({
      repo,
      sha: sourceSha,
      compile: { kind: 'pull_request', targetBranch, action: m.action },
      trigger: {
        kind: 'pull_request',
        pullRequest: { sourceBranch: pull.source!.branch, targetBranch, sourceSha, action: m.action },
      },
      runKey: key,
    });
    for (const d of outcome.diagnostics)
      log.warn(
        { repoDid: repo.repoDid, sha: sourceSha, workflow: d.workflow, reason: d.error },
        'workflow skipped',
      );
    if (!outcome.started) {
      if (outcome.reason === 'already-runs')
        log.info({ repoDid: repo.repoDid, sha: sourceSha }, 'pull request already runs');
      else
        log.info(
          { repoDid: repo.repoDid, sha: sourceSha, files: outcome.files },
          'pull request: no workflows to run',
        );
      return;
    }
    log.info(
      {
        repoDid: repo.repoDid,
        sha: sourceSha,
        targetBranch,
        pipeline: outcome.rkey,
        lentByKnot: outcome.lent,
        workflows: outcome.workflows,
      },
      'pull request pipeline created',
    );
  }

  /** Why this pull may not auto-trigger here, if it may not. */
  private refusal(
    pull: PullRecord,
    repo: RepoRow,
    m: PullMessage,
  ): { reason: string; code: string } | undefined {
    if (!pull.source)
      return {
        reason: 'it has no source branch (a patch-only pull does not auto-trigger)',
        code: 'patch_only',
      };
    if (pull.source.repo !== undefined)
      return {
        reason: 'it comes from a fork (source.repo is set); fork pulls do not auto-trigger',
        code: 'fork',
      };
    if (!this.d.repos.hasPushRights(repo, m.author))
      return { reason: 'its author has no push rights on the target repo', code: 'no_push_rights' };
    if (m.actor !== m.author && !this.d.repos.hasPushRights(repo, m.actor))
      return {
        reason: 'whoever changed its status is neither its author nor has push rights',
        code: 'no_push_rights',
      };
    return undefined;
  }
}

function digest(value: unknown): string {
  return createHash('sha256')
    .update(JSON.stringify(value) ?? '')
    .digest('base64url')
    .slice(0, 22);
}
