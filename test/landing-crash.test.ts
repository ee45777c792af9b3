/**
 * SIGKILL of the daemon while a merge is pushing, then a restart: exactly one push reaches the
 * remote (counted by its post-receive hook) and exactly one result is published for the request.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GitRemote } from './support/git-remote.ts';
import { OWNER, onboard, type Stack, startStack } from './support/stack.ts';
import { tempDir } from './support/temp.ts';
import { sleep, waitFor } from './support/wait.ts';

const TOKEN = 'k'.repeat(40);
const dir = tempDir('treadle-landcrash-');
let s: Stack;
let remote: GitRemote;

beforeAll(async () => {
  remote = new GitRemote(join(dir.dir, 'git'));
  const config = join(dir.dir, 'treadle.yaml');
  writeFileSync(
    config,
    `landing:\n  targets:\n    - name: main\n      repo: ${OWNER}/hello\n      remoteUrl: ${remote.bare}\n      targetBranch: main\n`,
  );
  s = await startStack({ TREADLE_CONFIG: config, TREADLE_ADMIN_TOKEN: TOKEN });
  await onboard(s);
}, 30_000);

afterAll(async () => {
  await s?.close();
  dir.cleanup();
});

describe('landing across a SIGKILL', () => {
  it('pushes once and answers once when the daemon dies mid-push', async () => {
    const [sha] = remote.branch('c', [{ 'c.txt': 'c' }]);
    const marker = join(dir.dir, 'pushing');
    remote.hook('pre-receive', `#!/bin/sh\ntouch "${marker}"\nsleep 2\nexit 0\n`);
    const before = remote.pushes().filter((l) => l.startsWith('refs/heads/main')).length;
    const res = await fetch(`${s.daemon.base}/land/v1/requests`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ target: 'main', strategy: 'REBASE', commits: [sha] }),
    });
    const { id } = (await res.json()) as { id: string };
    await waitFor(() => existsSync(marker), 'the push under way', 20_000);
    await s.daemon.kill();
    await sleep(2_500); // the orphaned git push may still complete: let it
    await s.restart();
    const results = () => {
      const db = new Database(s.db, { readonly: true });
      try {
        return db
          .prepare(`SELECT id, payload FROM queue_messages WHERE topic = 'land.merge.result'`)
          .all() as Array<{ id: string; payload: string }>;
      } finally {
        db.close();
      }
    };
    await waitFor(() => results().length > 0, 'the answer after the restart', 30_000);
    await sleep(1_000);
    expect(results().map((r) => r.id)).toEqual([id]);
    expect(JSON.parse(results()[0]!.payload)).toMatchObject({ id, outcome: 'SUCCEEDED' });
    const pushes = remote.pushes().filter((l) => l.startsWith('refs/heads/main'));
    expect(pushes.length - before).toBe(1);
    expect(remote.format('main', '%s')).toBe(remote.format(sha!, '%s'));
  }, 60_000);
});
