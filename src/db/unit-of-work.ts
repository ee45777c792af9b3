/**
 * One SQLite transaction that several stores write in, with work to do once it has committed
 * (waking queue consumers, telling /events readers). Nested calls join the outer unit, so a
 * caller that already runs in one simply adds its writes. Better-sqlite3 transactions are
 * synchronous: no network I/O and no await inside `run`.
 */
import type { Db } from './database.ts';

export class UnitOfWork {
  private readonly db: Db;
  /** The open unit's after-commit work; undefined when no unit is open. */
  private pending: Array<() => void> | undefined;

  constructor(db: Db) {
    this.db = db;
  }

  /** Runs `fn` in one transaction; after-commit work runs only if it commits. */
  run<T>(fn: () => T): T {
    if (this.pending) return fn();
    this.pending = [];
    let result: T;
    try {
      result = this.db.transaction(fn)();
    } catch (err) {
      this.pending = undefined;
      throw err;
    }
    const after = this.pending;
    this.pending = undefined;
    for (const work of after) work();
    return result;
  }

  /** Runs `work` once the open unit commits (never, if it rolls back), or now when none is open. */
  afterCommit(work: () => void): void {
    if (this.pending) this.pending.push(work);
    else work();
  }
}
