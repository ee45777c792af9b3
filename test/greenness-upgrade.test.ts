/**
 * Upgrading a database from the version before greenness: migrations 0009 and 0010 apply, and the
 * pipelines already in the database — finished ones, and one still running across the upgrade
 * — never become validations. Greenness starts at the first push after the upgrade.
 *
 * The version before greenness differs from this one only by migrations 0009 and 0010 and the
 * greenness and landing modules' consumer groups (its topics `pipeline.started` and `workflow.status` were already
 * written, with no group following them). So the old database is made by running this daemon
 * and then taking exactly those away, with the daemon stopped.
 */
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MIGRATIONS } from '../src/db/migrations/index.ts';
import { runTreadle } from './support/process.ts';
import {
  OWNER,
  onboard,
  pipelineRecord,
  rkey,
  type Stack,
  startStack,
  stubWorkflow,
} from './support/stack.ts';
import { waitFor } from './support/wait.ts';

const REPO = `${OWNER}/hello`;
const GREENNESS_GROUPS = ['greenness-ingest', 'greenness-deadline', 'greenness-record', 'hook-dispatch'];
let s: Stack;

beforeAll(async () => {
  s = await startStack();
  await onboard(s);
}, 30_000);

afterAll(async () => {
  await s?.close();
});

function push(n: number, duration: string): { commit: string; rkey: string } {
  const commit = n.toString(16).padStart(40, '7');
  const key = rkey();
  s.knot.emit(
    'sh.tangled.pipeline',
    key,
    pipelineRecord(
      s.knot.host,
      [{ name: 'ci.yml', raw: stubWorkflow('success', duration) }],
      {},
      { newSha: commit },
    ),
  );
  return { commit, rkey: key };
}

async function workflowStatus(key: string): Promise<string | undefined> {
  const r = await runTreadle(['runs', 'list', '--json', '--db', s.db]);
  const rows = JSON.parse(r.stdout) as Array<{ pipeline: string; workflows: Array<{ status: string }> }>;
  return rows.find((p) => p.pipeline.endsWith(`/${key}`))?.workflows[0]?.status;
}

/**
 * What the version before greenness leaves behind: no migrations from 0009 on (greenness,
 * landing, the later indexes and column up to 0014's, and 0015's log streams: the lines go
 * back to 0004's table), no greenness or landing groups.
 */
function downgrade(file: string): void {
  // Each migration from 0009 on is undone below; a new one must be undone here too.
  expect(MIGRATIONS.at(-1)!.version, 'the newest migration this downgrade undoes').toBe(15);
  const db = new Database(file);
  try {
    db.transaction(() => {
      db.exec(`CREATE TABLE log_lines_0004 (
          knot TEXT NOT NULL, rkey TEXT NOT NULL, workflow TEXT NOT NULL, seq INTEGER NOT NULL,
          line TEXT NOT NULL, PRIMARY KEY (knot, rkey, workflow, seq)) WITHOUT ROWID;
        INSERT INTO log_lines_0004 SELECT s.knot, s.rkey, s.workflow, l.seq, l.line
          FROM log_lines l JOIN log_streams s ON s.id = l.stream;
        DROP TABLE log_lines;
        DROP TABLE log_streams;
        ALTER TABLE log_lines_0004 RENAME TO log_lines;`);
      for (const t of ['gn_fact', 'gn_validation', 'gn_run', 'gn_pipeline', 'gn_repo_alias', 'gn_queue'])
        db.exec(`DROP TABLE ${t}`);
      for (const t of ['land_ledger', 'land_results']) db.exec(`DROP TABLE ${t}`);
      for (const i of [
        'queue_messages_dead',
        'pipelines_received',
        'workflows_logs_prunable',
        'buildkite_builds_finished',
      ])
        db.exec(`DROP INDEX ${i}`);
      db.exec('ALTER TABLE workflows DROP COLUMN logs_pruned');
      db.prepare('DELETE FROM schema_migrations WHERE version >= 9').run();
      const groups = JSON.stringify([
        ...GREENNESS_GROUPS,
        'hook-deliver',
        'hook-deliver-dlq',
        'greenness-promotion',
        'greenness-promotion-dlq',
        'land-check',
        'land-merge',
        'land-check-dlq',
        'land-merge-dlq',
      ]);
      db.prepare('DELETE FROM queue_delivery WHERE consumer_group IN (SELECT value FROM json_each(?))').run(
        groups,
      );
      db.prepare(
        'DELETE FROM queue_subscriptions WHERE consumer_group IN (SELECT value FROM json_each(?))',
      ).run(groups);
      db.prepare(
        `DELETE FROM queue_messages WHERE topic IN ('greenness.record', 'greenness.deadline', 'hook', 'hook.deliver')`,
      ).run();
    })();
  } finally {
    db.close();
  }
}

interface StoredLog {
  rkey: string;
  workflow: string;
  seq: number;
  line: string;
}

/** Every stored log line, read as today's layout keeps them. */
function storedLogs(): StoredLog[] {
  const db = new Database(s.db, { readonly: true });
  try {
    return db
      .prepare(
        `SELECT s.rkey, s.workflow, l.seq, l.line FROM log_lines l JOIN log_streams s ON s.id = l.stream
         ORDER BY s.rkey, s.workflow, l.seq`,
      )
      .all() as StoredLog[];
  } finally {
    db.close();
  }
}

async function status(commit: string): Promise<Record<string, unknown>> {
  const res = await fetch(
    `${s.daemon.base}/greenness/v1/status?repo=${encodeURIComponent(REPO)}&ref=main&commit=${commit}`,
  );
  return (await res.json()) as Record<string, unknown>;
}

describe('upgrading to greenness', () => {
  it('migrates an older database and judges only pushes after the upgrade', async () => {
    const finished = push(1, '0s');
    await waitFor(async () => (await workflowStatus(finished.rkey)) === 'success', 'the finished pipeline');
    const running = push(2, '6s');
    await waitFor(async () => (await workflowStatus(running.rkey)) === 'running', 'the running pipeline');
    expect(await s.daemon.stop()).toBe(0);
    const logsBefore = storedLogs();
    downgrade(s.db);

    await s.restart();
    const db = new Database(s.db, { readonly: true });
    try {
      expect(db.prepare('SELECT max(version) AS v FROM schema_migrations').get()).toEqual({
        v: MIGRATIONS.at(-1)!.version,
      });
    } finally {
      db.close();
    }
    // The finished pipeline's log came through migration 0015 whole (the running one's may grow).
    const finishedLog = (rows: StoredLog[]) => rows.filter((r) => r.rkey === finished.rkey);
    expect(finishedLog(logsBefore).length, 'the finished log stored before the upgrade').toBeGreaterThan(0);
    expect(finishedLog(storedLogs())).toEqual(finishedLog(logsBefore));
    const fresh = push(3, '0s');
    await waitFor(
      async () => (await status(fresh.commit)).status === 'green',
      'the first push after the upgrade',
    );
    // The stub runner's builds live in its process: the run across the restart ends as the
    // daemon's recovery decides; any terminal status will do, as long as one arrives.
    await waitFor(
      async () =>
        ['success', 'failed', 'timeout', 'cancelled'].includes((await workflowStatus(running.rkey)) ?? ''),
      'the pipeline running across the upgrade to end',
      20_000,
    );
    // Its statuses after the upgrade reached greenness (a sentinel after it is recorded) and made nothing.
    const sentinel = push(4, '0s');
    await waitFor(async () => (await status(sentinel.commit)).status === 'green', 'the sentinel');
    expect(await status(finished.commit)).toMatchObject({ status: 'unknown' });
    expect(await status(running.commit)).toMatchObject({ status: 'unknown' });
    expect(await status(fresh.commit)).toMatchObject({ seq: 1 });
    const res = await fetch(`${s.daemon.base}/greenness/v1/queues`);
    expect(((await res.json()) as { queues: unknown[] }).queues).toEqual([
      expect.objectContaining({
        repo: REPO,
        ref: 'refs/heads/main',
        counts: { green: 2, notGreen: 0, pending: 0 },
      }),
    ]);
  }, 60_000);
});
