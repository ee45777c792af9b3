/**
 * `treadle backup` while the daemon serves and writes, and `treadle restore`: the copy passes
 * integrity_check, holds no lock, and a daemon started on it serves the same `/events` history;
 * restore is refused beside a live daemon and for a file that is not a treadle database.
 */
import { copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppviewEvents } from '../fakes/appview.ts';
import { runTreadle } from './support/process.ts';
import { onboard, pipelineRecord, rkey, type Stack, startDaemon, startStack } from './support/stack.ts';
import { waitFor } from './support/wait.ts';

let s: Stack;
let original: AppviewEvents;

beforeAll(async () => {
  s = await startStack();
  await onboard(s);
  original = new AppviewEvents({ cursor: -1n });
  await original.connect(s.daemon.base);
}, 30_000);

afterAll(async () => {
  await original?.close();
  await s?.close();
});

function eventCount(file: string): number {
  const db = new Database(file, { readonly: true });
  try {
    return (db.prepare('SELECT COUNT(*) AS n FROM events').get() as { n: number }).n;
  } finally {
    db.close();
  }
}

describe('treadle backup and restore', () => {
  it('copies the database while pipelines are written, and a daemon on the copy serves the same history', async () => {
    // Pipelines keep arriving while the backup runs.
    let pushing = true;
    const pushes = (async () => {
      while (pushing) {
        s.knot.emit('sh.tangled.pipeline', rkey(), pipelineRecord(s.knot.host, [{ name: 'ci' }]));
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    await waitFor(() => original.frames.length >= 20, 'pipelines under way');
    const file = join(s.dir, 'backup.db');
    const r = await runTreadle(['backup', file], s.env);
    pushing = false;
    await pushes;
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      /^backup written: .*backup\.db \(\d+ pages, [\d.]+ MiB, [\d.]+ s; integrity_check ok\)$/m,
    );
    expect(r.stdout).toContain(`the secrets key is ${s.db}.secrets-key (not in the backup)`);

    const copy = new Database(file, { readonly: true });
    expect(copy.pragma('integrity_check', { simple: true })).toBe('ok');
    expect(copy.prepare('SELECT COUNT(*) AS n FROM instance_lock').get()).toEqual({ n: 0 });
    copy.close();
    const n = eventCount(file);
    expect(n).toBeGreaterThanOrEqual(20);

    // Another machine: the copy and its key file in a directory of their own.
    const moved = join(s.dir, 'elsewhere.db');
    copyFileSync(file, moved);
    copyFileSync(`${s.db}.secrets-key`, `${moved}.secrets-key`);
    const d = await startDaemon({ ...s.env, TREADLE_DB: moved });
    const replay = new AppviewEvents({ cursor: -1n });
    try {
      await replay.connect(d.base);
      await waitFor(() => replay.frames.length >= n, 'the restored history');
      await waitFor(() => original.frames.length >= n, 'the original history');
      expect(replay.frames.slice(0, n)).toEqual(original.frames.slice(0, n));
    } finally {
      await replay.close();
      await d.kill();
    }
  }, 60_000);

  it('refuses to restore beside a live daemon, then restores once it is stopped', async () => {
    const file = join(s.dir, 'backup.db');
    const n = eventCount(file);
    const refused = await runTreadle(['restore', file], s.env);
    expect(refused.code).toBe(75);
    expect(refused.stderr).toMatch(/another treadle \(pid \d+/);
    expect(eventCount(s.db)).toBeGreaterThan(0);

    await s.daemon.stop();
    const before = eventCount(s.db);
    expect(before).toBeGreaterThan(n);
    const r = await runTreadle(['restore', file], s.env);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^restored .* from .*backup\.db \(\d+ pages, \d+ migrations/m);
    expect(eventCount(s.db)).toBe(n);
    const d = await s.restart();
    expect((await fetch(`${d.base}/healthz`)).status).toBe(200);
  }, 60_000);

  it('refuses a file that is not a treadle database, and bad usage', async () => {
    const junk = join(s.dir, 'junk.db');
    writeFileSync(junk, 'not sqlite at all, just text that is long enough to look like a header........');
    const a = await runTreadle(['restore', junk], s.env);
    expect(a.code).toBe(78);
    expect(a.stderr).toMatch(/cannot be opened as SQLite|not a database/);
    const empty = join(s.dir, 'empty.db');
    new Database(empty).exec('CREATE TABLE t (x)');
    const b = await runTreadle(['restore', empty], s.env);
    expect(b.code).toBe(78);
    expect(b.stderr).toMatch(/is not a treadle database/);
    expect((await runTreadle(['backup'], s.env)).code).toBe(2);
    const self = await runTreadle(['backup', s.db], s.env);
    expect(self.code).toBe(78);
    expect(self.stderr).toMatch(/the backup file is the database itself/);
  }, 30_000);
});
