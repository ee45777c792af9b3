/**
 * SQL of the greenness recorder (migration 0009): queues, observed pipelines and runs,
 * validations and facts. Rows refer to queues and pipelines by integer ids; this store speaks
 * in queue keys (`<repo>@<ref>`), pipeline AT-URIs and validation ids (`v/<queue key>/<seq>`).
 */
import type { Statement } from 'better-sqlite3';
import type { Db } from './database.ts';

export type ValidationState = 'pending' | 'succeeded' | 'failed' | 'cancelled' | 'expired';

export interface QueueRow {
  id: number;
  key: string;
  repo: string;
  ref: string;
  nextSeq: number;
  lastGreenSeq: number | null;
  lastGreenCommit: string | null;
  lastGreenAt: number | null;
  tipSeq: number | null;
  tipGreen: number | null;
  tipPrevGreen: number | null;
  /** The queue's required workflows as last configured (JSON array), or null: all count. */
  required: string | null;
  promotedSeq: number | null;
  promotedCommit: string | null;
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
  /** `v/<queue key>/<seq>`. */
  id: string;
  /** The queue key. */
  queue: string;
  seq: number;
  commit: string;
  /** The bound pipeline's AT-URI. */
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

export function validationId(queueKey: string, seq: number): string {
  return `v/${queueKey}/${seq}`;
}

/** The queue key and seq of a validation id. */
export function parseValidationId(id: string): { key: string; seq: number } | undefined {
  const m = /^v\/(.+)\/(\d+)$/.exec(id);
  return m ? { key: m[1]!, seq: Number(m[2]) } : undefined;
}

const QUEUE = `q.id, q.key, q.repo, q.ref, q.next_seq AS nextSeq, q.last_green_seq AS lastGreenSeq,
  (SELECT commit_sha FROM gn_validation WHERE queue = q.id AND seq = q.last_green_seq) AS lastGreenCommit,
  q.last_green_at AS lastGreenAt, q.tip_seq AS tipSeq, q.tip_green AS tipGreen, q.tip_prev_green AS tipPrevGreen, q.required, q.promoted_seq AS promotedSeq,
  (SELECT commit_sha FROM gn_validation WHERE queue = q.id AND seq = q.promoted_seq) AS promotedCommit`;
const VALIDATION = `q.key AS queue, v.seq, v.commit_sha AS "commit", p.uri AS pipeline, v.attempt, v.state,
  v.deadline_at AS deadlineAt, v.created_at AS createdAt, v.updated_at AS updatedAt
  FROM gn_validation v JOIN gn_queue q ON q.id = v.queue JOIN gn_pipeline p ON p.id = v.pipeline`;

type RawValidation = Omit<ValidationRow, 'id'>;
const withId = (v: RawValidation | undefined): ValidationRow | undefined =>
  v ? { ...v, id: validationId(v.queue, v.seq) } : undefined;

export class GreennessStore {
  readonly db: Db;
  private readonly s: Record<string, Statement>;

  constructor(db: Db) {
    this.db = db;
    const p = (sql: string) => db.prepare(sql);
    const queueId = '(SELECT id FROM gn_queue WHERE key = @key)';
    const pipelineId = '(SELECT id FROM gn_pipeline WHERE uri = @pipeline)';
    this.s = {
      queue: p(`SELECT ${QUEUE} FROM gn_queue q WHERE q.key = ?`),
      queues: p(`SELECT ${QUEUE} FROM gn_queue q ORDER BY q.repo, q.ref`),
      // Keys are `<keyed repo>@<ref>`: the range '@'..'A' is the repo's queues, by the key's index.
      queuesOfRepo: p(`SELECT ${QUEUE} FROM gn_queue q WHERE q.key > ? || '@' AND q.key < ? || 'A'
                       ORDER BY q.ref LIMIT ?`),
      ensureQueue: p('INSERT OR IGNORE INTO gn_queue (key, repo, ref) VALUES (?, ?, ?)'),
      setRequired: p('UPDATE gn_queue SET required = ? WHERE key = ? AND required IS NOT ?'),
      alias: p('SELECT repo FROM gn_repo_alias WHERE alias = ?'),
      aliasesOf: p(`SELECT alias FROM gn_repo_alias WHERE repo = (SELECT coalesce(
                      (SELECT repo FROM gn_repo_alias WHERE alias = ?), ?))`),
      setPromoted: p(
        'UPDATE gn_queue SET promoted_seq = ? WHERE key = ? AND (promoted_seq IS NULL OR promoted_seq < ?)',
      ),
      addAlias: p('INSERT OR IGNORE INTO gn_repo_alias (alias, repo) VALUES (?, ?)'),
      renameRepo:
        p(`UPDATE gn_queue SET repo = @shown WHERE substr(key, 1, length(@keyed) + 1) = @keyed || '@'
                     AND repo <> @shown`),
      takeSeq: p('UPDATE gn_queue SET next_seq = next_seq + 1 WHERE key = ? RETURNING next_seq - 1 AS seq'),
      setTip: p('UPDATE gn_queue SET tip_seq = ?, tip_green = ?, tip_prev_green = ? WHERE key = ?'),
      setLastGreen: p('UPDATE gn_queue SET last_green_seq = ?, last_green_at = ? WHERE key = ?'),
      insertPipeline:
        p(`INSERT OR IGNORE INTO gn_pipeline (uri, knot, repo, trigger, ref, commit_sha, workflows, observed_at)
                         VALUES (@pipeline, @knot, @repo, @trigger, @ref, @commit, @workflows, @observedAt)`),
      pipeline:
        p(`SELECT uri AS pipeline, knot, repo, trigger, ref, commit_sha AS "commit", workflows, observed_at AS observedAt
                   FROM gn_pipeline WHERE uri = ?`),
      run: p(
        `SELECT r.status FROM gn_run r JOIN gn_pipeline p ON p.id = r.pipeline WHERE p.uri = ? AND r.workflow = ?`,
      ),
      runs: p(
        `SELECT r.workflow, r.status FROM gn_run r JOIN gn_pipeline p ON p.id = r.pipeline WHERE p.uri = ?`,
      ),
      upsertRun: p(`INSERT INTO gn_run (pipeline, workflow, status, status_at)
                    SELECT id, @workflow, @status, @at FROM gn_pipeline WHERE uri = @pipeline
                    ON CONFLICT (pipeline, workflow) DO UPDATE SET status = excluded.status, status_at = excluded.status_at`),
      insertRunNoPipeline:
        p(`INSERT OR IGNORE INTO gn_pipeline (uri, knot, repo, trigger, workflows, observed_at)
                              VALUES (@pipeline, '', '', '', '[]', 0)`),
      validationByCommit: p(`SELECT ${VALIDATION} WHERE q.key = ? AND v.commit_sha = ?`),
      validation: p(`SELECT ${VALIDATION} WHERE q.key = ? AND v.seq = ?`),
      pendingOf: p(
        `SELECT ${VALIDATION} WHERE v.pipeline = (SELECT id FROM gn_pipeline WHERE uri = ?) AND v.state = 'pending'`,
      ),
      insertValidation:
        p(`INSERT INTO gn_validation (queue, seq, commit_sha, pipeline, attempt, state, deadline_at, created_at, updated_at)
                           VALUES (${queueId}, @seq, @commit, ${pipelineId}, @attempt, 'pending', @deadlineAt, @now, @now)`),
      rebind: p(`UPDATE gn_validation SET pipeline = ${pipelineId}, attempt = attempt + 1, state = 'pending',
                   deadline_at = @deadlineAt, updated_at = @now
                 WHERE queue = ${queueId} AND seq = @seq AND state IN ('cancelled', 'expired')`),
      setState: p(`UPDATE gn_validation SET state = @state, updated_at = @now
                   WHERE queue = ${queueId} AND seq = @seq AND attempt = @attempt AND state = 'pending'`),
      history: p(`SELECT ${VALIDATION} WHERE q.key = ? AND v.seq < ? ORDER BY v.seq DESC LIMIT ?`),
      // Kept by the triggers of migration 0013 as validations are inserted and change state.
      counts: p(
        'SELECT n_green AS green, n_not_green AS notGreen, n_pending AS pending FROM gn_queue WHERE key = ?',
      ),
      fact: p(`SELECT q.key AS queue, v.commit_sha AS "commit", f.project, f.degree, f.seq, f.created_at AS createdAt
               FROM gn_fact f JOIN gn_queue q ON q.id = f.queue JOIN gn_validation v ON v.queue = f.queue AND v.seq = f.seq
               WHERE q.key = ? AND v.commit_sha = ? AND f.project = ?`),
      facts:
        p(`SELECT q.key AS queue, v.commit_sha AS "commit", f.project, f.degree, f.seq, f.created_at AS createdAt
                FROM gn_fact f JOIN gn_queue q ON q.id = f.queue JOIN gn_validation v ON v.queue = f.queue AND v.seq = f.seq
                WHERE q.key = ? AND v.commit_sha = ? ORDER BY f.project`),
      greenBelow: p(`SELECT f.seq, v.commit_sha AS "commit" FROM gn_fact f
                     JOIN gn_validation v ON v.queue = f.queue AND v.seq = f.seq
                     WHERE f.queue = (SELECT id FROM gn_queue WHERE key = ?) AND f.project = '' AND f.degree = 0
                       AND f.seq < ? ORDER BY f.seq DESC LIMIT 1`),
      greenAbove: p(`SELECT f.seq, v.commit_sha AS "commit" FROM gn_fact f
                     JOIN gn_validation v ON v.queue = f.queue AND v.seq = f.seq
                     WHERE f.queue = (SELECT id FROM gn_queue WHERE key = ?) AND f.project = '' AND f.degree = 0
                       AND f.seq > ? ORDER BY f.seq ASC LIMIT 1`),
      insertFact: p(`INSERT OR IGNORE INTO gn_fact (queue, seq, project, degree, created_at)
                     SELECT v.queue, v.seq, @project, @degree, @createdAt FROM gn_validation v
                     WHERE v.queue = ${queueId} AND v.commit_sha = @commit`),
    };
  }

  queue(key: string): QueueRow | undefined {
    return this.s.queue!.get(key) as QueueRow | undefined;
  }

  queues(): QueueRow[] {
    return this.s.queues!.all() as QueueRow[];
  }

  /** Up to `limit` queues (branches) of one repo, by ref; `repo` in either of its forms. */
  queuesOfRepo(repo: string, limit: number): QueueRow[] {
    const keyed = this.keyedRepo(repo);
    return this.s.queuesOfRepo!.all(keyed, keyed, limit) as QueueRow[];
  }

  /** The repo id queues of `repo` are keyed by: itself unless it is an alias of another id. */
  keyedRepo(repo: string): string {
    return (this.s.alias!.get(repo) as { repo: string } | undefined)?.repo ?? repo;
  }

  /** Every id linked with `repo` (itself included when it was seen). */
  aliasesOf(repo: string): string[] {
    return (this.s.aliasesOf!.all(repo, repo) as Array<{ alias: string }>).map((r) => r.alias);
  }

  /** `promotedSeq = max(promotedSeq, seq)` (§6.5). */
  setPromoted(key: string, seq: number): void {
    this.s.setPromoted!.run(seq, key, seq);
  }

  /**
   * Links a repo's ids: `repo` (its DID when it has one) and `formerly` (its `<ownerDid>/<name>`).
   * Returns the id its queues are keyed by (whichever was seen first), and shows `repo` as the
   * queues' repo from now on.
   */
  linkRepo(repo: string, formerly: string | undefined): string {
    if (formerly === undefined) {
      const keyed = this.keyedRepo(repo);
      this.s.addAlias!.run(repo, keyed);
      return keyed;
    }
    const keyed = (this.s.alias!.get(formerly) as { repo: string } | undefined)?.repo ?? this.keyedRepo(repo);
    this.s.addAlias!.run(repo, keyed);
    this.s.addAlias!.run(formerly, keyed);
    this.s.renameRepo!.run({ shown: repo, keyed });
    return keyed;
  }

  /** Records the queue's required workflows as configured now (shown in reasons). */
  setRequired(key: string, required: readonly string[] | undefined): void {
    const json = required && required.length > 0 ? JSON.stringify(required) : null;
    this.s.setRequired!.run(json, key, json);
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

  setLastGreen(key: string, seq: number, at: number): void {
    this.s.setLastGreen!.run(seq, at, key);
  }

  insertPipeline(p: ObservedPipeline): void {
    // A status may have arrived first and left a placeholder: fill it in.
    const existing = this.pipeline(p.pipeline);
    if (existing && existing.knot === '') {
      this.db
        .prepare(`UPDATE gn_pipeline SET knot = @knot, repo = @repo, trigger = @trigger, ref = @ref, commit_sha = @commit,
                    workflows = @workflows, observed_at = @observedAt WHERE uri = @pipeline`)
        .run({ ...p, workflows: JSON.stringify(p.workflows) });
      return;
    }
    this.s.insertPipeline!.run({ ...p, workflows: JSON.stringify(p.workflows) });
  }

  /** The pipeline as observed; undefined when only its statuses have been seen so far. */
  pipeline(uri: string): ObservedPipeline | undefined {
    const row = this.s.pipeline!.get(uri) as
      | (Omit<ObservedPipeline, 'workflows'> & { workflows: string })
      | undefined;
    return row ? { ...row, workflows: JSON.parse(row.workflows) as string[] } : undefined;
  }

  observed(uri: string): ObservedPipeline | undefined {
    const p = this.pipeline(uri);
    return p && p.knot !== '' ? p : undefined;
  }

  runStatus(pipeline: string, workflow: string): string | undefined {
    return (this.s.run!.get(pipeline, workflow) as { status: string } | undefined)?.status;
  }

  runs(pipeline: string): Map<string, string> {
    const rows = this.s.runs!.all(pipeline) as Array<{ workflow: string; status: string }>;
    return new Map(rows.map((r) => [r.workflow, r.status]));
  }

  upsertRun(pipeline: string, workflow: string, status: string, at: number): void {
    this.s.insertRunNoPipeline!.run({ pipeline });
    this.s.upsertRun!.run({ pipeline, workflow, status, at });
  }

  validationByCommit(queue: string, commit: string): ValidationRow | undefined {
    return withId(this.s.validationByCommit!.get(queue, commit) as RawValidation | undefined);
  }

  validation(id: string): ValidationRow | undefined {
    const k = parseValidationId(id);
    return k ? withId(this.s.validation!.get(k.key, k.seq) as RawValidation | undefined) : undefined;
  }

  pendingValidationOf(pipeline: string): ValidationRow | undefined {
    return withId(this.s.pendingOf!.get(pipeline) as RawValidation | undefined);
  }

  insertValidation(
    v: { queue: string; seq: number; commit: string; pipeline: string; attempt: number; deadlineAt: number },
    now: number,
  ): void {
    this.s.insertValidation!.run({
      key: v.queue,
      seq: v.seq,
      commit: v.commit,
      pipeline: v.pipeline,
      attempt: v.attempt,
      deadlineAt: v.deadlineAt,
      now,
    });
  }

  /** A cancelled or expired validation starts its next attempt with another pipeline. */
  rebind(id: string, pipeline: string, deadlineAt: number, now: number): boolean {
    const k = parseValidationId(id)!;
    return this.s.rebind!.run({ key: k.key, seq: k.seq, pipeline, deadlineAt, now }).changes === 1;
  }

  /** pending → `state`, for that attempt only; false when it was not pending (a replay). */
  setState(id: string, attempt: number, state: ValidationState, now: number): boolean {
    const k = parseValidationId(id)!;
    return this.s.setState!.run({ key: k.key, seq: k.seq, attempt, state, now }).changes === 1;
  }

  /** Newest first, below `beforeSeq`. */
  history(queue: string, beforeSeq: number, limit: number): ValidationRow[] {
    return (this.s.history!.all(queue, beforeSeq, limit) as RawValidation[]).map((v) => withId(v)!);
  }

  counts(queue: string): { green: number; notGreen: number; pending: number } {
    const c = this.s.counts!.get(queue) as { green: number; notGreen: number; pending: number } | undefined;
    return c ?? { green: 0, notGreen: 0, pending: 0 };
  }

  fact(queue: string, commit: string, project = ''): FactRow | undefined {
    const f = this.s.fact!.get(queue, commit, project) as
      | (Omit<FactRow, 'validation'> & { seq: number })
      | undefined;
    return f ? factRow(f) : undefined;
  }

  facts(queue: string, commit: string): FactRow[] {
    return (this.s.facts!.all(queue, commit) as Array<Omit<FactRow, 'validation'> & { seq: number }>).map(
      factRow,
    );
  }

  /** The nearest green commit below `seq` (spec §6.6 previousGreen), from the green log. */
  previousGreen(queue: string, seq: number): { seq: number; commit: string } | null {
    return (this.s.greenBelow!.get(queue, seq) as { seq: number; commit: string } | undefined) ?? null;
  }

  /** The nearest green commit above `seq` (spec §6.6 nextGreen), from the green log. */
  nextGreen(queue: string, seq: number): { seq: number; commit: string } | null {
    return (this.s.greenAbove!.get(queue, seq) as { seq: number; commit: string } | undefined) ?? null;
  }

  /** Create-only: false when a fact for (queue, commit, project) already exists (it is kept). */
  insertFact(f: Omit<FactRow, 'validation'>): boolean {
    return (
      this.s.insertFact!.run({
        key: f.queue,
        commit: f.commit,
        project: f.project,
        degree: f.degree,
        createdAt: f.createdAt,
      }).changes === 1
    );
  }
}

function factRow(f: Omit<FactRow, 'validation'> & { seq: number }): FactRow {
  const { seq, ...rest } = f;
  return { ...rest, validation: validationId(f.queue, seq) };
}
