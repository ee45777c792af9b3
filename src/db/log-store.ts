/** SQL of workflow log lines: one row per LogLine frame, numbered from 0 in write order. */
import type { Statement } from 'better-sqlite3';
import type { Db } from './database.ts';
import type { WorkflowKey } from './pipeline-store.ts';

export interface StoredLine {
  seq: number;
  /** The LogLine as its JSON text, sent verbatim. */
  line: string;
}

export class LogStore {
  private readonly insertStmt: Statement;
  private readonly afterStmt: Statement;
  private readonly countStmt: Statement;
  private readonly appendAll: (k: WorkflowKey, seq: number, lines: readonly string[]) => void;

  constructor(db: Db) {
    this.insertStmt = db.prepare(
      'INSERT OR IGNORE INTO log_lines (knot, rkey, workflow, seq, line) VALUES (?, ?, ?, ?, ?)',
    );
    this.afterStmt = db.prepare(
      `SELECT seq, line FROM log_lines WHERE knot = ? AND rkey = ? AND workflow = ? AND seq >= ?
       ORDER BY seq LIMIT ?`,
    );
    this.appendAll = db.transaction((k: WorkflowKey, seq: number, lines: readonly string[]) => {
      for (const [i, line] of lines.entries()) this.insertStmt.run(k.knot, k.rkey, k.name, seq + i, line);
    });
    this.countStmt = db.prepare(
      'SELECT COALESCE(MAX(seq) + 1, 0) AS n FROM log_lines WHERE knot = ? AND rkey = ? AND workflow = ?',
    );
  }

  append(k: WorkflowKey, seq: number, line: string): void {
    this.insertStmt.run(k.knot, k.rkey, k.name, seq, line);
  }

  /** Lines `seq`, `seq + 1`, … in one transaction. */
  appendMany(k: WorkflowKey, seq: number, lines: readonly string[]): void {
    this.appendAll(k, seq, lines);
  }

  /** Up to `limit` lines from `seq` on. */
  from(k: WorkflowKey, seq: number, limit: number): StoredLine[] {
    return this.afterStmt.all(k.knot, k.rkey, k.name, seq, limit) as StoredLine[];
  }

  /** How many lines are stored (the next seq). */
  count(k: WorkflowKey): number {
    return (this.countStmt.get(k.knot, k.rkey, k.name) as { n: number }).n;
  }
}
