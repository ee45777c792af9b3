/**
 * The Buildkite chaos run at Buildkite's real default limits: 200 requests a minute per
 * organisation and 50 per user (the token's owner), with the count of runs scaled so it still
 * finishes within about a minute and a half. Under 5xx answers, creates committed and then
 * answered 500, 429 bursts, half the webhooks lost and a SIGKILL midway, every workflow runs
 * once to its status, Buildkite sees one build per run, and treadle never draws a 429 of its own
 * making: it learns the per-user limit from the API and paces itself under it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppviewEvents } from '../fakes/appview.ts';
import { FakeBuildkite } from '../fakes/buildkite.ts';
import { buildkiteEnv, buildkiteWorkflow } from './support/buildkite.ts';
import { onboard, pipelineRecord, rkey, type Stack, startStack } from './support/stack.ts';
import { waitFor } from './support/wait.ts';

const SECRET = 'whsec-limits-7d1';
let s: Stack;
let bk: FakeBuildkite;
let app: AppviewEvents;

beforeAll(async () => {
  bk = await FakeBuildkite.start(); // Buildkite's defaults: 200/min per organisation, 50/min per user
  s = await startStack({ ...buildkiteEnv(bk, SECRET), TREADLE_BUILDKITE_POLL_INTERVAL: '5s' });
  bk.webhook = { url: `${s.daemon.base}/webhooks/buildkite`, mode: 'signature', secret: SECRET };
  app = new AppviewEvents();
  await app.connect(s.daemon.base);
  await onboard(s);
}, 30_000);

afterAll(async () => {
  await app?.close();
  await s?.close();
  await bk?.close();
});

const workflow = buildkiteWorkflow;

describe('Buildkite at its real default rate limits', () => {
  it('runs every workflow once to its status under faults and a SIGKILL, within the per-user limit', async () => {
    const pipelines = Number(process.env.BK_LIMITS_PIPELINES ?? 6);
    bk.script('ok', { startAfterMs: 50, runMs: 300, jobs: [{ name: 't', command: 'true', lines: 3 }] });
    bk.script('bad', {
      startAfterMs: 50,
      runMs: 300,
      jobs: [{ name: 'f', command: 'false', lines: 3, exitStatus: 2 }],
    });
    bk.failRate = 0.1;
    bk.commitThenFailRate = 0.1;
    bk.dropRate = 0.5;
    bk.rateLimitBurst(3);
    const keys: string[] = [];
    for (let i = 0; i < pipelines; i++) {
      const key = rkey();
      s.knot.emit(
        'sh.tangled.pipeline',
        key,
        pipelineRecord(s.knot.host, [
          workflow('a.yml', 'ok'),
          workflow('b.yml', 'ok'),
          workflow('c.yml', 'bad'),
        ]),
      );
      keys.push(key);
      if (i === Math.floor(pipelines / 2)) {
        await waitFor(() => bk.builds.length >= 3, 'some builds');
        await app.close();
        await s.daemon.kill();
        await s.restart();
        bk.webhook = { url: `${s.daemon.base}/webhooks/buildkite`, mode: 'signature', secret: SECRET };
        await app.connect(s.daemon.base);
      }
    }
    const terminal = new Set(['success', 'failed', 'timeout', 'cancelled']);
    for (const key of keys)
      await waitFor(
        () => ['a.yml', 'b.yml', 'c.yml'].every((w) => terminal.has(app.latest(key)[w]?.status ?? '')),
        `pipeline ${key}`,
        150_000,
      );
    bk.failRate = 0;
    bk.commitThenFailRate = 0;
    bk.dropRate = 0;
    const perRun = bk.buildsPerRequest();
    for (const key of keys) {
      const latest = app.latest(key);
      // A run the kill caught may end "treadle restarted" only if Buildkite never got it: the
      // Buildkite runner finds its build again after a restart, so each ends as Buildkite says.
      expect([latest['a.yml']!.status, latest['b.yml']!.status, latest['c.yml']!.status], key).toEqual([
        'success',
        'success',
        'failed',
      ]);
      expect(latest['c.yml']!.exitCode, key).toBe(2);
      for (const w of ['a.yml', 'b.yml', 'c.yml']) {
        expect(perRun.get(`${s.knot.host}/${key}/${w}`), `${key}/${w}`).toBe(1);
        expect(
          app.history(key, w).filter((st) => terminal.has(st)),
          `${key}/${w}`,
        ).toHaveLength(1);
      }
    }
    // The only 429s are the three injected; treadle paced itself under the per-user limit.
    expect(bk.peakPerMinute()).toBeLessThanOrEqual(50);
    expect(s.daemon.logs()).toContain('Buildkite allows fewer requests per minute');
  }, 240_000);
});
