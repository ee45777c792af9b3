/**
 * Greenness across SIGKILLs: commits × 3 workflows are pushed while the daemon is killed and
 * restarted at random moments. Afterwards every commit's facts are exactly what its pipeline's
 * statuses on /events say they should be (no fact missing, duplicated or changed), and the hook
 * receiver has seen every event the daemon emitted at least once, and nothing else.
 * GREENNESS_CRASH_COMMITS sets the number of commits (default 100, the size).
 */
import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppviewEvents } from '../fakes/appview.ts';
import {
  OWNER,
  onboard,
  pipelineRecord,
  rkey,
  type Stack,
  startStack,
  stubWorkflow,
} from './support/stack.ts';
import { tempDir } from './support/temp.ts';
import { waitFor } from './support/wait.ts';

const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
const COMMITS = Number(process.env.GREENNESS_CRASH_COMMITS ?? 100);
const QUEUE = `${OWNER}/hello@refs/heads/main`;
let s: Stack;
let app: AppviewEvents;
let receiver: Server;
const seen = new Map<string, number>();
const dir = tempDir();

beforeAll(async () => {
  const wh = new Webhook(SECRET);
  receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      const e = wh.verify(body, req.headers as Record<string, string>) as { id: string };
      seen.set(e.id, (seen.get(e.id) ?? 0) + 1);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  const config = join(dir.dir, 'treadle.yaml');
  writeFileSync(
    config,
    `greenness:\n  hooks:\n    - url: http://127.0.0.1:${(receiver.address() as AddressInfo).port}/\n      secret: ${SECRET}\n`,
  );
  s = await startStack({ TREADLE_CONFIG: config });
  app = new AppviewEvents({ cursor: 1n });
  await app.connect(s.daemon.base);
  await onboard(s);
}, 30_000);

afterAll(async () => {
  await app?.close();
  await s?.close();
  await new Promise<void>((resolve) => receiver.close(() => resolve()));
  dir.cleanup();
});

function query<T>(sql: string, ...params: unknown[]): T[] {
  const db = new Database(s.db, { readonly: true });
  try {
    return db.prepare(sql).all(...params) as T[];
  } finally {
    db.close();
  }
}

describe('greenness across SIGKILLs', () => {
  it('records exactly the facts the statuses call for, and every hook event reaches the sink', async () => {
    const rkeys: string[] = [];
    const kills = new Set([Math.floor(COMMITS / 4), Math.floor(COMMITS / 2), Math.floor((3 * COMMITS) / 4)]);
    for (let i = 0; i < COMMITS; i++) {
      const sha = (i + 1).toString(16).padStart(40, 'e');
      const outcome = (w: number) => (i % 5 === 0 && w === 2 ? 'failure' : 'success');
      const key = rkey();
      rkeys.push(key);
      s.knot.emit(
        'sh.tangled.pipeline',
        key,
        pipelineRecord(
          s.knot.host,
          [0, 1, 2].map((w) => ({
            name: `w${w}.yml`,
            raw: stubWorkflow(outcome(w), `${50 + ((i * 37) % 300)}ms`),
          })),
          {},
          { newSha: sha },
        ),
      );
      if (kills.has(i)) {
        await new Promise((r) => setTimeout(r, Math.random() * 300));
        await app.close();
        await s.daemon.kill();
        await s.restart();
        await app.connect(s.daemon.base);
      } else await new Promise((r) => setTimeout(r, 40));
    }
    const terminal = new Set(['success', 'failed', 'timeout', 'cancelled']);
    await waitFor(
      () =>
        rkeys.every((k) =>
          ['w0.yml', 'w1.yml', 'w2.yml'].every((w) => terminal.has(app.latest(k)[w]?.status ?? '')),
        ),
      'every workflow to end',
      120_000,
    );
    await waitFor(
      () => {
        const pending = query<{ n: number }>(
          `SELECT count(*) AS n FROM queue_delivery WHERE topic IN ('pipeline.started', 'workflow.status', 'greenness.record', 'hook', 'hook.deliver')`,
        )[0]!.n;
        const open = query<{ n: number }>(
          `SELECT count(*) AS n FROM gn_validation WHERE state = 'pending'`,
        )[0]!.n;
        return pending === 0 && open === 0;
      },
      'the recorder and the hooks to catch up',
      60_000,
    );

    // Facts are exactly what the statuses on /events call for.
    const validations = query<{ commit_sha: string; pipeline: string; state: string }>(
      `SELECT v.commit_sha, p.uri AS pipeline, v.state FROM gn_validation v
         JOIN gn_pipeline p ON p.id = v.pipeline JOIN gn_queue q ON q.id = v.queue WHERE q.key = ?`,
      QUEUE,
    );
    expect(validations).toHaveLength(COMMITS);
    for (const v of validations) {
      const pipeline = v.pipeline.split('/').at(-1)!;
      const latest = app.latest(pipeline);
      const statuses = ['w0.yml', 'w1.yml', 'w2.yml'].map((w) => latest[w]!.status);
      const facts = new Map(
        query<{ project: string; degree: number }>(
          `SELECT f.project, f.degree FROM gn_fact f JOIN gn_queue q ON q.id = f.queue
             JOIN gn_validation v ON v.queue = f.queue AND v.seq = f.seq WHERE q.key = ? AND v.commit_sha = ?`,
          QUEUE,
          v.commit_sha,
        ).map((f) => [f.project, f.degree]),
      );
      const broken = statuses.filter((st) => st === 'failed' || st === 'timeout').length;
      const cancelled = statuses.filter((st) => st === 'cancelled').length;
      if (broken === 0 && cancelled > 0) expect(facts.has(''), v.commit_sha).toBe(false);
      else expect(facts.get(''), v.commit_sha).toBeCloseTo(broken / 3);
      statuses.forEach((st, w) => {
        const expected = st === 'success' ? 0 : st === 'failed' || st === 'timeout' ? 1 : undefined;
        expect(facts.get(`workflow:w${w}.yml`), `${v.commit_sha} w${w}`).toBe(expected);
      });
    }
    // Every event the daemon emitted reached the sink at least once; the sink saw nothing else.
    const emitted = new Set(
      query<{ id: string }>(`SELECT id FROM queue_messages WHERE topic = 'hook'`).map((r) => r.id),
    );
    expect(emitted.size).toBeGreaterThan(COMMITS);
    expect([...emitted].filter((id) => !seen.has(id))).toEqual([]);
    expect([...seen.keys()].filter((id) => !emitted.has(id))).toEqual([]);
  }, 240_000);
});
