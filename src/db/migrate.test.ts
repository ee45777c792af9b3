import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from '../../test/support/temp.ts';
import { ConfigError } from '../errors.ts';
import { openDatabase } from './database.ts';
import { migrate } from './migrate.ts';
import { MIGRATIONS } from './migrations/index.ts';

let cleanup = () => {};
afterEach(() => cleanup());

function dbPath(): string {
  const t = tempDir();
  cleanup = t.cleanup;
  return join(t.dir, 'nested', 'treadle.db');
}

describe('openDatabase', () => {
  it('creates the file with WAL, synchronous=NORMAL, a busy timeout and every migration applied', () => {
    const db = openDatabase(dbPath());
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.pragma('synchronous', { simple: true })).toBe(1);
    expect(db.pragma('busy_timeout', { simple: true })).toBe(5000);
    const versions = db.prepare('SELECT version FROM schema_migrations ORDER BY version').pluck().all();
    expect(versions).toEqual(MIGRATIONS.map((m) => m.version));
    const tables = db
      .prepare(`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`)
      .pluck()
      .all();
    expect(tables).toEqual(
      expect.arrayContaining(['queue_messages', 'queue_delivery', 'queue_subscriptions', 'instance_lock']),
    );
    db.close();
  });

  it('applies migrations once: reopening changes nothing', () => {
    const path = dbPath();
    openDatabase(path).close();
    const db = openDatabase(path);
    expect(migrate(db)).toBe(0);
    db.close();
  });
});

describe('migrate', () => {
  it('applies only the new migrations, in order, and rolls a failing one back', () => {
    const db = new Database(dbPath().replace('nested/', ''));
    const first = [{ version: 1, name: 'a', sql: 'CREATE TABLE a (x);' }];
    expect(migrate(db, first)).toBe(1);
    const broken = [...first, { version: 2, name: 'b', sql: 'CREATE TABLE b (x); CREATE TABLE oops (' }];
    expect(() => migrate(db, broken)).toThrow();
    expect(db.prepare(`SELECT name FROM sqlite_master WHERE name = 'b'`).get()).toBeUndefined();
    const fixed = [...first, { version: 2, name: 'b', sql: 'CREATE TABLE b (x);' }];
    expect(migrate(db, fixed)).toBe(1);
    db.close();
  });

  it('refuses a database written by a newer treadle', () => {
    const db = new Database(dbPath().replace('nested/', ''));
    migrate(db, [...MIGRATIONS, { version: 999, name: 'future', sql: 'SELECT 1;' }]);
    expect(() => migrate(db)).toThrow(ConfigError);
    expect(() => migrate(db)).toThrow(/schema version 999 \(future\) is newer/);
    db.close();
  });

  it('refuses a released migration that was edited', () => {
    const db = new Database(dbPath().replace('nested/', ''));
    migrate(db, [{ version: 1, name: 'a', sql: 'CREATE TABLE a (x);' }]);
    expect(() => migrate(db, [{ version: 1, name: 'a', sql: 'CREATE TABLE a (x, y);' }])).toThrow(
      /migration 1 \(a\) was changed/,
    );
    db.close();
  });
});
