import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from '../../test/support/temp.ts';
import { InstanceLockedError } from '../errors.ts';
import { type Db, openDatabase } from './database.ts';
import { InstanceLock } from './instance-lock.ts';

let db: Db;
let cleanup = () => {};
afterEach(() => {
  db?.close();
  cleanup();
});

function open(): string {
  const t = tempDir();
  cleanup = t.cleanup;
  const path = join(t.dir, 'treadle.db');
  db = openDatabase(path);
  return path;
}

function plantHolder(pid: number, host: string, heartbeatAt: number): void {
  db.prepare(
    `INSERT INTO instance_lock (id, token, pid, host, started_at, heartbeat_at) VALUES (1, 'other', ?, ?, ?, ?)`,
  ).run(pid, host, heartbeatAt - 1000, heartbeatAt);
}

describe('InstanceLock', () => {
  it('lets one instance in and tells the second who holds the database', () => {
    const path = open();
    const first = new InstanceLock(db, path);
    first.acquire();
    const second = new InstanceLock(openDatabase(path), path);
    expect(() => second.acquire()).toThrow(InstanceLockedError);
    expect(() => second.acquire()).toThrow(new RegExp(`pid ${process.pid} on ${hostname()}.*${path}`));
    first.release();
    second.acquire();
    expect(InstanceLock.holder(db)?.token).toBe(second.token);
  });

  it('takes over at once from a process on this host that has died', () => {
    const path = open();
    plantHolder(999_999, hostname(), Date.now());
    const lock = new InstanceLock(db, path, { isAlive: () => false });
    lock.acquire();
    expect(InstanceLock.holder(db)?.pid).toBe(process.pid);
  });

  it('waits for a live holder on another host until its heartbeat is stale', () => {
    const path = open();
    plantHolder(1, 'elsewhere', Date.now());
    const lock = new InstanceLock(db, path, { staleMs: 30_000 });
    expect(() => lock.acquire()).toThrow(/pid 1 on elsewhere/);
    lock.acquire(Date.now() + 31_000);
    expect(InstanceLock.holder(db)?.token).toBe(lock.token);
  });

  it('reports a lost lock on the next heartbeat', () => {
    const path = open();
    const lock = new InstanceLock(db, path);
    lock.acquire();
    expect(lock.heartbeat()).toBe(true);
    db.prepare(`UPDATE instance_lock SET token = 'thief'`).run();
    expect(lock.heartbeat()).toBe(false);
  });
});

describe('InstanceLock after a restart with the same pid', () => {
  it('treats a row with our pid from before this process started as an earlier incarnation', () => {
    const path = open();
    plantHolder(process.pid, hostname(), Date.now());
    db.prepare('UPDATE instance_lock SET started_at = ?').run(performance.timeOrigin - 60_000);
    const lock = new InstanceLock(db, path);
    lock.acquire();
    expect(InstanceLock.holder(db)?.token).toBe(lock.token);
  });
});
