/**
 * The fake Buildkite keeps the promises of buildkite spec §10 that treadle's tests lean on:
 * auth and scopes, list filters and `Link` paging, the jobs cursor list, retries and rebuilds,
 * org-scoped job routes, log deletion, both rate-limit windows, and webhook registration.
 */
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { waitFor } from '../test/support/wait.ts';
import { AUTH_REQUIRED, FakeBuildkite } from './buildkite.ts';

let bk: FakeBuildkite;
const P = '/v2/organizations/acme/pipelines/app/builds';

async function api(path: string, init: RequestInit & { token?: string } = {}) {
  const res = await fetch(`${bk.origin}${path}`, {
    ...init,
    headers: {
      authorization: `Bearer ${init.token ?? bk.token}`,
      ...(init.headers as Record<string, string>),
    },
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined };
}

const create = (body: Record<string, unknown> = {}) =>
  api(P, { method: 'POST', body: JSON.stringify({ commit: 'a'.repeat(40), branch: 'main', ...body }) });

beforeEach(async () => {
  bk = await FakeBuildkite.start({ orgLimit: 1000, userLimit: 1000 });
  bk.script('app', { startAfterMs: 10, runMs: 60, jobs: [{ name: 'j', command: 'make', lines: 3 }] });
});
afterEach(() => bk.close());

describe('fake Buildkite', () => {
  it('refuses a bad token with the exact 401 text and a missing scope with 403, and 404s unknown routes', async () => {
    expect(await api(P, { token: 'nope' })).toMatchObject({ status: 401, body: { message: AUTH_REQUIRED } });
    bk.addToken('read-only', ['read_builds']);
    expect(await api(P, { token: 'read-only', method: 'POST', body: '{}' })).toMatchObject({
      status: 403,
      body: { message: 'Forbidden' },
    });
    expect(await api('/v2/nothing/here')).toMatchObject({ status: 404, body: { message: 'Not Found' } });
    expect((await create({ commit: undefined })).body.errors[0].field).toBe('commit');
  });

  it('filters lists (state alias, branch wildcard, meta_data) and pages with Link headers that keep the query', async () => {
    for (let i = 0; i < 5; i++)
      await create({ branch: i % 2 ? 'feature/x' : 'main', meta_data: { k: `v${i}` } });
    const page1 = await api(`${P}?branch=feat*&per_page=1`);
    expect(page1.body).toHaveLength(1);
    expect(page1.body[0].number).toBe(4); // newest first
    const link = page1.headers.get('link')!;
    expect(link).toContain('rel="next"');
    expect(link).toContain('per_page=1');
    const next = /<([^>]+)>; rel="next"/.exec(link)![1]!;
    expect(new URL(next).searchParams.get('branch')).toBe('feat*');
    expect((await api(new URL(next).pathname + new URL(next).search)).body[0].number).toBe(2);
    expect((await api(`${P}?meta_data%5Bk%5D=v3`)).body.map((b: { number: number }) => b.number)).toEqual([
      4,
    ]);
    await waitFor(async () => (await api(`${P}?state=finished`)).body.length === 5, 'all finished');
    expect((await api(`${P}?state[]=running`)).body).toHaveLength(0);
  });

  it('retries a failed job: the old job is marked retried, the build runs again, then passes', async () => {
    bk.script('app', {
      startAfterMs: 10,
      runMs: 60,
      jobs: [{ name: 'j', command: 'make', lines: 1, exitStatus: 2 }],
    });
    const { body: build } = await create();
    const get = (q = '') => api(`${P}/${build.number}${q}`);
    await waitFor(async () => (await get()).body.state === 'failed', 'failed');
    const jobId = (await get()).body.jobs[0].id;
    const retry = await api(`/v2/organizations/acme/jobs/${jobId}/retry`, { method: 'PUT' });
    expect(retry.status).toBe(200);
    bk.builds[0]!.jobs.at(-1)!.script = { ...bk.builds[0]!.jobs.at(-1)!.script, exitStatus: 0 };
    expect(['running', 'scheduled', 'failing']).toContain((await get()).body.state);
    expect((await get()).body.jobs).toHaveLength(1); // latest attempts only, by default
    const all = (await get('?include_retried_jobs=true')).body.jobs;
    expect(all[0]).toMatchObject({ retried: true, retried_in_job_id: retry.body.id });
    expect(all[1].retry_source).toEqual({ job_id: jobId, retry_type: 'manual' });
    await waitFor(async () => (await get()).body.state === 'passed', 'passed after the retry');
    expect((await get()).body.job_state_counts).toEqual({ total: 1, states: { passed: 1 } });
    const again = await api(`/v2/organizations/acme/jobs/${jobId}/retry`, { method: 'PUT' });
    expect(again.status).toBe(422);
  });

  it('lists jobs with a cursor, serves org-scoped job routes and env, and deletes a log', async () => {
    bk.script('app', {
      startAfterMs: 10,
      runMs: 30,
      jobs: [1, 2, 3].map((n) => ({ name: `j${n}`, command: 'make', lines: 2 })),
    });
    const { body: build } = await create({ env: { A: '1' } });
    const first = await api(`${P}/${build.number}/jobs?per_page=2`);
    expect(first.body.items).toHaveLength(2);
    const rest = await api(new URL(first.body.links.next).pathname + new URL(first.body.links.next).search);
    expect(rest.body.items.map((j: { name: string }) => j.name)).toEqual(['j3']);
    expect(rest.body.links.next).toBeUndefined();
    const id = first.body.items[0].id;
    expect((await api(`/v2/organizations/acme/jobs/${id}`)).body.name).toBe('j1');
    expect((await api(`/v2/organizations/acme/jobs/${id}/env`)).body).toEqual({ env: { A: '1' } });
    await waitFor(async () => (await api(`${P}/${build.number}`)).body.state === 'passed', 'passed');
    const log = await api(`/v2/organizations/acme/jobs/${id}/log`);
    expect(log.body.content).toContain('line 2 of j1');
    expect(log.body.size).toBe(Buffer.byteLength(log.body.content));
    expect((await api(`${P}/${build.number}/jobs/${id}/log`, { method: 'DELETE' })).status).toBe(204);
    expect((await api(`/v2/organizations/acme/jobs/${id}/log`)).body.content).toBe('');
  });

  it('rebuilds a finished build as a new number that records its origin, and refuses a running one', async () => {
    bk.script('app', { startAfterMs: 10, runMs: 300, jobs: [{ name: 'j', command: 'make', lines: 1 }] });
    const { body: build } = await create({ message: 'm', env: { X: 'y' } });
    expect((await api(`${P}/${build.number}/rebuild`, { method: 'PUT' })).status).toBe(422);
    await waitFor(async () => (await api(`${P}/${build.number}`)).body.state === 'passed', 'passed');
    const rebuilt = await api(`${P}/${build.number}/rebuild`, { method: 'PUT' });
    expect(rebuilt.body).toMatchObject({
      number: build.number + 1,
      message: 'm',
      env: { X: 'y' },
      source: 'api',
      rebuilt_from: { id: build.id, number: build.number },
    });
  });

  it('keeps a user window below the org window: all eight headers, then 429 with the documented body', async () => {
    await bk.close();
    bk = await FakeBuildkite.start({ orgLimit: 10, userLimit: 2 });
    const ok = await api(P);
    for (const h of [
      'scope',
      'remaining',
      'limit',
      'reset',
      'user-scope',
      'user-remaining',
      'user-limit',
      'user-reset',
    ])
      expect(ok.headers.get(`ratelimit-${h}`), h).not.toBeNull();
    await api(P);
    const limited = await api(P);
    expect(limited.status).toBe(429);
    expect(limited.body).toMatchObject({ scope: 'rest_user', limit: 2, current: 3 });
    expect(limited.body.message).toMatch(/^You have exceeded your API rate limit\. Please wait \d+ seconds/);
    expect(limited.headers.get('ratelimit-user-warning')).toBe('You have exceeded your API rate limit.');
    bk.legacyRateLimitHeaders = true;
    expect((await api('/v2/organizations/acme/builds')).headers.get('ratelimit-user-limit')).toBeNull();
  });

  it('pings a webhook when it is registered and filters build events by pipeline and branch', async () => {
    const got: Array<{ event: string; branch?: string }> = [];
    const server = createServer((req: IncomingMessage, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        const parsed = JSON.parse(body);
        got.push({ event: parsed.event, branch: parsed.build?.branch });
        res.end('{}');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
      bk.addWebhook({ url, mode: 'token', secret: 's', pipelines: ['app'], branches: 'main release/*' });
      await waitFor(() => got.some((g) => g.event === 'ping'), 'ping');
      await create({ branch: 'feature/x' });
      await create({ branch: 'release/1' });
      await waitFor(() => got.some((g) => g.event === 'build.finished'), 'a finished event');
      await new Promise((r) => setTimeout(r, 100));
      expect(got.filter((g) => g.branch === 'feature/x')).toEqual([]);
      expect(got.filter((g) => g.event.startsWith('build.')).map((g) => g.branch)).toContain('release/1');
      expect(bk.deliveries.length).toBeLessThanOrEqual(20);
    } finally {
      server.close();
    }
  });
});
