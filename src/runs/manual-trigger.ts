/**
 * Pipelines started on request, by `sh.tangled.ci.triggerPipeline` (2026 spec §3.8): a manual
 * run at a sha, or a pull request re-run. The workflows are read from the knot at that sha (the
 * fork's knot when `sourceRepo` names a fork this spindle also serves); a manual run skips every
 * `when:` constraint, a pull request run is compiled for its target branch and action; `workflows`
 * narrows either to the named files. Every call is a new pipeline under a fresh TID: re-running
 * is the point, so there is no dedup key.
 */
import { TID } from '@atproto/common-web';
import type { RepoRow, RepoStore } from '../db/repo-store.ts';
import { errorMessage, InvalidRequestError } from '../errors.ts';
import type { EventLog } from '../events/index.ts';
import type { WorkflowFetcher } from '../git/workflow-fetcher.ts';
import type { DefaultBranches } from '../knots/default-branch.ts';
import type { Logger } from '../logger.ts';
import type { PipelineRecord, PipelineStarter } from '../pipelines/starter.ts';
import { PIPELINE_NSID, pipelineUri } from '../pipelines/status-writer.ts';
import { compileWorkflows } from '../pipelines/when.ts';

export type TriggerInput =
  | {
      $type: 'sh.tangled.ci.trigger#manual';
      sha: string;
      ref?: string;
      sourceRepo?: string;
      inputs?: Array<{ key: string; value: string }>;
    }
  | {
      $type: 'sh.tangled.ci.trigger#pullRequest';
      targetBranch: string;
      sourceSha: string;
      sourceBranch?: string;
      sourceRepo?: string;
      pull?: string;
      action?: string;
    };

export interface ManualTriggerDeps {
  repos: RepoStore;
  fetcher: WorkflowFetcher;
  defaultBranches: DefaultBranches;
  events: EventLog;
  starter: PipelineStarter;
  log: Logger;
}

const SHA40 = /^[0-9a-f]{40}$/;

export class ManualTriggers {
  private readonly d: ManualTriggerDeps;

  constructor(deps: ManualTriggerDeps) {
    this.d = deps;
  }

  /**
   * Starts the pipeline; returns its TID and AT-URI. Throws InvalidRequestError for what the
   * caller can fix: a bad sha, a fork not served here, workflows that cannot be read, and "no
   * workflows to run".
   */
  async trigger(
    repo: RepoRow,
    trigger: TriggerInput,
    workflows: readonly string[] | undefined,
    by: string,
  ): Promise<{ rkey: string; uri: string; workflows: number }> {
    const manual = trigger.$type === 'sh.tangled.ci.trigger#manual';
    const sha = manual ? trigger.sha : trigger.sourceSha;
    if (!SHA40.test(sha)) throw new InvalidRequestError('sha must be exactly 40 lowercase hex characters');
    if (!manual && !trigger.targetBranch)
      throw new InvalidRequestError('a pull request trigger needs targetBranch');
    const from = this.codeRepo(repo, trigger.sourceRepo);
    let files: Awaited<ReturnType<WorkflowFetcher['fetch']>>;
    try {
      files = await this.d.fetcher.fetch(from.knot, from.repoDid!, sha);
    } catch (err) {
      throw new InvalidRequestError(
        `could not read the workflows at ${sha} from ${from.knot}: ${errorMessage(err)}`,
      );
    }
    const compiled = compileWorkflows(
      files,
      manual
        ? { kind: 'manual', workflows }
        : { kind: 'pull_request', targetBranch: trigger.targetBranch, action: trigger.action },
    );
    const chosen = compiled.workflows.filter((w) => !workflows?.length || workflows.includes(w.name));
    if (chosen.length === 0) throw new InvalidRequestError('no workflows to run');
    const defaultBranch = await this.d.defaultBranches.get(repo.knot, repo.repoDid!);
    const record = this.record(repo, trigger, defaultBranch, chosen);
    const rkey = TID.nextStr();
    const started = this.d.events.transaction(() =>
      this.d.starter.start({ knot: repo.knot, rkey, repo, record, origin: 'spindle' }, sha),
    );
    this.d.log.info(
      {
        repoDid: repo.repoDid,
        sha,
        kind: record.triggerMetadata.kind,
        pipeline: rkey,
        by,
        workflows: started.workflows,
      },
      'pipeline triggered',
    );
    return { rkey, uri: pipelineUri(repo.knot, rkey), workflows: started.workflows };
  }

  /** Where the code is: the repo itself, or a fork it names that this spindle serves too. */
  private codeRepo(repo: RepoRow, sourceRepo: string | undefined): RepoRow {
    if (!sourceRepo || sourceRepo === repo.repoDid) return repo;
    const fork = this.d.repos.servedRepoByDid(sourceRepo);
    if (!fork)
      throw new InvalidRequestError(
        `sourceRepo ${sourceRepo} is not served by this spindle, so its knot is unknown here`,
      );
    return fork;
  }

  private record(
    repo: RepoRow,
    t: TriggerInput,
    defaultBranch: string,
    workflows: PipelineRecord['workflows'],
  ): PipelineRecord {
    const repoBlock = {
      knot: repo.knot,
      did: repo.owner,
      repo: repo.rkey,
      repoDid: repo.repoDid!,
      defaultBranch,
    };
    const fork = t.sourceRepo && t.sourceRepo !== repo.repoDid ? { sourceRepo: t.sourceRepo } : {};
    if (t.$type === 'sh.tangled.ci.trigger#manual')
      return {
        $type: PIPELINE_NSID,
        triggerMetadata: {
          kind: 'manual',
          manual: {
            sha: t.sha,
            ...(t.ref ? { ref: t.ref } : {}),
            ...fork,
            ...(t.inputs?.length ? { inputs: t.inputs } : {}),
          },
          repo: repoBlock,
        },
        workflows,
      };
    return {
      $type: PIPELINE_NSID,
      triggerMetadata: {
        kind: 'pull_request',
        pullRequest: {
          sourceBranch: t.sourceBranch ?? '',
          targetBranch: t.targetBranch,
          sourceSha: t.sourceSha,
          action: t.action ?? 'opened',
          ...fork,
          ...(t.pull ? { pull: t.pull } : {}),
        },
        repo: repoBlock,
      },
      workflows,
    };
  }
}
