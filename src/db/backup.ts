/**
 * Online backups with SQLite's backup API. The copy is taken from its own read connection while
 * the daemon keeps writing (WAL: readers and the writer do not block each other); the pages are
 * copied in one step, so the copy is one consistent snapshot and a write during it cannot make
 * the backup start over. A backup holds no instance lock (the row is removed from the copy), so
 * a daemon started on it, here or elsewhere, never waits for the one that was running.
 */
import { existsSync, renameSync, rmSync, statSync } from 'node:fs';
import Database from 'better-sqlite3';
import { ConfigError } from '../errors.ts';
import type { Db } from './database.ts';
import { MIGRATIONS } from './migrations/index.ts';

export interface BackupResult {
  pages: number;
  bytes: number;
  ms: number;
}

/** Copies `source` to `dest` (through `<dest>.partial`, renamed when whole and checked). */
export async function backupDatabase(source: Db, dest: string): Promise<BackupResult> {
  const started = performance.now();
  const partial = `${dest}.partial`;
  rmSync(partial, { force: true });
  try {
    // Every page in one step: one read snapshot, no restart when the daemon writes meanwhile.
    const { totalPages } = await source.backup(partial, { progress: () => 2 ** 30 });
    finishCopy(partial);
    renameSync(partial, dest);
    return { pages: totalPages, bytes: statSync(dest).size, ms: performance.now() - started };
  } catch (err) {
    rmSync(partial, { force: true });
    throw err;
  }
}

/** A copy holds no lock, passes integrity_check, and is one file (no -wal beside it). */
function finishCopy(path: string): void {
  const db = new Database(path);
  try {
    db.prepare('DELETE FROM instance_lock').run();
    const check = checkIntegrity(db);
    if (check !== 'ok') throw new Error(`the copy failed integrity_check: ${check}`);
    db.pragma('journal_mode = DELETE');
  } finally {
    db.close();
  }
}

function checkIntegrity(db: Db): string {
  const rows = db.pragma('integrity_check') as Array<{ integrity_check: string }>;
  return rows.map((r) => r.integrity_check).join('; ');
}

/**
 * What a backup file holds, or a ConfigError saying why it cannot be restored: not SQLite, not
 * a treadle database, damaged, or written by a newer treadle (migrations this one lacks).
 */
export function inspectBackup(path: string): { migrations: number } {
  if (!existsSync(path)) throw new ConfigError(`no backup at ${path}`);
  let db: Db;
  try {
    db = new Database(path, { readonly: true, fileMustExist: true });
  } catch (err) {
    throw new ConfigError(`${path} cannot be opened as SQLite: ${(err as Error).message}`);
  }
  try {
    let versions: number[];
    try {
      versions = (
        db.prepare('SELECT version FROM schema_migrations').all() as Array<{ version: number }>
      ).map((r) => r.version);
    } catch (err) {
      if ((err as { code?: string }).code === 'SQLITE_NOTADB')
        throw new ConfigError(`${path} cannot be opened as SQLite: it is not a database file`);
      throw new ConfigError(`${path} is not a treadle database (no schema_migrations table)`);
    }
    const known = new Set(MIGRATIONS.map((m) => m.version));
    const unknown = versions.filter((v) => !known.has(v));
    if (unknown.length > 0)
      throw new ConfigError(
        `${path} was written by a newer treadle (migration ${unknown.join(', ')} unknown here); restore it with that version`,
      );
    const check = checkIntegrity(db);
    if (check !== 'ok') throw new ConfigError(`${path} failed integrity_check: ${check}`);
    return { migrations: versions.length };
  } finally {
    db.close();
  }
}

/**
 * Replaces the database at `target` with the backup's pages, through SQLite's backup API (so
 * the target's WAL stays coherent); the caller holds the target's instance lock on `lockDb`
 * meanwhile, so no daemon can start on it halfway. The copy carries no lock row.
 */
export async function restoreDatabase(backup: string, lockDb: Db): Promise<BackupResult> {
  const started = performance.now();
  const src = new Database(backup, { readonly: true, fileMustExist: true });
  try {
    const { totalPages } = await src.backup(lockDb.name, { progress: () => 2 ** 30 });
    lockDb.pragma('wal_checkpoint(TRUNCATE)');
    return { pages: totalPages, bytes: statSync(lockDb.name).size, ms: performance.now() - started };
  } finally {
    src.close();
  }
}
