/**
 * SQL of workflow log lines: one row per LogLine frame, numbered from 0 in write order. Each
 * workflow's log is a stream with a number of its own (`log_streams`), and its lines are keyed
 * by (stream, seq) in a rowid table, so a long line stays in place (migration 0015).
 */
import type { Statement } from 'better-sqlite3';
import type { Db } from './database.ts';
import type { WorkflowKey } from './pipeline-store.ts';

export interface StoredLine {
  seq: number;
  /** The LogLine as its JSON text, sent verbatim. */
  line: string;
}

/** The stream number of a workflow's log, by its (knot, rkey, workflow). */
const STREAM_ID = 'SELECT id FROM log_streams WHERE knot = ? AND rkey = ? AND workflow = ?';

export class LogStore {
  private readonly openStmt: Statement;
  private readonly streamStmt: Statement;
  private readonly insertStmt: Statement;
  private readonly afterStmt: Statement;
  private readonly countStmt: Statement;
  private readonly appendAll: (k: WorkflowKey, seq: number, lines: readonly string[]) => void;

  constructor(db: Db) {
    this.openStmt = db.prepare('INSERT INTO log_streams (knot, rkey, workflow) VALUES (?, ?, ?)');
    this.streamStmt = db.prepare(STREAM_ID).pluck();
    this.insertStmt = db.prepare('INSERT OR IGNORE INTO log_lines (stream, seq, line) VALUES (?, ?, ?)');
    this.afterStmt = db.prepare(
      `SELECT seq, line FROM log_lines WHERE stream = (${STREAM_ID}) AND seq >= ? ORDER BY seq LIMIT ?`,
    );
    this.countStmt = db.prepare(
      `SELECT COALESCE(MAX(seq) + 1, 0) AS n FROM log_lines WHERE stream = (${STREAM_ID})`,
    );
    this.appendAll = db.transaction((k: WorkflowKey, seq: number, lines: readonly string[]) => {
      // A log's first batch opens its stream; every later one finds it.
      const stream =
        (this.streamStmt.get(k.knot, k.rkey, k.name) as number | undefined) ??
        Number(this.openStmt.run(k.knot, k.rkey, k.name).lastInsertRowid);
      for (const [i, line] of lines.entries()) this.insertStmt.run(stream, seq + i, line);
    });
  }

  append(k: WorkflowKey, seq: number, line: string): void {
    this.appendAll(k, seq, [line]);
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
