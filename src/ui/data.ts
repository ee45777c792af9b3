/**
 * What the dashboard reads, gathered in one place from the capabilities that own it: served
 * repos and pipelines (the context's stores), greenness (its module's store and API), knot
 * connections (the knots module), landing results (the landing module), the queue's counts and
 * the runners. Read-only: the dashboard never writes.
 */
import type { BuildRunner } from '../../providers/runner.ts';
import type { AppContext } from '../context.ts';
import type { QueueRow } from '../db/greenness-store.ts';
import type { StoredResult } from '../db/landing-store.ts';
import type { PipelineRow, WorkflowTimes } from '../db/pipeline-store.ts';
import type { GreennessModule } from '../greenness/module.ts';

export interface UiDeps {
  greenness: Pick<GreennessModule, 'api' | 'store'>;
  knots: { connections(): Array<{ knot: string; state: string; downForMs: number }> };
  landing: { results(target: string, limit: number): StoredResult[] };
  runners: ReadonlyMap<string, BuildRunner>;
}

export interface RepoView {
  id: string;
  owner: string;
  name: string;
  knot: string;
  queues: QueueRow[];
}

export interface PipelineView {
  pipeline: PipelineRow;
  ref: string | null;
  workflows: WorkflowTimes[];
}

export class UiData {
  readonly ctx: AppContext;
  readonly d: UiDeps;

  constructor(ctx: AppContext, deps: UiDeps) {
    this.ctx = ctx;
    this.d = deps;
  }

  /** Served repos matching `filter` (owner or name), a page of them with their branches. */
  repos(filter: string, offset: number, limit: number): { total: number; items: RepoView[] } {
    const { total, rows } = this.ctx.repos.servedReposPage(filter, offset, limit);
    const items = rows.map((r) => {
      const id = r.repoDid ?? `${r.owner}/${r.name}`;
      return {
        id,
        owner: r.owner,
        name: r.name,
        knot: r.knot,
        queues: this.d.greenness.store.queuesOfRepo(id, 20),
      };
    });
    return { total, items };
  }

  /** A pipeline with its workflows and the ref it built. */
  pipeline(knot: string, rkey: string): PipelineView | undefined {
    const pipeline = this.ctx.pipelines.pipeline(knot, rkey);
    return pipeline ? this.view(pipeline) : undefined;
  }

  recentPipelines(limit: number): PipelineView[] {
    return this.ctx.pipelines.recentPipelines(limit).map((p) => this.view(p));
  }

  private view(pipeline: PipelineRow): PipelineView {
    const workflows = this.ctx.pipelines.workflowsOf(pipeline.knot, pipeline.rkey);
    return { pipeline, ref: refOf(pipeline.record), workflows };
  }

  /** How long a pipeline ran: first start to last finish of its workflows (seconds), if it ended. */
  static durationOf(workflows: readonly WorkflowTimes[]): number | undefined {
    const starts = workflows.map((w) => w.startedAt).filter((t): t is number => t !== null);
    const ends = workflows.map((w) => w.finishedAt);
    if (starts.length === 0 || ends.some((t) => t === null)) return undefined;
    return Math.max(...(ends as number[])) - Math.min(...starts);
  }

  runnerOf(name: string | null): BuildRunner | undefined {
    return name ? this.d.runners.get(name) : undefined;
  }
}

/** The ref a pipeline record's trigger names (push ref, or a pull's source branch). */
function refOf(record: string): string | null {
  try {
    const r = JSON.parse(record) as {
      triggerMetadata?: { push?: { ref?: string }; pullRequest?: { sourceBranch?: string } };
    };
    const t = r.triggerMetadata;
    return t?.push?.ref ?? (t?.pullRequest?.sourceBranch ? `refs/heads/${t.pullRequest.sourceBranch}` : null);
  } catch {
    return null;
  }
}
