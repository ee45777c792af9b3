/**
 * Pipelines started on request, by `sh.tangled.ci.triggerPipeline` (2026 spec §3.8): a manual
 * run at a sha, or a pull request re-run. The workflows are read from the knot at that sha (the
 * fork's knot when `sourceRepo` names a fork this spindle also serves); a manual run skips every
 * `when:` constraint, a pull request run is compiled for its target branch and action; `workflows`
 * narrows either to the named files. Every call is a new pipeline under a fresh TID: re-running
 * is the point, so there is no dedup key.
 */
import type { RepoRow, RepoStore } from '../db/repo-store.ts';
import { errorMessage, InvalidRequestError, TreadleError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { type PipelineRecord, pipelineUri } from '../pipelines/pipeline.ts';
import type { BuildOutcome, PipelineBuilder } from '../pipelines/pipeline-builder.ts';

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
  builder: PipelineBuilder;
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
    const codeRepo = this.codeRepo(repo, trigger.sourceRepo);
    let outcome: BuildOutcome;
    try {
      outcome = await this.d.builder.build({
        repo,
        codeRepo,
        sha,
        compile: manual
          ? { kind: 'manual', workflows }
          : { kind: 'pull_request', targetBranch: trigger.targetBranch, action: trigger.action },
        only: workflows,
        trigger: triggerOf(repo, trigger),
      });
    } catch (err) {
      if (!(err instanceof TreadleError)) throw err;
      throw new InvalidRequestError(
        `could not read the workflows at ${sha} from ${codeRepo.knot}: ${errorMessage(err)}`,
      );
    }
    if (!outcome.started) throw new InvalidRequestError('no workflows to run');
    this.d.log.info(
      {
        repoDid: repo.repoDid,
        sha,
        kind: manual ? 'manual' : 'pull_request',
        pipeline: outcome.rkey,
        by,
        workflows: outcome.workflows,
      },
      'pipeline triggered',
    );
    return { rkey: outcome.rkey, uri: pipelineUri(repo.knot, outcome.rkey), workflows: outcome.workflows };
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
}

/** The record's trigger for a manual run or a pull request re-run. */
function triggerOf(repo: RepoRow, t: TriggerInput): Omit<PipelineRecord['triggerMetadata'], 'repo'> {
  const fork = t.sourceRepo && t.sourceRepo !== repo.repoDid ? { sourceRepo: t.sourceRepo } : {};
  if (t.$type === 'sh.tangled.ci.trigger#manual')
    return {
      kind: 'manual',
      manual: {
        sha: t.sha,
        ...(t.ref ? { ref: t.ref } : {}),
        ...fork,
        ...(t.inputs?.length ? { inputs: t.inputs } : {}),
      },
    };
  return {
    kind: 'pull_request',
    pullRequest: {
      sourceBranch: t.sourceBranch ?? '',
      targetBranch: t.targetBranch,
      sourceSha: t.sourceSha,
      action: t.action ?? 'opened',
      ...fork,
      ...(t.pull ? { pull: t.pull } : {}),
    },
  };
}
