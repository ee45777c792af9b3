/**
 * What a pipeline is, in one place: its record (`sh.tangled.pipeline`), its AT-URI, the wire's
 * workflow statuses, and the payloads of the durable topics every other capability follows
 * (`pipeline.started`, `workflow.status`).
 */

export const PIPELINE_NSID = 'sh.tangled.pipeline';
export const STATUS_NSID = 'sh.tangled.pipeline.status';

/** Status values of `sh.tangled.pipeline.status` on the wire. */
export type WireStatus = 'pending' | 'running' | 'success' | 'failed' | 'timeout' | 'cancelled';

const RANK: Record<WireStatus, number> = {
  pending: 0,
  running: 1,
  success: 2,
  failed: 2,
  timeout: 2,
  cancelled: 2,
};

/** The order statuses of one workflow must follow: pending (0) → running (1) → terminal (2). */
export function statusRank(status: WireStatus): number {
  return RANK[status];
}

export function isTerminal(status: WireStatus | null | undefined): boolean {
  return status !== null && status !== undefined && RANK[status] === 2;
}

export type TriggerKind = 'push' | 'pull_request' | 'manual';

export interface PipelineRecord {
  $type: string;
  triggerMetadata: {
    kind: string;
    repo: { knot: string; did: string; repo?: string; repoDid?: string; defaultBranch?: string };
    push?: { ref: string; newSha: string; oldSha: string };
    pullRequest?: {
      sourceBranch: string;
      targetBranch: string;
      sourceSha: string;
      action: string;
      sourceRepo?: string;
      pull?: string;
    };
    manual?: {
      sha?: string;
      ref?: string;
      sourceRepo?: string;
      inputs?: Array<{ key: string; value: string }>;
    };
  };
  workflows: Array<{ name: string; engine: string; raw: string; clone?: unknown }>;
}

export function pipelineUri(knot: string, rkey: string): string {
  return `at://did:web:${knot}/${PIPELINE_NSID}/${rkey}`;
}

const PIPELINE_URI = /^at:\/\/did:web:([^/]{1,253})\/sh\.tangled\.pipeline\/([A-Za-z0-9._~:-]{1,512})$/;

/** The knot and record key of a pipeline AT-URI as `pipelineUri` writes it; undefined otherwise. */
export function parsePipelineUri(uri: string): { knot: string; rkey: string } | undefined {
  const m = PIPELINE_URI.exec(uri);
  return m ? { knot: m[1]!, rkey: m[2]! } : undefined;
}

/** The commit a pipeline builds, as the ci API reports and filters it. */
export function pipelineCommit(record: PipelineRecord): string | null {
  const t = record.triggerMetadata;
  return t.push?.newSha ?? t.pullRequest?.sourceSha ?? t.manual?.sha ?? null;
}

/**
 * A repository's id across treadle: its DID when it has one, else `<ownerDid>/<name>` (the
 * form a repo without a DID is known by on the wire).
 */
export function repoId(repo: { repoDid: string | null; owner: string; name: string }): string {
  return repo.repoDid ?? `${repo.owner}/${repo.name}`;
}

/** Topic: one message per pipeline started, in the transaction that starts it. */
export const PIPELINE_STARTED_TOPIC = 'pipeline.started';
/** Topic: one message per workflow status written, in the transaction that writes it. */
export const WORKFLOW_STATUS_TOPIC = 'workflow.status';

/** Who triggered a pipeline and what it builds; shared by both topics' payloads. */
export interface PipelineSubject {
  /** AT-URI of the pipeline record; the partition key of both topics. */
  pipeline: string;
  knot: string;
  /** The repo id (see `repoId`). */
  repo: string;
  /**
   * `<ownerDid>/<name>` when `repo` is the repo DID: the id the repo had before it had a DID,
   * so a consumer keyed by repo id can keep one history across the change.
   */
  repoName?: string;
  trigger: string;
  /** Pushes only: the pushed ref, fully qualified. */
  ref?: string;
  /** Pushes only: the new sha. */
  commit?: string;
}

/** `pipeline.started` (greenness spec §2, PipelineObserved). Message id: the pipeline AT-URI. */
export interface PipelineStarted extends PipelineSubject {
  workflows: string[];
  /** ms epoch, when treadle started the pipeline. */
  observedAt: number;
}

/** `workflow.status` (greenness spec §2, WorkflowStatusChanged). Message id: `<workflow>/<status>`. */
export interface WorkflowStatusChanged extends PipelineSubject {
  workflow: string;
  status: WireStatus;
  /** The status record's `createdAt` (RFC 3339, whole seconds). */
  createdAt: string;
  /** The status record's rkey on /events. */
  rkey: string;
  error?: string;
  exitCode?: number;
}

/** The subject of a stored pipeline, from its row. */
export function pipelineSubject(row: {
  knot: string;
  rkey: string;
  repoDid: string | null;
  repoOwner: string;
  repoName: string;
  kind: string;
  commit: string | null;
  record: string;
}): PipelineSubject {
  const subject: PipelineSubject = {
    pipeline: pipelineUri(row.knot, row.rkey),
    knot: row.knot,
    repo: repoId({ repoDid: row.repoDid, owner: row.repoOwner, name: row.repoName }),
    trigger: row.kind,
  };
  if (row.repoDid) subject.repoName = `${row.repoOwner}/${row.repoName}`;
  if (row.kind === 'push') {
    const push = (JSON.parse(row.record) as PipelineRecord).triggerMetadata.push;
    if (push) {
      subject.ref = push.ref;
      subject.commit = push.newSha;
    }
  }
  return subject;
}
