/**
 * The one way treadle builds a pipeline itself, shared by pushes, pull requests and manual
 * triggers: read `.tangled/workflows/` at the commit from the knot, compile each file's `when:`
 * for the trigger, look up the default branch, write the record, and start it in one unit of
 * work under the trigger's dedup key (taking the rkey a knot's own pipeline lent, if any).
 */
import { TID } from '@atproto/common-web';
import type { RecordValidator } from '../atproto/lexicons.ts';
import type { RepoRow, RepoStore } from '../db/repo-store.ts';
import type { RunKeyStore } from '../db/run-key-store.ts';
import type { UnitOfWork } from '../db/unit-of-work.ts';
import type { WorkflowFetcher } from '../git/workflow-fetcher.ts';
import type { DefaultBranches } from '../knots/default-branch.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics/metrics.ts';
import type { Queue } from '../queue/index.ts';
import { PIPELINE_NSID, type PipelineRecord } from './pipeline.ts';
import type { PipelineStarter } from './starter.ts';
import { type CompiledWorkflow, type CompileTrigger, compileWorkflows, type Diagnostic } from './when.ts';

type Trigger = Omit<PipelineRecord['triggerMetadata'], 'repo'>;

export interface BuildPlan {
  /** The repository the pipeline belongs to (and whose knot it is announced on). */
  repo: RepoRow;
  /** Where the code is read from, when not `repo` itself (a fork served here too). */
  codeRepo?: RepoRow;
  sha: string;
  /** What `when:` is evaluated against. */
  compile: CompileTrigger;
  /** Narrows the compiled workflows to these names (empty or absent: all of them). */
  only?: readonly string[];
  trigger: Trigger;
  /** The dedup key this run claims (none for manual runs: each call is a new run). */
  runKey?: string;
  /** A push from a knot whose mode is unknown: record that it did not send this pipeline itself. */
  learnKnotMode?: boolean;
}

export type BuildOutcome =
  | {
      started: true;
      rkey: string;
      lent: boolean;
      workflows: number;
      created: bigint;
      diagnostics: Diagnostic[];
    }
  | { started: false; reason: 'no-workflows'; files: number; diagnostics: Diagnostic[] }
  | { started: false; reason: 'already-runs'; diagnostics: Diagnostic[] };

export interface PipelineBuilderDeps {
  repos: RepoStore;
  runKeys: RunKeyStore;
  uow: UnitOfWork;
  starter: PipelineStarter;
  fetcher: WorkflowFetcher;
  defaultBranches: DefaultBranches;
  log: Logger;
}

/** What the intakes that build pipelines themselves (pushes, pull requests) share. */
export interface SelfBuiltIntakeDeps {
  repos: RepoStore;
  runKeys: RunKeyStore;
  queue: Queue;
  builder: PipelineBuilder;
  validator: RecordValidator;
  log: Logger;
  /** Counts refused triggers by reason code. */
  metrics?: Pick<Metrics, 'pipelinesRefused'>;
}

export class PipelineBuilder {
  private readonly d: PipelineBuilderDeps;

  constructor(deps: PipelineBuilderDeps) {
    this.d = deps;
  }

  /**
   * Builds and starts the pipeline. Errors reading the workflows propagate (the caller decides
   * whether that is a retry, a refusal or a 400); an empty result is an outcome, not an error.
   */
  async build(plan: BuildPlan): Promise<BuildOutcome> {
    const { repo } = plan;
    const from = plan.codeRepo ?? repo;
    const files = await this.d.fetcher.fetch(from.knot, from.repoDid!, plan.sha);
    const compiled = compileWorkflows(files, plan.compile);
    const workflows = compiled.workflows.filter((w) => !plan.only?.length || plan.only.includes(w.name));
    if (workflows.length === 0)
      return {
        started: false,
        reason: 'no-workflows',
        files: files.length,
        diagnostics: compiled.diagnostics,
      };
    const defaultBranch = await this.d.defaultBranches.get(repo.knot, repo.repoDid!);
    const record = recordOf(repo, plan.trigger, defaultBranch, workflows);
    const started = this.d.uow.run(() => {
      const claim = plan.runKey ? this.d.runKeys.get(plan.runKey) : undefined;
      if (claim?.state === 'run') return undefined;
      const lent = claim?.state === 'lent' && claim.knot === repo.knot ? claim.rkey : undefined;
      if (plan.learnKnotMode && !lent && this.d.runKeys.knotMode(repo.knot).sendsPipelines === null)
        this.d.runKeys.setSendsPipelines(repo.knot, false);
      const rkey = lent ?? TID.nextStr();
      const result = this.d.starter.start(
        { knot: repo.knot, rkey, repo, record, origin: 'spindle', runKey: plan.runKey },
        plan.sha,
      );
      return { rkey, lent: lent !== undefined, ...result };
    });
    if (!started) return { started: false, reason: 'already-runs', diagnostics: compiled.diagnostics };
    return { started: true, ...started, diagnostics: compiled.diagnostics };
  }
}

function recordOf(
  repo: RepoRow,
  trigger: Trigger,
  defaultBranch: string,
  workflows: CompiledWorkflow[],
): PipelineRecord {
  return {
    $type: PIPELINE_NSID,
    triggerMetadata: {
      ...trigger,
      repo: { knot: repo.knot, did: repo.owner, repo: repo.rkey, repoDid: repo.repoDid!, defaultBranch },
    },
    workflows,
  };
}
