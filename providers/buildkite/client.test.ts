import { describe, expect, it } from 'vitest';
import { FakeBuildkite } from '../../fakes/buildkite.ts';
import { createLogger } from '../../src/logger.ts';
import { waitFor } from '../../test/support/wait.ts';
import { BuildkiteClient, RequestBudget } from './client.ts';

describe('RequestBudget', () => {
  it('lets `limit` requests start per window and holds the next until the window moves', async () => {
    const budget = new RequestBudget(5, 400);
    const t0 = Date.now();
    const starts: number[] = [];
    for (let i = 0; i < 5; i++) await budget.take();
    expect(budget.pressure()).toBe(1);
    starts.push(...Array.from({ length: 5 }, () => Date.now() - t0));
    await Promise.all(
      Array.from({ length: 2 }, () => budget.take().then(() => starts.push(Date.now() - t0))),
    );
    starts.sort((a, b) => a - b);
    // The sixth and seventh wait for the window (a lower bound: never a wall-clock ceiling).
    expect(starts[5]).toBeGreaterThanOrEqual(390);
    expect(starts[6]).toBeGreaterThanOrEqual(390);
  });

  it('takes the API’s count of what is left when it is lower than its own (a restart, another client)', async () => {
    const budget = new RequestBudget(5, 60_000);
    await budget.take();
    budget.sync(1); // the API has seen four requests, this process one
    await budget.take();
    expect(budget.pressure()).toBe(1);
    budget.sync(3); // a higher count never frees anything
    expect(budget.pressure()).toBe(1);
  });

  it('holds every caller while paused by a 429', async () => {
    const budget = new RequestBudget(100, 1000);
    const t0 = Date.now();
    budget.pause(t0 + 300);
    await budget.take();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(290);
  });
});

describe('BuildkiteClient against the fake API', () => {
  it('narrows its budget to the per-user limit the API reports, so it never draws a 429', async () => {
    const bk = await FakeBuildkite.start({ orgLimit: 200, userLimit: 5 });
    const lines: string[] = [];
    const log = createLogger('info', { write: (l: string) => void lines.push(l) });
    const client = new BuildkiteClient({ apiUrl: bk.apiUrl, token: bk.token, requestsPerMinute: 200, log });
    try {
      const get = () => client.request({ method: 'GET', path: '/organizations/acme/builds' });
      await get();
      expect(client.budget.limit).toBe(5);
      expect(lines.join('')).toContain('"allowed":5');
      expect(lines.join('')).not.toContain(bk.token);
      const more = Array.from({ length: 5 }, get);
      let settled = 0;
      for (const p of more)
        void p.then(
          () => settled++,
          () => {},
        );
      // Four more fit in the minute; the fifth waits for the window instead of drawing a 429.
      await waitFor(() => settled === 4 && client.budget.waiting === 1, 'four answered and one waiting');
      expect(bk.requests.filter((r) => r.startsWith('GET'))).toHaveLength(5);
    } finally {
      await client.close();
      await bk.close();
    }
  });

  it('answers the fake’s pre-2026 headers (no RateLimit-User-*) without narrowing', async () => {
    const bk = await FakeBuildkite.start({ orgLimit: 300, userLimit: 5 });
    bk.legacyRateLimitHeaders = true;
    const client = new BuildkiteClient({
      apiUrl: bk.apiUrl,
      token: bk.token,
      requestsPerMinute: 200,
      log: createLogger('silent'),
    });
    try {
      await client.request({ method: 'GET', path: '/organizations/acme/builds' });
      expect(client.budget.limit).toBe(200);
    } finally {
      await client.close();
      await bk.close();
    }
  });
});
