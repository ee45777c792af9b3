/**
 * `/metrics` and `/readyz` on the real daemon: the counters move with real pipelines, the
 * gauges read real state (knot and Jetstream connections, queue, stream clients), the series
 * do not multiply with the repos served (10,000 repos, 500 knots), the token is enforced, and
 * readiness names what is not ready.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppviewEvents } from '../fakes/appview.ts';
import {
  OWNER,
  pipelineRecord,
  repoRecord,
  rkey,
  type Stack,
  startDaemon,
  startStack,
  stubWorkflow,
} from './support/stack.ts';
import { tempDir } from './support/temp.ts';
import { waitFor } from './support/wait.ts';

const REPOS = 10_000;
const KNOTS = 500;
const TOKEN = 'm'.repeat(40);
let s: Stack;
let app: AppviewEvents;

beforeAll(async () => {
  // The owner's repos, listed from the PDS at first start: one on the fake knot per hundred,
  // the rest spread over 499 knots that do not exist (their streams stay in backoff).
  s = await startStack({ TREADLE_METRICS_TOKEN: TOKEN }, (pds, fake) => {
    for (let i = 0; i < REPOS; i++) {
      const knot = i % KNOTS === 0 ? fake.host : `knot-${i % KNOTS}.invalid`;
      pds.putRecord(OWNER, 'sh.tangled.repo', rkey(), repoRecord(`r${i}`, knot));
    }
  });
  app = new AppviewEvents();
  await app.connect(s.daemon.base);
  await waitFor(() => s.knot.connected > 0, 'the fake knot connection', 30_000);
}, 120_000);

afterAll(async () => {
  await app?.close();
  await s?.close();
});

async function scrape(token: string | null = TOKEN): Promise<Response> {
  return fetch(`${s.daemon.base}/metrics`, token ? { headers: { authorization: `Bearer ${token}` } } : {});
}

/** Each sample line as `name{labels}` → value. */
async function samples(): Promise<Map<string, number>> {
  const text = await (await scrape()).text();
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

const treadleSeries = (m: Map<string, number>) =>
  [...m.keys()].filter((k) => k.startsWith('treadle_')).sort();

/** Pushes one pipeline of two workflows in repo `r<n>`; resolves once both have ended. */
async function runIn(n: number): Promise<void> {
  const record = pipelineRecord(
    s.knot.host,
    [
      { name: 'ok', raw: stubWorkflow('success', '0s') },
      { name: 'bad', raw: stubWorkflow('failure', '0s') },
    ],
    { name: `r${n}` },
  );
  const key = rkey();
  s.knot.emit('sh.tangled.pipeline', key, record);
  await waitFor(
    () =>
      Object.values(app.latest(key)).filter((x) => x.status === 'success' || x.status === 'failed').length ===
      2,
    `pipeline in r${n}`,
    30_000,
  );
}

describe('/metrics', () => {
  it('needs the token when one is set', async () => {
    expect((await scrape(null)).status).toBe(401);
    const wrong = await scrape('x'.repeat(40));
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get('www-authenticate')).toMatch(/^Bearer/);
    const ok = await scrape();
    expect(ok.status).toBe(200);
    expect(ok.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  });

  it('counts pipelines and statuses by runner, and reads connections, clients and the queue', async () => {
    const before = await samples();
    // A pipeline for a repo this spindle does not serve, sent first: refused before the next runs.
    s.knot.emit(
      'sh.tangled.pipeline',
      rkey(),
      pipelineRecord(s.knot.host, [{ name: 'x' }], { name: 'elsewhere' }),
    );
    await runIn(0);
    // The appview hears the statuses first; greenness records them from its own queue group
    // moments later, so the scrape waits for that consumer to go idle with the fact counted.
    const factSeries = 'treadle_greenness_facts_total{verdict="not_green"}';
    const inFlight =
      'treadle_queue_messages{topic="workflow.status",group="greenness-ingest",state="in_flight"}';
    const after = await waitFor(
      async () => {
        const m = await samples();
        const facts = (m.get(factSeries) ?? 0) - (before.get(factSeries) ?? 0);
        return facts >= 1 && m.get(inFlight) === 0 ? m : null;
      },
      'greenness to record the pipeline',
      30_000,
    );
    const delta = (k: string) => (after.get(k) ?? 0) - (before.get(k) ?? 0);
    expect(delta('treadle_pipelines_accepted_total{trigger="push"}')).toBe(1);
    expect(delta('treadle_pipelines_refused_total{reason="not_served"}')).toBe(1);
    expect(delta('treadle_workflow_statuses_total{runner="stub",status="success"}')).toBe(1);
    expect(delta('treadle_workflow_statuses_total{runner="stub",status="failed"}')).toBe(1);
    expect(delta('treadle_workflow_statuses_total{runner="stub",status="running"}')).toBe(2);
    expect(delta('treadle_status_write_seconds_count')).toBeGreaterThanOrEqual(6);
    expect(delta('treadle_workflow_trigger_to_running_seconds_count')).toBe(2);
    expect(delta(factSeries)).toBe(1);
    expect(after.get('treadle_stream_connections{source="knot",state="connected"}')).toBe(1);
    const down =
      (after.get('treadle_stream_connections{source="knot",state="backoff"}') ?? 0) +
      (after.get('treadle_stream_connections{source="knot",state="connecting"}') ?? 0);
    expect(down).toBe(KNOTS - 1);
    expect(after.get('treadle_stream_connections{source="jetstream",state="connected"}')).toBe(1);
    expect(after.get('treadle_stream_clients{endpoint="events"}')).toBe(1);
    expect(after.has('process_resident_memory_bytes')).toBe(true);
  });

  it('has as many series after pipelines in 19 more repos as after the first: no per-repo labels', async () => {
    const first = treadleSeries(await samples());
    await Promise.all(Array.from({ length: REPOS / KNOTS - 1 }, (_, i) => runIn((i + 1) * KNOTS)));
    const m = await samples();
    expect(treadleSeries(m)).toEqual(first);
    for (const series of m.keys()) {
      expect(series).not.toMatch(/did:|[0-9a-f]{40}|\.invalid|127\.0\.0\.1|\/r\d+/);
    }
    expect(m.get('treadle_pipelines_accepted_total{trigger="push"}')).toBe(REPOS / KNOTS);
  }, 120_000);
});

describe('TREADLE_METRICS_LISTEN', () => {
  it('serves /metrics on the private listener only, without a token', async () => {
    const t = tempDir();
    const { TREADLE_METRICS_TOKEN: _, ...env } = s.env;
    const d = await startDaemon({
      ...env,
      TREADLE_DB: join(t.dir, 'other.db'),
      TREADLE_METRICS_LISTEN: '127.0.0.1:0',
    });
    try {
      const line = await waitFor(
        () =>
          d
            .logs()
            .split('\n')
            .find((l) => l.includes('"msg":"metrics listening"')) ?? '',
        'the metrics listener',
      );
      const { port } = JSON.parse(line) as { port: number };
      const res = await fetch(`http://127.0.0.1:${port}/metrics`);
      expect(res.status).toBe(200);
      expect(await res.text()).toMatch(/^# HELP treadle_/m);
      expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(404);
      expect((await fetch(`${d.base}/metrics`)).status).toBe(404);
    } finally {
      await d.kill();
      t.cleanup();
    }
  });
});

describe('/readyz', () => {
  it('is ready with the database, the queue and Jetstream up, and names Jetstream when it stays down', async () => {
    const ready = await fetch(`${s.daemon.base}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ ready: true });

    // Jetstream goes away; past the longest backoff (shortened here) the daemon is not ready.
    await s.daemon.kill();
    await s.jetstream.close();
    const d = await startDaemon({
      ...s.env,
      TREADLE_JETSTREAM_URL: 'ws://127.0.0.1:9/subscribe',
      TREADLE_STREAM_MAX_BACKOFF: '2s',
    });
    try {
      const body = await waitFor(
        async () => {
          const r = await fetch(`${d.base}/readyz`);
          return r.status === 503
            ? ((await r.json()) as { ready: boolean; notReady: Record<string, string> })
            : undefined;
        },
        'readyz to report Jetstream',
        60_000,
      );
      expect(body?.ready).toBe(false);
      expect(Object.keys(body!.notReady)).toEqual(['jetstream']);
      expect(body!.notReady.jetstream).toMatch(/^not connected for \d+ s \((backoff|connecting)\)$/);
      const health = await fetch(`${d.base}/healthz`);
      expect(health.status).toBe(200);
    } finally {
      await d.kill();
    }
  }, 120_000);
});
