/**
 * Greenness hooks as Standard Webhooks: a receiver verifies each delivery in a few lines, a sink
 * that fails at first is retried until it takes the event, and a sink's `events` globs choose
 * what it gets (spec §6.7, behaviours 24 and 27).
 */
import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { onboard, pipelineRecord, rkey, type Stack, startStack, stubWorkflow } from './support/stack.ts';
import { tempDir } from './support/temp.ts';
import { waitFor } from './support/wait.ts';

const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
let s: Stack;
let receiver: Server;
const received: Array<{ id: string; type: string; payload: Record<string, unknown> }> = [];
const refused: string[] = [];
const dir = tempDir();

beforeAll(async () => {
  const wh = new Webhook(SECRET);
  let failFirst = 2;
  receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      if (failFirst-- > 0) {
        refused.push(String(req.headers['webhook-id']));
        res.writeHead(503).end();
        return;
      }
      // What a receiver does: verify, then use the event.
      const event = wh.verify(body, req.headers as Record<string, string>) as (typeof received)[number];
      received.push(event);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks`;
  const config = join(dir.dir, 'treadle.yaml');
  writeFileSync(
    config,
    `greenness:\n  hooks:\n    - url: ${url}\n      secret: ${SECRET}\n      events: ["greenness.turned_*", "greenness.last_green_advanced"]\n`,
  );
  s = await startStack({ TREADLE_CONFIG: config });
  await onboard(s);
}, 30_000);

afterAll(async () => {
  await s?.close();
  await new Promise<void>((resolve) => receiver.close(() => resolve()));
  dir.cleanup();
});

function push(outcome: string, n: number): void {
  const sha = n.toString(16).padStart(40, 'd');
  s.knot.emit(
    'sh.tangled.pipeline',
    rkey(),
    pipelineRecord(s.knot.host, [{ name: 'ci.yml', raw: stubWorkflow(outcome, '0s') }], {}, { newSha: sha }),
  );
}

describe('greenness hooks', () => {
  it('delivers signed events to a sink that fails at first, each id taken once, only the types it asked for', async () => {
    push('success', 1);
    // Record commit 1 before pushing commit 2, so the red transition is from green.
    await waitFor(
      async () => {
        const res = await fetch(`${s.daemon.base}/greenness/v1/queues`);
        const { queues } = (await res.json()) as { queues: Array<{ lastGreen: unknown }> };
        return queues.some((q) => q.lastGreen !== null);
      },
      'commit 1 recorded green',
      30_000,
    );
    push('failure', 2);
    await waitFor(
      // Deliveries are retried independently, so they may arrive in any order: wait for all three.
      () => new Set(received.map((e) => e.type)).size === 3,
      'the three transitions',
      30_000,
    );
    expect(refused).toHaveLength(2);
    const ids = received.map((e) => e.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(received.map((e) => e.type).sort()).toEqual([
      'greenness.last_green_advanced',
      'greenness.turned_green',
      'greenness.turned_not_green',
    ]);
    const turned = received.find((e) => e.type === 'greenness.turned_not_green')!;
    expect(turned.payload).toMatchObject({ ref: 'refs/heads/main', seq: 2, from: 'green', to: 'not_green' });
    expect(turned.id).toMatch(/^treadle\/greenness\.turned_not_green\/.+\/2$/);
  }, 40_000);
});
