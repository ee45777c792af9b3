/**
 * The authenticated run methods (2026 spec §2, §3.8): `sh.tangled.ci.triggerPipeline`,
 * `sh.tangled.ci.cancelPipeline` and the deprecated `sh.tangled.pipeline.cancelPipeline`.
 *
 * Order of checks: service auth (403 `Auth`), the body against the method's lexicon (400
 * `InvalidRequest`), the repository and pipeline (400 `RepoNotFound`/`PipelineNotFound`/
 * `WorkflowNotFound`), then the caller's rights (400 `AccessControl`, as upstream answers here;
 * the secret methods answer 401). Triggering needs push rights on the repository; cancelling is also allowed to the
 * spindle's owner. A cancel of workflows that have all finished changes nothing and answers
 * 400 `AlreadyFinished` naming them; otherwise 200 with what was done, which the lexicon does
 * not define and clients may ignore.
 */
import type { Hono } from 'hono';
import type { RecordValidator } from '../atproto/lexicons.ts';
import type { ServiceAuth } from '../atproto/service-auth.ts';
import type { PipelineRow, PipelineStore } from '../db/pipeline-store.ts';
import type { RepoRow, RepoStore } from '../db/repo-store.ts';
import { XrpcError } from '../errors.ts';
import { jsonObjectBody } from '../http/body.ts';
import type { Logger } from '../logger.ts';
import { parsePipelineUri } from '../pipelines/pipeline.ts';
import type { Queue } from '../queue/index.ts';
import { REPO_URI } from '../secrets/secret-api.ts';
import type { ManualTriggers, TriggerInput } from './manual-trigger.ts';
import { type CancelOutcome, cancelWorkflows, nothingToCancel } from './run-control.ts';

export const TRIGGER_NSID = 'sh.tangled.ci.triggerPipeline';
export const CANCEL_NSID = 'sh.tangled.ci.cancelPipeline';
export const LEGACY_CANCEL_NSID = 'sh.tangled.pipeline.cancelPipeline';
/**
 * The cancel method the newest appview code calls (its generated client names it
 * `CiPipelineCancelPipeline`): the same input as `sh.tangled.ci.cancelPipeline`, with the repo
 * and pipeline given as AT-URIs. Served with the same semantics.
 */
export const CI_PIPELINE_CANCEL_NSID = 'sh.tangled.ci.pipeline.cancelPipeline';

const MAX_BODY = 64 * 1024;

export interface RunApiDeps {
  auth: ServiceAuth;
  validator: RecordValidator;
  repos: RepoStore;
  pipelines: PipelineStore;
  queue: Pick<Queue, 'wake'>;
  triggers: ManualTriggers;
  /** The spindle owner's DID: may cancel anything. */
  owner: string;
  log: Logger;
}

interface TriggerBody {
  repo: string;
  trigger: TriggerInput;
  workflows?: string[];
}

export class RunApi {
  private readonly d: RunApiDeps;

  constructor(deps: RunApiDeps) {
    this.d = deps;
  }

  mount(app: Hono): void {
    app.post(`/xrpc/${TRIGGER_NSID}`, async (c) => {
      const caller = await this.d.auth.verify(c.req.header('authorization'), TRIGGER_NSID);
      const body = await this.input<TriggerBody>(
        TRIGGER_NSID,
        this.normalise(await jsonObjectBody(c, MAX_BODY), 'trigger'),
      );
      const repo = this.repoByDid(body.repo);
      if (!this.d.repos.hasPushRights(repo, caller.did)) throw denied(caller.did);
      const started = await this.d.triggers.trigger(repo, body.trigger, body.workflows, caller.did);
      return c.json({ pipeline: started.uri });
    });
    for (const nsid of [CANCEL_NSID, CI_PIPELINE_CANCEL_NSID])
      app.post(`/xrpc/${nsid}`, async (c) => {
        const caller = await this.d.auth.verify(c.req.header('authorization'), nsid);
        const body = await this.input<{ repo: string; pipeline: string; workflows?: string[] }>(
          CANCEL_NSID,
          this.normalise(await jsonObjectBody(c, MAX_BODY), 'cancel'),
        );
        const repo = this.repoByDid(body.repo);
        const pipeline = this.d.pipelines.pipelineByTid(body.pipeline);
        if (!pipeline || pipeline.repoDid !== repo.repoDid)
          throw new XrpcError(400, 'PipelineNotFound', `no pipeline ${body.pipeline} of ${body.repo}`);
        return c.json(this.cancel(repo, pipeline, body.workflows, caller.did));
      });
    app.post(`/xrpc/${LEGACY_CANCEL_NSID}`, async (c) => {
      const caller = await this.d.auth.verify(c.req.header('authorization'), LEGACY_CANCEL_NSID);
      const body = await this.input<{ repo: string; pipeline: string; workflow: string }>(
        LEGACY_CANCEL_NSID,
        await jsonObjectBody(c, MAX_BODY),
      );
      const r = REPO_URI.exec(body.repo);
      const repo = r ? this.d.repos.servedRepo(r[1]!, r[2]!) : undefined;
      if (!repo) throw new XrpcError(400, 'RepoNotFound', `no repo ${body.repo} is served here`);
      const p = parsePipelineUri(body.pipeline);
      const pipeline = p ? this.d.pipelines.pipeline(p.knot, p.rkey) : undefined;
      if (!pipeline || !belongsTo(pipeline, repo))
        throw new XrpcError(400, 'PipelineNotFound', `no pipeline ${body.pipeline} of ${body.repo}`);
      return c.json(this.cancel(repo, pipeline, [body.workflow], caller.did));
    });
    for (const nsid of [TRIGGER_NSID, CANCEL_NSID, CI_PIPELINE_CANCEL_NSID, LEGACY_CANCEL_NSID])
      app.all(`/xrpc/${nsid}`, (c) => c.body(null, 405, { Allow: 'POST' }));
  }

  private cancel(
    repo: RepoRow,
    pipeline: PipelineRow,
    names: string[] | undefined,
    by: string,
  ): CancelOutcome {
    if (by !== this.d.owner && !this.d.repos.hasPushRights(repo, by)) throw denied(by);
    const outcome = cancelWorkflows(this.d.pipelines, this.d.queue, pipeline, names, by);
    if (outcome.unknown.length > 0)
      throw new XrpcError(
        400,
        'WorkflowNotFound',
        `pipeline ${pipeline.rkey} has no workflow ${outcome.unknown.join(', ')}`,
      );
    const nothing = nothingToCancel(outcome);
    if (nothing) throw new XrpcError(400, 'AlreadyFinished', nothing);
    this.d.log.info(
      { knot: pipeline.knot, rkey: pipeline.rkey, by, cancelled: outcome.cancelled },
      'cancel requested',
    );
    return outcome;
  }

  /**
   * The shapes the newest appview sends, as the lexicon's: a repo named by its AT-URI becomes its
   * DID, a pipeline AT-URI its TID, and a trigger given as a bare `sha` a manual trigger.
   */
  private normalise(body: Record<string, unknown>, kind: 'trigger' | 'cancel'): Record<string, unknown> {
    const out = { ...body };
    const uri = typeof out.repo === 'string' ? REPO_URI.exec(out.repo) : null;
    if (uri) {
      const repo = this.d.repos.servedRepo(uri[1]!, uri[2]!);
      if (!repo) throw new XrpcError(400, 'RepoNotFound', `no repo ${out.repo} is served here`);
      if (!repo.repoDid) throw new XrpcError(400, 'RepoNotFound', `repo ${out.repo} has no DID yet`);
      out.repo = repo.repoDid;
    }
    if (kind === 'cancel' && typeof out.pipeline === 'string') {
      const p = parsePipelineUri(out.pipeline);
      if (p) out.pipeline = p.rkey;
    }
    if (kind === 'trigger' && out.trigger === undefined && typeof out.sha === 'string') {
      out.trigger = { $type: 'sh.tangled.ci.trigger#manual', sha: out.sha };
      delete out.sha;
    }
    return out;
  }

  private input<T>(nsid: string, body: unknown): T {
    return this.d.validator.validateInput<T>(nsid, body);
  }

  private repoByDid(did: string): RepoRow {
    const repo = this.d.repos.servedRepoByDid(did);
    if (!repo) throw new XrpcError(400, 'RepoNotFound', `no repo ${did} is served here`);
    return repo;
  }
}

function belongsTo(p: PipelineRow, repo: RepoRow): boolean {
  return p.repoDid && repo.repoDid
    ? p.repoDid === repo.repoDid
    : p.knot === repo.knot && p.repoOwner === repo.owner && p.repoName === repo.name;
}

/** Upstream answers 400 here (the secret methods answer 401 for the same refusal). */
function denied(did: string): XrpcError {
  return new XrpcError(
    400,
    'AccessControl',
    `DID does not have sufficent access permissions for this operation: ${did}`,
  );
}
