import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from '../../test/support/temp.ts';
import { type Db, openDatabase } from './database.ts';
import { LogStore } from './log-store.ts';
import { migrate } from './migrate.ts';
import { MIGRATIONS } from './migrations/index.ts';

let cleanup = () => {};
afterEach(() => cleanup());

function fresh(): Db {
  const t = tempDir();
  cleanup = t.cleanup;
  return openDatabase(join(t.dir, 'treadle.db'));
}

const build = { knot: 'knot.example.com', rkey: '3kaaaaaaaaaaa', name: 'build.yml' };
const test = { knot: 'knot.example.com', rkey: '3kaaaaaaaaaaa', name: 'test.yml' };
const other = { knot: 'other.example.com', rkey: '3kaaaaaaaaaaa', name: 'build.yml' };
const line = (i: number, pad = 0) => JSON.stringify({ kind: 'data', content: `line ${i}${'x'.repeat(pad)}` });

describe('LogStore', () => {
  it('keeps each workflow its own numbered lines, the first write of a seq winning', () => {
    const store = new LogStore(fresh());
    store.appendMany(build, 0, [line(0), line(1), line(2)]);
    store.append(test, 0, line(100));
    store.append(other, 0, line(200));
    store.appendMany(build, 2, ['replayed', line(3)]); // a redelivered batch overlapping the last one
    expect(store.from(build, 0, 10)).toEqual([0, 1, 2, 3].map((i) => ({ seq: i, line: line(i) })));
    expect(store.from(build, 1, 2).map((l) => l.seq)).toEqual([1, 2]);
    expect(store.from(test, 0, 10)).toEqual([{ seq: 0, line: line(100) }]);
    expect(store.from(other, 0, 10)).toEqual([{ seq: 0, line: line(200) }]);
    expect(store.count(build)).toBe(4);
    expect(store.count({ ...build, name: 'never.yml' })).toBe(0);
    expect(store.from({ ...build, name: 'never.yml' }, 0, 10)).toEqual([]);
  });

  it('stores a 1.5 KB line in place, not on an overflow page of its own', () => {
    const db = fresh();
    const store = new LogStore(db);
    const pages = () => db.pragma('page_count', { simple: true }) as number;
    const before = pages();
    for (let w = 0; w < 20; w++)
      store.appendMany(
        { ...build, name: `w${w}.yml` },
        0,
        Array.from({ length: 50 }, (_, i) => line(i, 1500)),
      );
    const bytesPerLine = ((pages() - before) * 4096) / 1000;
    // Migration 0004's WITHOUT ROWID table took a 4 KiB overflow page for each such line.
    expect(bytesPerLine).toBeLessThan(2200);
  });
});

describe('migration 0015 (log streams)', () => {
  it('carries every stored line of a version 14 database over, in order, and appends go on after them', () => {
    const t = tempDir();
    cleanup = t.cleanup;
    const db = new Database(join(t.dir, 'treadle.db'));
    migrate(
      db,
      MIGRATIONS.filter((m) => m.version <= 14),
    );
    const old = db.prepare('INSERT INTO log_lines (knot, rkey, workflow, seq, line) VALUES (?, ?, ?, ?, ?)');
    const written = new Map<typeof build, string[]>([
      [build, Array.from({ length: 300 }, (_, i) => line(i, i % 10 === 0 ? 3000 : 0))],
      [test, [line(0)]],
      [other, Array.from({ length: 5 }, (_, i) => line(i))],
    ]);
    // Written out of order, as three workflows collecting at once would.
    for (let i = 0; i < 300; i++)
      for (const [k, lines] of written)
        if (lines[i] !== undefined) old.run(k.knot, k.rkey, k.name, i, lines[i]);

    expect(migrate(db)).toBe(1);
    const store = new LogStore(db);
    for (const [k, lines] of written) {
      expect(store.from(k, 0, 1000)).toEqual(lines.map((l, seq) => ({ seq, line: l })));
      expect(store.count(k)).toBe(lines.length);
    }
    expect(db.prepare('SELECT COUNT(*) FROM log_streams').pluck().get()).toBe(3);
    store.append(test, 1, line(1));
    expect(store.from(test, 0, 10).map((l) => l.line)).toEqual([line(0), line(1)]);
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
  });
});
