/** SQL of the greenness recorder (migration 0009): queues, observed pipelines and runs, validations, facts, the green log. */
import type { Statement } from 'better-sqlite3';
import type { Db } from './database.ts';

export type ValidationState = 'pending' | 'succeeded' | 'failed' | 'cancelled' | 'expired';

export interface QueueRow {
  key: string;
  repo: string;
  ref: string;
  nextSeq: number;
  lastGreenSeq: number | null;
  lastGreenCommit: string | null;
  lastGreenValidation: string | null;
  lastGreenAt: number | null;
  tipSeq: number | null;
  tipGreen: number | null;
  tipPrevGreen: number | null;
}

export interface ObservedPipeline {
  pipeline: string;
  knot: string;
  repo: string;
  trigger: string;
  ref: string | null;
  commit: string | null;
  workflows: string[];
  observedAt: number;
}

export interface ValidationRow {
  id: string;
  queue: string;
  seq: number;
  commit: string;
  pipeline: string;
  attempt: number;
  state: ValidationState;
  deadlineAt: number;
  createdAt: number;
  updatedAt: number;
}

export interface FactRow {
  queue: string;
  commit: string;
  project: string;
  degree: number;
  validation: string;
  createdAt: number;
}

const QUEUE = `key, repo, ref, next_seq AS nextSeq, last_green_seq AS lastGreenSeq,
  last_green_commit AS lastGreenCommit, last_green_validation AS lastGreenValidation,
  last_green_at AS lastGreenAt, tip_seq AS tipSeq, tip_green AS tipGreen, tip_prev_green AS tipPrevGreen`;
const VALIDATION = `id, queue, seq, commit_sha AS "commit", pipeline, attempt, state, deadline_at AS deadlineAt,
  created_at AS createdAt, updated_at AS updatedAt`;
const FACT = `queue, commit_sha AS "commit", project, degree, validation, created_at AS createdAt`;

export class GreennessStore {
  readonly db: Db;
  private readonly s: Record<string, Statement>;

  constructor(db: Db) {
    this.db = db;
    const p = (sql: string) => db.prepare(sql);
    this.s = {
      queue: p(`SELECT ${QUEUE} FROM gn_queue WHERE key = ?`),
      queues: p(`SELECT ${QUEUE} FROM gn_queue ORDER BY repo, ref`),
      queuesOf: p(`SELECT ${QUEUE} FROM gn_queue WHERE repo = ? ORDER BY ref`),
      ensureQueue: p('INSERT OR IGNORE INTO gn_queue (key, repo, ref) VALUES (?, ?, ?)'),
      takeSeq: p('UPDATE gn_queue SET next_seq = next_seq + 1 WHERE key = ? RETURNING next_seq - 1 AS seq'),
      setTip: p('UPDATE gn_queue SET tip_seq = ?, tip_green = ?, tip_prev_green = ? WHERE key = ?'),
      setLastGreen:
        p(`UPDATE gn_queue SET last_green_seq = ?, last_green_commit = ?, last_green_validation = ?,
                         last_green_at = ? WHERE key = ?`),
      insertPipeline:
        p(`INSERT OR IGNORE INTO gn_pipeline (pipeline, knot, repo, trigger, ref, commit_sha, workflows, observed_at)
                         VALUES (@pipeline, @knot, @repo, @trigger, @ref, @commit, @workflows, @observedAt)`),
      pipeline:
        p(`SELECT pipeline, knot, repo, trigger, ref, commit_sha AS "commit", workflows, observed_at AS observedAt
                   FROM gn_pipeline WHERE pipeline = ?`),
      run: p('SELECT status FROM gn_run WHERE pipeline = ? AND workflow = ?'),
      runs: p('SELECT workflow, status FROM gn_run WHERE pipeline = ?'),
      upsertRun: p(`INSERT INTO gn_run (pipeline, workflow, status, status_at) VALUES (?, ?, ?, ?)
                    ON CONFLICT (pipeline, workflow) DO UPDATE SET status = excluded.status, status_at = excluded.status_at`),
      validationByCommit: p(`SELECT ${VALIDATION} FROM gn_validation WHERE queue = ? AND commit_sha = ?`),
      validation: p(`SELECT ${VALIDATION} FROM gn_validation WHERE id = ?`),
      pendingOf: p(`SELECT ${VALIDATION} FROM gn_validation WHERE pipeline = ? AND state = 'pending'`),
      insertValidation:
        p(`INSERT INTO gn_validation (id, queue, seq, commit_sha, pipeline, attempt, state, deadline_at,
                             created_at, updated_at)
                           VALUES (@id, @queue, @seq, @commit, @pipeline, @attempt, 'pending', @deadlineAt, @now, @now)`),
      rebind:
        p(`UPDATE gn_validation SET pipeline = ?, attempt = attempt + 1, state = 'pending', deadline_at = ?,
                   updated_at = ? WHERE id = ? AND state IN ('cancelled', 'expired')`),
      setState: p(
        `UPDATE gn_validation SET state = ?, updated_at = ? WHERE id = ? AND attempt = ? AND state = 'pending'`,
      ),
      history: p(
        `SELECT ${VALIDATION} FROM gn_validation WHERE queue = ? AND seq < ? ORDER BY seq DESC LIMIT ?`,
      ),
      counts:
        p(`SELECT SUM(state = 'succeeded') AS green, SUM(state IN ('failed', 'cancelled', 'expired')) AS notGreen,
                   SUM(state = 'pending') AS pending FROM gn_validation WHERE queue = ?`),
      fact: p(`SELECT ${FACT} FROM gn_fact WHERE queue = ? AND commit_sha = ? AND project = ?`),
      facts: p(`SELECT ${FACT} FROM gn_fact WHERE queue = ? AND commit_sha = ? ORDER BY project`),
      insertFact:
        p(`INSERT OR IGNORE INTO gn_fact (queue, commit_sha, project, degree, validation, created_at)
                     VALUES (@queue, @commit, @project, @degree, @validation, @createdAt)`),
      greenLog: p(
        `INSERT OR IGNORE INTO gn_green_log (queue, seq, commit_sha, validation, recorded_at) VALUES (?, ?, ?, ?, ?)`,
      ),
    };
  }

  queue(key: string): QueueRow | undefined {
    return this.s.queue!.get(key) as QueueRow | undefined;
  }

  queues(repo?: string): QueueRow[] {
    return (repo === undefined ? this.s.queues!.all() : this.s.queuesOf!.all(repo)) as QueueRow[];
  }

  ensureQueue(key: string, repo: string, ref: string): void {
    this.s.ensureQueue!.run(key, repo, ref);
  }

  /** The queue's next seq, taken. */
  takeSeq(key: string): number {
    return (this.s.takeSeq!.get(key) as { seq: number }).seq;
  }

  setTip(key: string, seq: number, green: boolean, prevGreen: boolean | null): void {
    this.s.setTip!.run(seq, green ? 1 : 0, prevGreen === null ? null : prevGreen ? 1 : 0, key);
  }

  setLastGreen(key: string, seq: number, commit: string, validation: string, at: number): void {
    this.s.setLastGreen!.run(seq, commit, validation, at, key);
  }

  insertPipeline(p: ObservedPipeline): void {
    this.s.insertPipeline!.run({ ...p, workflows: JSON.stringify(p.workflows) });
  }

  pipeline(id: string): ObservedPipeline | undefined {
    const row = this.s.pipeline!.get(id) as
      | (Omit<ObservedPipeline, 'workflows'> & { workflows: string })
      | undefined;
    return row ? { ...row, workflows: JSON.parse(row.workflows) as string[] } : undefined;
  }

  runStatus(pipeline: string, workflow: string): string | undefined {
    return (this.s.run!.get(pipeline, workflow) as { status: string } | undefined)?.status;
  }

  runs(pipeline: string): Map<string, string> {
    const rows = this.s.runs!.all(pipeline) as Array<{ workflow: string; status: string }>;
    return new Map(rows.map((r) => [r.workflow, r.status]));
  }

  upsertRun(pipeline: string, workflow: string, status: string, at: number): void {
    this.s.upsertRun!.run(pipeline, workflow, status, at);
  }

  validationByCommit(queue: string, commit: string): ValidationRow | undefined {
    return this.s.validationByCommit!.get(queue, commit) as ValidationRow | undefined;
  }

  validation(id: string): ValidationRow | undefined {
    return this.s.validation!.get(id) as ValidationRow | undefined;
  }

  pendingValidationOf(pipeline: string): ValidationRow | undefined {
    return this.s.pendingOf!.get(pipeline) as ValidationRow | undefined;
  }

  insertValidation(
    v: Pick<ValidationRow, 'id' | 'queue' | 'seq' | 'commit' | 'pipeline' | 'attempt' | 'deadlineAt'>,
    now: number,
  ): void {
    this.s.insertValidation!.run({ ...v, now });
  }

  /** A cancelled or expired validation starts its next attempt with another pipeline. */
  rebind(id: string, pipeline: string, deadlineAt: number, now: number): boolean {
    return this.s.rebind!.run(pipeline, deadlineAt, now, id).changes === 1;
  }

  /** pending → `state`, for that attempt only; false when it was not pending (a replay). */
  setState(id: string, attempt: number, state: ValidationState, now: number): boolean {
    return this.s.setState!.run(state, now, id, attempt).changes === 1;
  }

  /** Newest first, below `beforeSeq`. */
  history(queue: string, beforeSeq: number, limit: number): ValidationRow[] {
    return this.s.history!.all(queue, beforeSeq, limit) as ValidationRow[];
  }

  counts(queue: string): { green: number; notGreen: number; pending: number } {
    const c = this.s.counts!.get(queue) as {
      green: number | null;
      notGreen: number | null;
      pending: number | null;
    };
    return { green: c.green ?? 0, notGreen: c.notGreen ?? 0, pending: c.pending ?? 0 };
  }

  fact(queue: string, commit: string, project = ''): FactRow | undefined {
    return this.s.fact!.get(queue, commit, project) as FactRow | undefined;
  }

  facts(queue: string, commit: string): FactRow[] {
    return this.s.facts!.all(queue, commit) as FactRow[];
  }

  /** Create-only: false when a fact for (queue, commit, project) already exists (it is kept). */
  insertFact(f: FactRow): boolean {
    return this.s.insertFact!.run(f).changes === 1;
  }

  logGreen(queue: string, seq: number, commit: string, validation: string, at: number): void {
    this.s.greenLog!.run(queue, seq, commit, validation, at);
  }
}
