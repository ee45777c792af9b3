/**
 * `npm run bench -- loglayout`: what long log lines cost in `log_lines`. The table is
 * `WITHOUT ROWID` (migration 0004), so a row is stored in an index b-tree page, where SQLite
 * keeps at most about a quarter of a 4 KiB page per row in place and spills the rest to an
 * overflow page of its own. Measured here: the file size, the write time and the time to read
 * every workflow's log back through the real `LogStore`, for the current table and, as the
 * baseline, the same columns in a rowid table with a unique index, at several shares of
 * 1,500-byte lines among 90-byte ones.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { openDatabase } from '../src/db/database.ts';
import { LogStore } from '../src/db/log-store.ts';
import { migrate } from '../src/db/migrate.ts';
import { encodeLogLine } from '../src/logs/log-line.ts';
import { fmt, printTable } from './stats.ts';

const WORKFLOWS = Number(process.env.BENCH_LOGLAYOUT_WORKFLOWS ?? 500);
const LINES = 200;
const ROWID_LAYOUT = `
DROP TABLE log_lines;
CREATE TABLE log_lines (id INTEGER PRIMARY KEY, knot TEXT NOT NULL, rkey TEXT NOT NULL,
  workflow TEXT NOT NULL, seq INTEGER NOT NULL, line TEXT NOT NULL);
CREATE UNIQUE INDEX log_lines_key ON log_lines (knot, rkey, workflow, seq);`;

function measure(dir: string, layout: 'without rowid' | 'rowid', longShare: number) {
  const file = join(dir, `${layout.replace(' ', '-')}-${longShare}.db`);
  const db = openDatabase(file);
  migrate(db);
  if (layout === 'rowid') db.exec(ROWID_LAYOUT);
  const store = new LogStore(db);
  const key = (w: number) => ({
    knot: 'knot.example.com',
    rkey: `3k${String(w).padStart(11, '0')}`,
    name: 'build.yml',
  });
  const time = '2026-12-06T05:00:00.000Z';
  let started = performance.now();
  for (let w = 0; w < WORKFLOWS; w++) {
    const lines: string[] = [];
    for (let i = 0; i < LINES; i++) {
      const long = (i * 7919 + w) % 1000 < longShare * 1000;
      const content = long ? `{"payload":"${'x'.repeat(1480)}"}` : `step output ${'y'.repeat(78)}`;
      lines.push(encodeLogLine({ kind: 'data', content, time, step_id: 0, stream: 'stdout' }));
    }
    store.appendMany(key(w), 0, lines);
  }
  const writeMs = performance.now() - started;
  db.pragma('wal_checkpoint(TRUNCATE)');
  started = performance.now();
  let read = 0;
  for (let w = 0; w < WORKFLOWS; w++) read += store.from(key(w), 0, 1000).length;
  const readMs = performance.now() - started;
  if (read !== WORKFLOWS * LINES) throw new Error(`read ${read} lines, wrote ${WORKFLOWS * LINES}`);
  db.close();
  return { mb: statSync(file).size / 1e6, writeMs, readMs };
}

export async function logLayoutBench(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'treadle-bench-loglayout-'));
  try {
    console.log(`${WORKFLOWS} workflows × ${LINES} lines; long lines 1,500 bytes of content, short ones 90`);
    const rows: string[][] = [];
    for (const share of [0, 0.01, 0.05, 0.2]) {
      const current = measure(dir, 'without rowid', share);
      const base = measure(dir, 'rowid', share);
      rows.push([
        `${share * 100}%`,
        `${fmt(current.mb, 1)} / ${fmt(base.mb, 1)}`,
        `${fmt(current.writeMs)} / ${fmt(base.writeMs)}`,
        `${fmt(current.readMs)} / ${fmt(base.readMs)}`,
      ]);
    }
    printTable(['long lines', 'file MB (current / rowid)', 'write ms', 'read all ms'], rows);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
