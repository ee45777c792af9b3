/**
 * `npm run bench -- loglayout`: what long log lines cost in `log_lines`, in today's layout
 * (migration 0015: lines keyed by a stream number in a rowid table, so a row of up to about
 * 4 KiB stays in place) beside, as the baseline, migration 0004's layout measured in the same
 * run (the workflow's knot, rkey and name on every row of a `WITHOUT ROWID` table, where a row
 * over about 1,000 bytes spills to a 4 KiB overflow page of its own). For each share of
 * 1,500-byte lines among 90-byte ones: the file size, the time to write every line and to read
 * every workflow's log back, and the time migration 0015 takes to move the baseline's lines.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import Database from 'better-sqlite3';
import type { Db } from '../src/db/database.ts';
import { LogStore } from '../src/db/log-store.ts';
import { migrate } from '../src/db/migrate.ts';
import { MIGRATIONS } from '../src/db/migrations/index.ts';
import type { WorkflowKey } from '../src/db/pipeline-store.ts';
import { encodeLogLine } from '../src/logs/log-line.ts';
import { fmt, printTable } from './stats.ts';

const WORKFLOWS = Number(process.env.BENCH_LOGLAYOUT_WORKFLOWS ?? 500);
const LINES = 200;

type Lines = Pick<LogStore, 'appendMany' | 'from'>;

/** Migration 0004's statements, as `LogStore` ran them before migration 0015. */
function layout0004(db: Db): Lines {
  const insert = db.prepare(
    'INSERT OR IGNORE INTO log_lines (knot, rkey, workflow, seq, line) VALUES (?, ?, ?, ?, ?)',
  );
  const after = db.prepare(
    `SELECT seq, line FROM log_lines WHERE knot = ? AND rkey = ? AND workflow = ? AND seq >= ?
     ORDER BY seq LIMIT ?`,
  );
  const appendAll = db.transaction((k: WorkflowKey, seq: number, lines: readonly string[]) => {
    for (const [i, line] of lines.entries()) insert.run(k.knot, k.rkey, k.name, seq + i, line);
  });
  return {
    appendMany: (k, seq, lines) => appendAll(k, seq, lines),
    from: (k, seq, limit) => after.all(k.knot, k.rkey, k.name, seq, limit) as ReturnType<LogStore['from']>,
  };
}

function open(file: string, upTo?: number): Db {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  migrate(db, upTo === undefined ? MIGRATIONS : MIGRATIONS.filter((m) => m.version <= upTo));
  return db;
}

const key = (w: number): WorkflowKey => ({
  knot: 'knot.example.com',
  rkey: `3k${String(w).padStart(11, '0')}`,
  name: 'build.yml',
});

function fill(store: Lines, longShare: number): number {
  const time = '2026-12-06T05:00:00.000Z';
  const started = performance.now();
  for (let w = 0; w < WORKFLOWS; w++) {
    const lines: string[] = [];
    for (let i = 0; i < LINES; i++) {
      const long = (i * 7919 + w) % 1000 < longShare * 1000;
      const content = long ? `{"payload":"${'x'.repeat(1480)}"}` : `step output ${'y'.repeat(78)}`;
      lines.push(encodeLogLine({ kind: 'data', content, time, step_id: 0, stream: 'stdout' }));
    }
    store.appendMany(key(w), 0, lines);
  }
  return performance.now() - started;
}

function readAll(store: Lines): number {
  const started = performance.now();
  let read = 0;
  for (let w = 0; w < WORKFLOWS; w++) read += store.from(key(w), 0, 1000).length;
  const ms = performance.now() - started;
  if (read !== WORKFLOWS * LINES) throw new Error(`read ${read} lines, wrote ${WORKFLOWS * LINES}`);
  return ms;
}

function measure(dir: string, layout: 'today' | '0004', longShare: number) {
  const file = join(dir, `${layout}-${longShare}.db`);
  const db = open(file, layout === 'today' ? undefined : 14);
  const store = layout === 'today' ? new LogStore(db) : layout0004(db);
  const writeMs = fill(store, longShare);
  db.pragma('wal_checkpoint(TRUNCATE)');
  const readMs = readAll(store);
  db.close();
  return { file, mb: statSync(file).size / 1e6, writeMs, readMs };
}

/** Migration 0015 over the baseline's file; the lines are read back through today's store. */
function migrateOld(file: string): { ms: number; mb: number } {
  const db = open(file, 14);
  const started = performance.now();
  migrate(db);
  const ms = performance.now() - started;
  readAll(new LogStore(db));
  db.exec('VACUUM');
  db.close();
  return { ms, mb: statSync(file).size / 1e6 };
}

export async function logLayoutBench(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'treadle-bench-loglayout-'));
  try {
    console.log(`${WORKFLOWS} workflows × ${LINES} lines; long lines 1,500 bytes of content, short ones 90`);
    const rows: string[][] = [];
    for (const share of [0, 0.01, 0.05, 0.2]) {
      const today = measure(dir, 'today', share);
      const base = measure(dir, '0004', share);
      const moved = migrateOld(base.file);
      rows.push([
        `${share * 100}%`,
        `${fmt(today.mb, 1)} / ${fmt(base.mb, 1)}`,
        `${fmt(today.writeMs)} / ${fmt(base.writeMs)}`,
        `${fmt(today.readMs)} / ${fmt(base.readMs)}`,
        `${fmt(moved.ms)} (${fmt(moved.mb, 1)} MB after VACUUM)`,
      ]);
    }
    printTable(
      ['long lines', 'file MB (today / 0004)', 'write ms', 'read all ms', 'migration 0015 ms'],
      rows,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
