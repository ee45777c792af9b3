import { createHash } from 'node:crypto';
import { ConfigError } from '../errors.ts';
import type { Db } from './database.ts';
import { MIGRATIONS, type Migration } from './migrations/index.ts';

function checksum(m: Migration): string {
  return createHash('sha256').update(m.sql).digest('hex').slice(0, 16);
}

interface AppliedRow {
  version: number;
  name: string;
  checksum: string;
}

/**
 * Applies pending migrations, each in its own IMMEDIATE transaction (so two processes opening
 * a fresh file cannot both apply one). Refuses a database written by a newer treadle, and one
 * whose applied migrations no longer match the code (a released migration was edited).
 */
export function migrate(db: Db, migrations: readonly Migration[] = MIGRATIONS): number {
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at INTEGER NOT NULL)`);
  const applied = () =>
    db
      .prepare('SELECT version, name, checksum FROM schema_migrations ORDER BY version')
      .all() as AppliedRow[];
  const known = new Map(migrations.map((m) => [m.version, m]));
  for (const row of applied()) {
    const m = known.get(row.version);
    if (!m) {
      throw new ConfigError(
        `database schema version ${row.version} (${row.name}) is newer than this treadle knows; upgrade treadle`,
      );
    }
    if (checksum(m) !== row.checksum) {
      throw new ConfigError(
        `migration ${row.version} (${row.name}) was changed after it was applied to this database`,
      );
    }
  }
  let count = 0;
  for (const m of migrations) {
    const apply = db.transaction(() => {
      const done = db.prepare('SELECT 1 FROM schema_migrations WHERE version = ?').get(m.version);
      if (done) return false;
      db.exec(m.sql);
      db.prepare(
        'INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?, ?, ?, ?)',
      ).run(m.version, m.name, checksum(m), Date.now());
      return true;
    });
    if (apply.immediate()) count++;
  }
  return count;
}

/** The highest applied migration, or undefined for a file treadle never migrated. */
export function schemaVersion(db: Db): number | undefined {
  const table = db
    .prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'`)
    .get();
  if (!table) return undefined;
  const row = db.prepare('SELECT MAX(version) AS v FROM schema_migrations').get() as { v: number | null };
  return row.v ?? undefined;
}
