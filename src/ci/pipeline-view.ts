/**
 * `sh.tangled.ci.pipeline` objects (2026 spec §3.8) from treadle's rows: the TID, the repo DID,
 * the trigger as a `sh.tangled.ci.trigger` union member, the commit the run used, `createdAt`
 * from the pipeline event's `created` (RFC 3339, whole seconds), and each workflow's latest
 * status (`pending` before any) with when it started and finished.
 */
import type { WorkflowTimes } from '../db/pipeline-store.ts';
import type { PipelineRecord } from '../pipelines/pipeline.ts';

export interface CiWorkflow {
  id: string;
  name: string;
  status: string;
  startedAt?: string;
  finishedAt?: string;
  error?: string;
}

export interface CiPipeline {
  id: string;
  repo: string;
  trigger: Record<string, unknown>;
  commit?: string;
  sourceRepo?: string;
  createdAt: string;
  workflows: CiWorkflow[];
}

type Trigger = PipelineRecord['triggerMetadata'];

/** A stored trigger, read leniently: records a knot sent may lack any of these fields. */
interface TriggerMetadata {
  kind?: string;
  push?: Partial<NonNullable<Trigger['push']>>;
  pullRequest?: Partial<NonNullable<Trigger['pullRequest']>>;
  manual?: Trigger['manual'];
}

export function seconds(unix: number): string {
  return new Date(unix * 1000).toISOString().replace('.000Z', 'Z');
}

export function ciTrigger(t: TriggerMetadata, commit: string | null): Record<string, unknown> {
  if (t.kind === 'pull_request') {
    const p = t.pullRequest ?? {};
    return {
      $type: 'sh.tangled.ci.trigger#pullRequest',
      targetBranch: p.targetBranch ?? '',
      sourceSha: p.sourceSha ?? commit ?? '',
      ...(p.sourceBranch ? { sourceBranch: p.sourceBranch } : {}),
      ...(p.sourceRepo ? { sourceRepo: p.sourceRepo } : {}),
      ...(p.pull ? { pull: p.pull } : {}),
      ...(p.action ? { action: p.action } : {}),
    };
  }
  if (t.kind === 'manual') {
    return {
      $type: 'sh.tangled.ci.trigger#manual',
      sha: t.manual?.sha ?? commit ?? '',
      ...(t.manual?.ref ? { ref: t.manual.ref } : {}),
      ...(t.manual?.sourceRepo ? { sourceRepo: t.manual.sourceRepo } : {}),
      ...(t.manual?.inputs?.length ? { inputs: t.manual.inputs } : {}),
    };
  }
  const p = t.push ?? {};
  return {
    $type: 'sh.tangled.ci.trigger#push',
    ref: p.ref ?? '',
    newSha: p.newSha ?? '',
    oldSha: p.oldSha ?? '',
  };
}

export function ciPipeline(
  row: { rkey: string; repoDid: string | null; commit: string | null; created: bigint },
  trigger: TriggerMetadata,
  workflows: WorkflowTimes[],
): CiPipeline {
  const fork = trigger.pullRequest?.sourceRepo ?? trigger.manual?.sourceRepo;
  return {
    id: row.rkey,
    repo: row.repoDid ?? '',
    trigger: ciTrigger(trigger, row.commit),
    ...(row.commit ? { commit: row.commit } : {}),
    ...(fork ? { sourceRepo: fork } : {}),
    createdAt: seconds(Number(row.created / 1_000_000_000n)),
    workflows: workflows.map((w) => ({
      id: w.name,
      name: w.name,
      status: w.status ?? 'pending',
      ...(w.startedAt !== null ? { startedAt: seconds(w.startedAt) } : {}),
      ...(w.finishedAt !== null ? { finishedAt: seconds(w.finishedAt) } : {}),
      ...(w.error ? { error: w.error } : {}),
    })),
  };
}
