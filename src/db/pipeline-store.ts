/** SQL of accepted pipelines and their workflows: route, build id, last status sent, log state. */
import type { Statement } from 'better-sqlite3';
import type { WireStatus } from '../pipelines/pipeline.ts';
import type { Db } from './database.ts';

export interface WorkflowKey {
  knot: string;
  rkey: string;
  name: string;
}

export interface WorkflowRow extends WorkflowKey {
  engine: string;
  runner: string | null;
  /** The runner's options from the workflow's `treadle:` block, as JSON. */
  options: string;
  buildId: string | null;
  status: WireStatus | null;
  /** Unix second of the last status's `createdAt`. */
  statusAt: number | null;
  error: string | null;
  exitCode: number | null;
  logsDone: boolean;
  /** Who asked to cancel the run, once someone has; the dispatcher carries it out. */
  cancelRequestedBy: string | null;
}

export type PipelineOrigin = 'knot' | 'spindle';

export interface PipelineRow {
  knot: string;
  rkey: string;
  repoOwner: string;
  repoName: string;
  repoDid: string | null;
  kind: string;
  /** The commit the run builds: push newSha, PR sourceSha or the manual sha. */
  commit: string | null;
  /** Unix ns of the pipeline's `sh.tangled.pipeline` event: its place in ci API pages. */
  created: bigint;
  origin: PipelineOrigin;
  /** The `sh.tangled.pipeline` record as received or built, JSON. */
  record: string;
  receivedAt: number;
}

const PIPELINE_COLUMNS = `knot, rkey, repo_owner AS repoOwner, repo_name AS repoName, repo_did AS repoDid,
  kind, commit_sha AS "commit", created, origin, record, received_at AS receivedAt`;

/** A workflow as the ci API shows it: its row plus when it started and finished (Unix seconds). */
export interface WorkflowTimes extends WorkflowRow {
  startedAt: number | null;
  finishedAt: number | null;
}

const WORKFLOW_COLUMNS = `knot, rkey, name, engine, runner, options, build_id AS buildId, status,
  status_at AS statusAt, error, exit_code AS exitCode, logs_done AS logsDone,
  cancel_requested_by AS cancelRequestedBy`;

export class PipelineStore {
  readonly db: Db;
  private readonly s: Record<string, Statement>;

  constructor(db: Db) {
    this.db = db;
    const p = (sql: string) => db.prepare(sql);
    this.s = {
      insertPipeline: p(`INSERT OR IGNORE INTO pipelines (knot, rkey, repo_owner, repo_name, repo_did, kind,
                             commit_sha, created, origin, record, received_at)
                         VALUES (@knot, @rkey, @repoOwner, @repoName, @repoDid, @kind, @commit, @created,
                             @origin, @record, @receivedAt)`),
      pipeline: p(`SELECT ${PIPELINE_COLUMNS} FROM pipelines WHERE knot = ? AND rkey = ?`).safeIntegers(true),
      byTid: p(
        `SELECT ${PIPELINE_COLUMNS} FROM pipelines WHERE rkey = ? ORDER BY created LIMIT 1`,
      ).safeIntegers(true),
      workflowsOf: p(`SELECT ${WORKFLOW_COLUMNS}, started_at AS startedAt, finished_at AS finishedAt
                      FROM workflows WHERE knot = ? AND rkey = ? ORDER BY name`),
      assignRepoDid: p(`UPDATE pipelines SET repo_did = @repoDid
                        WHERE knot = @knot AND repo_owner = @owner AND repo_name = @name AND repo_did IS NULL`),
      insertWorkflow:
        p(`INSERT OR IGNORE INTO workflows (knot, rkey, name, engine, runner, options, updated_at)
                         VALUES (@knot, @rkey, @name, @engine, @runner, @options, @now)`),
      workflow: p(`SELECT ${WORKFLOW_COLUMNS} FROM workflows WHERE knot = ? AND rkey = ? AND name = ?`),
      unfinishedLogs: p(`SELECT ${WORKFLOW_COLUMNS} FROM workflows
                         WHERE logs_done = 0 AND build_id IS NOT NULL`),
      setBuild: p(`UPDATE workflows SET build_id = @buildId, updated_at = @now
                   WHERE knot = @knot AND rkey = @rkey AND name = @name`),
      setStatus: p(`UPDATE workflows SET status = @status, status_at = @statusAt, error = @error,
                      exit_code = @exitCode, updated_at = @now,
                      started_at = CASE WHEN @status = 'running' THEN coalesce(started_at, @statusAt)
                                        ELSE started_at END,
                      finished_at = CASE WHEN @status IN ('pending', 'running') THEN finished_at
                                         ELSE @statusAt END
                    WHERE knot = @knot AND rkey = @rkey AND name = @name`),
      requestCancel:
        p(`UPDATE workflows SET cancel_requested_by = @by, cancel_requested_at = @now, updated_at = @now
                         WHERE knot = @knot AND rkey = @rkey AND name = @name AND cancel_requested_at IS NULL
                           AND (status IS NULL OR status IN ('pending', 'running'))`),
      recent: p(`SELECT ${PIPELINE_COLUMNS} FROM pipelines ORDER BY created DESC LIMIT ?`).safeIntegers(true),
      active: p(`SELECT ${PIPELINE_COLUMNS} FROM pipelines p WHERE EXISTS (
                   SELECT 1 FROM workflows w WHERE w.knot = p.knot AND w.rkey = p.rkey
                     AND (w.status IS NULL OR w.status IN ('pending', 'running')))
                 ORDER BY created DESC LIMIT ?`).safeIntegers(true),
      pullStatuses: p(`SELECT w.name, w.status FROM workflows w JOIN (
                         SELECT knot, rkey FROM pipelines WHERE repo_did = ? AND commit_sha = ? AND kind = 'pull_request'
                         ORDER BY created DESC LIMIT 1) p ON w.knot = p.knot AND w.rkey = p.rkey ORDER BY w.name`),
      setLogsDone: p(`UPDATE workflows SET logs_done = 1, updated_at = @now
                      WHERE knot = @knot AND rkey = @rkey AND name = @name`),
    };
  }

  /** The workflows of the newest pull-request pipeline of a repo at a commit, with their statuses (empty: none). */
  pullStatuses(repoDid: string, commit: string): Array<{ name: string; status: string | null }> {
    return this.s.pullStatuses!.all(repoDid, commit) as Array<{ name: string; status: string | null }>;
  }

  /** Records a pipeline; false if (knot, rkey) was recorded before. */
  insertPipeline(row: PipelineRow): boolean {
    return this.s.insertPipeline!.run(row).changes > 0;
  }

  pipeline(knot: string, rkey: string): PipelineRow | undefined {
    return pipelineRow(this.s.pipeline!.get(knot, rkey));
  }

  /** A pipeline by its TID alone, as the ci API names it (the oldest, should two knots share one). */
  pipelineByTid(rkey: string): PipelineRow | undefined {
    return pipelineRow(this.s.byTid!.get(rkey));
  }

  workflowsOf(knot: string, rkey: string): WorkflowTimes[] {
    return this.s.workflowsOf!.all(knot, rkey).map((r) => fromRow(r) as WorkflowTimes);
  }

  /** Gives pipelines of a repo known only by owner and name its newly assigned DID. */
  assignRepoDid(where: { knot: string; owner: string; name: string }, repoDid: string): number {
    return this.s.assignRepoDid!.run({ ...where, repoDid }).changes;
  }

  insertWorkflow(
    w: WorkflowKey & { engine: string; runner: string | null; options: string },
    now = Date.now(),
  ): void {
    this.s.insertWorkflow!.run({ ...w, now });
  }

  workflow(k: WorkflowKey): WorkflowRow | undefined {
    return fromRow(this.s.workflow!.get(k.knot, k.rkey, k.name));
  }

  /** Workflows with a build whose logs have not been collected to the end. */
  unfinishedLogs(): WorkflowRow[] {
    return this.s.unfinishedLogs!.all().map((r) => fromRow(r)!);
  }

  setBuild(k: WorkflowKey, buildId: string, now = Date.now()): void {
    this.s.setBuild!.run({ ...pick(k), buildId, now });
  }

  setStatus(
    k: WorkflowKey,
    s: { status: WireStatus; statusAt: number; error?: string; exitCode?: number },
    now = Date.now(),
  ): void {
    this.s.setStatus!.run({
      ...pick(k),
      status: s.status,
      statusAt: s.statusAt,
      error: s.error ?? null,
      exitCode: s.exitCode ?? null,
      now,
    });
  }

  /**
   * Records that `by` asked to cancel an unfinished workflow. False when it has finished, or a
   * cancel was already asked for (the first request stands).
   */
  requestCancel(k: WorkflowKey, by: string, now = Date.now()): boolean {
    return this.s.requestCancel!.run({ ...pick(k), by, now }).changes > 0;
  }

  /** The newest pipelines, or only those with a workflow still pending or running. */
  recentPipelines(limit: number, activeOnly = false): PipelineRow[] {
    return (activeOnly ? this.s.active! : this.s.recent!).all(limit).map((r) => pipelineRow(r)!);
  }

  setLogsDone(k: WorkflowKey, now = Date.now()): void {
    this.s.setLogsDone!.run({ ...pick(k), now });
  }
}

function pick(k: WorkflowKey): WorkflowKey {
  return { knot: k.knot, rkey: k.rkey, name: k.name };
}

function pipelineRow(r: unknown): PipelineRow | undefined {
  if (!r) return undefined;
  const row = r as PipelineRow & { receivedAt: bigint };
  return { ...row, receivedAt: Number(row.receivedAt) };
}

function fromRow(r: unknown): WorkflowRow | undefined {
  if (!r) return undefined;
  const row = r as Omit<WorkflowRow, 'logsDone'> & { logsDone: number };
  return { ...row, logsDone: row.logsDone === 1 };
}
