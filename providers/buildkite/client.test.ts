import { describe, expect, it } from 'vitest';
import { RequestBudget } from './client.ts';

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
    expect(starts.slice(0, 5).every((t) => t < 200)).toBe(true);
    expect(starts[5]).toBeGreaterThanOrEqual(390);
    expect(starts[6]).toBeGreaterThanOrEqual(390);
  });

  it('holds every caller while paused by a 429', async () => {
    const budget = new RequestBudget(100, 1000);
    const t0 = Date.now();
    budget.pause(t0 + 300);
    await budget.take();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(290);
  });
});
