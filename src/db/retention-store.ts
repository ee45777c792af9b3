/**
 * Retention's SQL: each call deletes at most `limit` rows' worth, oldest first, in one short
 * transaction, so the write lock is held for a batch and never for a whole prune.
 */
import type { Db } from './database.ts';

export class RetentionStore {
  private readonly db: Db;
  private readonly s;

  constructor(db: Db) {
    this.db = db;
    const p = (sql: string) => db.prepare(sql);
    this.s = {
      events: p(`DELETE FROM events WHERE created IN
                   (SELECT created FROM events WHERE created < ? ORDER BY created LIMIT ?)`),
      oldLogs: p(`SELECT knot, rkey, name FROM workflows INDEXED BY workflows_logs_prunable
                  WHERE logs_done = 1 AND logs_pruned = 0 AND updated_at < ? ORDER BY updated_at LIMIT ?`),
      deleteLines: p(`DELETE FROM log_lines WHERE stream =
                        (SELECT id FROM log_streams WHERE knot = ? AND rkey = ? AND workflow = ?)`),
      deleteStream: p('DELETE FROM log_streams WHERE knot = ? AND rkey = ? AND workflow = ?'),
      markPruned: p('UPDATE workflows SET logs_pruned = 1 WHERE knot = ? AND rkey = ? AND name = ?'),
      oldRuns: p(`SELECT p.knot, p.rkey FROM pipelines p INDEXED BY pipelines_received
                  WHERE p.received_at < ?
                    AND NOT EXISTS (SELECT 1 FROM workflows w WHERE w.knot = p.knot AND w.rkey = p.rkey
                                    AND (w.status IS NULL OR w.status IN ('pending', 'running')))
                  ORDER BY p.received_at LIMIT ?`),
      runLines: p(`DELETE FROM log_lines WHERE stream IN
                     (SELECT id FROM log_streams WHERE knot = ? AND rkey = ?)`),
      runStreams: p('DELETE FROM log_streams WHERE knot = ? AND rkey = ?'),
      runWorkflows: p('DELETE FROM workflows WHERE knot = ? AND rkey = ?'),
      runPipeline: p('DELETE FROM pipelines WHERE knot = ? AND rkey = ?'),
    };
  }

  /** Deletes up to `limit` /events rows created before `beforeNs`; returns how many. */
  pruneEvents(beforeNs: bigint, limit: number): number {
    return this.s.events.run(beforeNs, limit).changes;
  }

  /**
   * Deletes the log lines of up to `limit` workflows whose logs were complete before `beforeMs`;
   * returns the workflows and the lines.
   */
  pruneLogs(beforeMs: number, limit: number): { workflows: number; lines: number } {
    return this.db
      .transaction(() => {
        const rows = this.s.oldLogs.all(beforeMs, limit) as Array<{
          knot: string;
          rkey: string;
          name: string;
        }>;
        let lines = 0;
        for (const r of rows) {
          lines += this.s.deleteLines.run(r.knot, r.rkey, r.name).changes;
          this.s.deleteStream.run(r.knot, r.rkey, r.name);
          this.s.markPruned.run(r.knot, r.rkey, r.name);
        }
        return { workflows: rows.length, lines };
      })
      .immediate();
  }

  /** Deletes up to `limit` finished pipelines received before `beforeMs`, with their workflows and lines. */
  pruneRuns(beforeMs: number, limit: number): number {
    return this.db
      .transaction(() => {
        const rows = this.s.oldRuns.all(beforeMs, limit) as Array<{ knot: string; rkey: string }>;
        for (const r of rows) {
          this.s.runLines.run(r.knot, r.rkey);
          this.s.runStreams.run(r.knot, r.rkey);
          this.s.runWorkflows.run(r.knot, r.rkey);
          this.s.runPipeline.run(r.knot, r.rkey);
        }
        return rows.length;
      })
      .immediate();
  }
}
