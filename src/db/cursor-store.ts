/** Resume points of the streams treadle reads: `jetstream` (µs) and `knot:<host>` (ns), as decimal text. */
import type { Statement } from 'better-sqlite3';
import type { Db } from './database.ts';

export class CursorStore {
  private readonly getStmt: Statement;
  private readonly setStmt: Statement;

  constructor(db: Db) {
    this.getStmt = db.prepare('SELECT cursor FROM stream_cursors WHERE stream = ?');
    this.setStmt = db.prepare(
      `INSERT INTO stream_cursors (stream, cursor, updated_at) VALUES (?, ?, ?)
       ON CONFLICT (stream) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at`,
    );
  }

  get(stream: string): bigint | undefined {
    const row = this.getStmt.get(stream) as { cursor: string } | undefined;
    return row ? BigInt(row.cursor) : undefined;
  }

  set(stream: string, cursor: bigint): void {
    this.setStmt.run(stream, cursor.toString(), Date.now());
  }
}
