import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { ConfigError } from '../errors.ts';
import { migrate } from './migrate.ts';

export type Db = Database.Database;

export interface OpenOptions {
  /** Apply pending migrations (default true). */
  migrate?: boolean;
  /** Fail instead of creating a missing file (administrative commands). */
  mustExist?: boolean;
  busyTimeoutMs?: number;
}

/**
 * Opens the SQLite file with the pragmas every connection uses: WAL so readers never block the
 * writer, synchronous=NORMAL (durable across process crashes; an OS crash may lose the last
 * commits but never corrupts), and a busy timeout so a second connection (the CLI) waits for
 * the daemon's short write transactions instead of failing.
 */
export function openDatabase(path: string, options: OpenOptions = {}): Db {
  if (path !== ':memory:' && !options.mustExist) mkdirSync(dirname(path), { recursive: true });
  let db: Db;
  try {
    db = new Database(path, { fileMustExist: options.mustExist ?? false });
  } catch (err) {
    throw new ConfigError(`cannot open database ${path}: ${(err as Error).message}`, { cause: err });
  }
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma(`busy_timeout = ${options.busyTimeoutMs ?? 5000}`);
  db.pragma('foreign_keys = ON');
  if (options.migrate ?? true) migrate(db);
  return db;
}

/** Increments whenever another connection commits to the file; cheap to poll. */
export function dataVersion(db: Db): number {
  return db.pragma('data_version', { simple: true }) as number;
}

/** The database an administrative command works on; a ConfigError naming the fix when absent. */
export function openExistingDatabase(path: string): Db {
  try {
    return openDatabase(path, { mustExist: true });
  } catch (err) {
    throw new ConfigError(
      `no treadle database at ${path} (set TREADLE_DB or pass --db): ${(err as Error).message}`,
    );
  }
}
