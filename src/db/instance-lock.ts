import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { InstanceLockedError } from '../errors.ts';
import type { Db } from './database.ts';

export interface LockHolder {
  token: string;
  pid: number;
  host: string;
  startedAt: number;
  heartbeatAt: number;
}

export interface InstanceLockOptions {
  /** A holder whose heartbeat is older than this is presumed dead (default 30 s). */
  staleMs?: number;
  /** Whether a process on this host is alive; injectable for tests. */
  isAlive?: (pid: number) => boolean;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * The single-owner lock on a database: one row, taken at start, refreshed by a heartbeat,
 * removed at stop. A row left by a process that died is taken over at once when that process
 * ran on this host (its pid is gone), otherwise once its heartbeat is stale.
 */
export class InstanceLock {
  readonly token = randomUUID();
  private readonly host = hostname();
  private readonly staleMs: number;
  private readonly isAlive: (pid: number) => boolean;

  private readonly db: Db;
  private readonly path: string;

  constructor(db: Db, path: string, options: InstanceLockOptions = {}) {
    this.db = db;
    this.path = path;
    this.staleMs = options.staleMs ?? 30_000;
    this.isAlive = options.isAlive ?? processAlive;
  }

  static holder(db: Db): LockHolder | undefined {
    return db
      .prepare(
        `SELECT token, pid, host, started_at AS startedAt, heartbeat_at AS heartbeatAt FROM instance_lock WHERE id = 1`,
      )
      .get() as LockHolder | undefined;
  }

  /** Takes the lock or throws InstanceLockedError describing the live holder. */
  acquire(now = Date.now()): void {
    const take = this.db.transaction(() => {
      const holder = InstanceLock.holder(this.db);
      if (holder && holder.token !== this.token && this.holderLive(holder, now)) return holder;
      this.db
        .prepare(
          `INSERT INTO instance_lock (id, token, pid, host, started_at, heartbeat_at) VALUES (1, ?, ?, ?, ?, ?)
           ON CONFLICT (id) DO UPDATE SET token = excluded.token, pid = excluded.pid, host = excluded.host,
             started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at`,
        )
        .run(this.token, process.pid, this.host, now, now);
      return undefined;
    });
    const live = take.immediate();
    if (live) {
      throw new InstanceLockedError(
        `another treadle (pid ${live.pid} on ${live.host}, started ${new Date(live.startedAt).toISOString()}) ` +
          `is using the database ${this.path}; stop it first, or point TREADLE_DB at another file`,
      );
    }
  }

  /** Refreshes the heartbeat; false means the lock was taken over and this process must stop. */
  heartbeat(now = Date.now()): boolean {
    const res = this.db
      .prepare('UPDATE instance_lock SET heartbeat_at = ? WHERE id = 1 AND token = ?')
      .run(now, this.token);
    return res.changes === 1;
  }

  release(): void {
    this.db.prepare('DELETE FROM instance_lock WHERE id = 1 AND token = ?').run(this.token);
  }

  private holderLive(holder: LockHolder, now: number): boolean {
    if (now - holder.heartbeatAt > this.staleMs) return false;
    if (holder.host !== this.host) return true;
    // Our own pid, taken before this process started, is an earlier incarnation (a restarted
    // container keeps pid 1); taken since, it is another lock object in this very process.
    if (holder.pid === process.pid) return holder.startedAt >= performance.timeOrigin;
    return this.isAlive(holder.pid);
  }
}
