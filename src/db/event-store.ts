/** SQL of the /events log. `created` values are BigInt end to end: they overflow JS numbers. */
import type { Statement } from 'better-sqlite3';
import type { Db } from './database.ts';

export interface StoredEvent {
  created: bigint;
  nsid: string;
  rkey: string;
  /** The record as JSON text, stored and sent verbatim. */
  event: string;
}

export class EventStore {
  readonly db: Db;
  private readonly insertStmt: Statement;
  private readonly afterStmt: Statement;
  private readonly lastStmt: Statement;
  private readonly byKeyStmt: Statement;

  constructor(db: Db) {
    this.db = db;
    this.insertStmt = db.prepare('INSERT INTO events (created, nsid, rkey, event) VALUES (?, ?, ?, ?)');
    this.afterStmt = db
      .prepare('SELECT created, nsid, rkey, event FROM events WHERE created > ? ORDER BY created LIMIT ?')
      .safeIntegers(true);
    this.lastStmt = db.prepare('SELECT MAX(created) AS created FROM events').safeIntegers(true);
    this.byKeyStmt = db
      .prepare('SELECT created, nsid, rkey, event FROM events WHERE nsid = ? AND rkey = ?')
      .safeIntegers(true);
  }

  insert(e: StoredEvent): void {
    this.insertStmt.run(e.created, e.nsid, e.rkey, e.event);
  }

  /** Up to `limit` events with `created > cursor`, oldest first. */
  after(cursor: bigint, limit: number): StoredEvent[] {
    return this.afterStmt.all(cursor, BigInt(limit)) as StoredEvent[];
  }

  find(nsid: string, rkey: string): StoredEvent | undefined {
    return this.byKeyStmt.get(nsid, rkey) as StoredEvent | undefined;
  }

  lastCreated(): bigint | undefined {
    return (this.lastStmt.get() as { created: bigint | null }).created ?? undefined;
  }
}
