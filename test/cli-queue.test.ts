import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MIGRATIONS } from '../src/db/migrations/index.ts';
import { runTreadle } from './support/process.ts';
import { openTestQueue, type TestQueue } from './support/queue.ts';
import { waitFor } from './support/wait.ts';

let t: TestQueue;
afterEach(async () => {
  await t?.close();
});

describe('treadle queue', () => {
  it('shows stats, lists, replays and drops dead letters while a consumer runs', async () => {
    t = openTestQueue({ maxAttempts: 1 });
    let broken = true;
    const handled: string[] = [];
    t.queue.consume('land.merge', 'land-merge', (m) => {
      if (broken && m.id !== 'ok-1') throw new Error(`git push failed for ${m.id}`);
      handled.push(m.id);
    });
    t.queue.start();
    for (const id of ['ok-1', 'bad-1', 'bad-2']) t.queue.publish('land.merge', 'repo/main', id, { id });
    await waitFor(() => t.queue.deadLetters('land.merge').length === 2, 'two dead letters');
    const db = ['--db', t.path];

    const stats = await runTreadle(['queue', 'stats', ...db]);
    expect(stats.code).toBe(0);
    expect(stats.stdout).toMatch(/^TOPIC\s+GROUP\s+READY\s+RETRYING\s+IN FLIGHT\s+HELD\s+DEAD$/m);
    expect(stats.stdout).toMatch(/^land\.merge\s+land-merge\s+0\s+0\s+0\s+0\s+2$/m);

    const list = await runTreadle(['queue', 'dlq', 'list', 'land.merge', '--json', ...db]);
    expect(list.code).toBe(0);
    const letters = JSON.parse(list.stdout);
    expect(letters.map((l: { id: string }) => l.id)).toEqual(['bad-1', 'bad-2']);
    expect(letters[0]).toMatchObject({
      partitionKey: 'repo/main',
      originalTopic: 'land.merge',
      failureCount: 1,
      lastError: 'git push failed for bad-1',
      payload: { id: 'bad-1' },
    });

    const drop = await runTreadle(['queue', 'dlq', 'drop', 'land.merge_dlq', 'bad-2', ...db]);
    expect(drop).toMatchObject({
      code: 0,
      stdout: 'dropped 1 dead letter with id bad-2 from land.merge_dlq\n',
    });
    const dropAgain = await runTreadle(['queue', 'dlq', 'drop', 'land.merge', 'bad-2', ...db]);
    expect(dropAgain.code).toBe(1);

    // Replayed from another process: the running consumer notices and handles it.
    broken = false;
    const replay = await runTreadle(['queue', 'dlq', 'replay', 'land.merge', ...db]);
    expect(replay).toMatchObject({ code: 0, stdout: 'replayed 1 dead letter from land.merge_dlq\n' });
    await waitFor(() => handled.includes('bad-1'), 'the replayed message');
    expect(handled).toEqual(['ok-1', 'bad-1']);
    expect(t.queue.deadLetters('land.merge')).toHaveLength(0);
  });

  it('explains a missing database and bad usage', async () => {
    const missing = await runTreadle(['queue', 'stats', '--db', join('/nonexistent', 'x.db')]);
    expect(missing.code).toBe(78);
    expect(missing.stderr).toMatch(/no treadle database at \/nonexistent\/x\.db/);
    const usage = await runTreadle(['queue', 'dlq', 'frob', 'x']);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/usage:/);
    // A real database, so the topic name is what is refused.
    t = openTestQueue();
    const badTopic = await runTreadle(['queue', 'dlq', 'list', 'no spaces', '--db', t.path]);
    expect(badTopic.code).toBe(2);
    expect(badTopic.stderr).toMatch(/topic "no spaces" is invalid/);
  });
});

describe('treadle doctor', () => {
  it('reports a bad configuration and exits 1', async () => {
    const { code, stdout } = await runTreadle(['doctor'], { TREADLE_OWNER: 'nobody' });
    expect(code).toBe(1);
    expect(stdout).toMatch(/^FAIL .*TREADLE_OWNER: expected a DID/m);
    expect(stdout).toMatch(/^ok +Node\.js v22/m);
  });

  it('checks that the engine map names configured runners', async () => {
    const env = {
      TREADLE_OWNER: 'did:plc:x',
      TREADLE_HOSTNAME: 'h.example',
      TREADLE_DB: '/nonexistent/treadle.db',
    };
    const bad = await runTreadle(['doctor'], { ...env, TREADLE_ENGINES: 'nixery=jenkins' });
    expect(bad.code).toBe(1);
    expect(bad.stdout).toMatch(
      /^FAIL +TREADLE_ENGINES: engine nixery maps to runner jenkins, which is not configured/m,
    );
    const good = await runTreadle(['doctor'], { ...env, TREADLE_ENGINES: 'nixery=stub' });
    expect(good.stdout).toMatch(/^ok +runners: stub; engine map: nixery → stub$/m);
  });

  it('reports the database, its schema and its dead letters', async () => {
    t = openTestQueue({ maxAttempts: 1 });
    t.queue.consume('x', 'g', () => {
      throw new Error('no');
    });
    t.queue.start();
    t.queue.publish('x', 'p', 'm', {});
    await waitFor(() => t.queue.deadLetters('x').length === 1, 'dead letter');
    const { code, stdout } = await runTreadle(['doctor'], {
      TREADLE_OWNER: 'did:plc:x',
      TREADLE_HOSTNAME: 'h.example',
      TREADLE_DB: t.path,
    });
    expect(code).toBe(0);
    const latest = MIGRATIONS.at(-1)!.version;
    expect(stdout).toMatch(
      new RegExp(`^ok +database .*: schema ${latest} \\(this treadle: ${latest}\\)`, 'm'),
    );
    expect(stdout).toMatch(/^warn +1 dead letter/m);
  });
});
