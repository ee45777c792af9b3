/**
 * The dashboard over HTTP, through the real daemon: pages for what the stack really recorded
 * (fake knot pushes, stub outcomes), the strict CSP on every page, record-derived text escaped,
 * and the admin pages behind the sign-in cookie.
 */
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OWNER, onboard, pushStub, type Stack, type StubPush, startStack } from './support/stack.ts';
import { waitFor } from './support/wait.ts';

const TOKEN = 'ui-admin-token-0123456789abcdef0123456789abcdef';
const REPO = `${OWNER}/hello`;
const XSS = '<script>alert(1)</script>';
let s: Stack;

beforeAll(async () => {
  s = await startStack({ TREADLE_ADMIN_TOKEN: TOKEN });
  await onboard(s);
}, 30_000);

afterAll(async () => {
  await s?.close();
});

let shas = 0;
function push(outcome: string, options: StubPush = {}) {
  const sha = (++shas).toString(16).padStart(40, 'e');
  return { sha, key: pushStub(s, sha, outcome, options) };
}

async function page(path: string, init: RequestInit = {}) {
  const res = await fetch(`${s.daemon.base}${path}`, { redirect: 'manual', ...init });
  return { res, text: await res.text() };
}

async function verdict(sha: string, ref = 'main'): Promise<string | undefined> {
  return waitFor(
    async () => {
      const r = await fetch(
        `${s.daemon.base}/greenness/v1/status?repo=${encodeURIComponent(REPO)}&ref=${encodeURIComponent(ref)}&commit=${sha}`,
      );
      const body = (await r.json()) as { status?: string };
      return body.status === 'green' || body.status === 'not_green' ? body.status : undefined;
    },
    `the verdict on ${sha.slice(0, 8)}`,
  );
}

describe('dashboard', () => {
  it('sends browsers from / to /ui/ and keeps the plain banner for other clients', async () => {
    const browser = await page('/', { headers: { accept: 'text/html,application/xhtml+xml' } });
    expect(browser.res.status).toBe(302);
    expect(browser.res.headers.get('location')).toBe('/ui/');
    const plain = await page('/');
    expect(plain.res.status).toBe(200);
    expect(plain.text).toMatch(/a Tangled spindle at spindle\.test[\s\S]*\/xrpc\//);
    const about = await page('/ui/about');
    expect(about.text).toContain('a Tangled spindle at <strong>spindle.test</strong>');
  });

  it('lists the served repo, its branch and the latest runs, with a strict CSP', async () => {
    const { sha } = push('success');
    expect(await verdict(sha)).toBe('green');
    const { res, text } = await page('/ui/');
    expect(res.status).toBe(200);
    const csp = res.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
    expect(text).toContain('<span class="repo">hello</span>');
    expect(text).toContain(`href="/ui/branch?repo=${encodeURIComponent(REPO)}&amp;ref=main"`);
    expect(text).toContain(sha.slice(0, 8));
    expect(text).toMatch(/class="status ok"><span aria-hidden="true">✓<\/span> green/);
    const filtered = await page('/ui/?q=nothing-matches');
    expect(filtered.text).toContain('No served repository matches.');
  });

  it('draws the branch history newest first, green and red, with the last green mark', async () => {
    const a = push('success');
    const b = push('failure');
    expect(await verdict(a.sha)).toBe('green');
    expect(await verdict(b.sha)).toBe('not_green');
    const { text } = await page(`/ui/branch?repo=${encodeURIComponent(REPO)}&ref=main`);
    const cells = [...text.matchAll(/data-seq="(\d+)" data-verdict="([a-z_]+)"/g)].map((m) => [
      Number(m[1]),
      m[2],
    ]);
    expect(cells.length).toBeGreaterThanOrEqual(3);
    const seqs = cells.map(([seq]) => seq as number);
    expect(seqs).toEqual([...seqs].sort((x, y) => y - x));
    expect(cells[0]![1]).toBe('not_green');
    expect(cells[1]![1]).toBe('green');
    expect(text).toContain(`${a.sha.slice(0, 8)}: green (last green)`);
    expect(text).toContain('<svg viewBox');
    const missing = await page(`/ui/branch?repo=${encodeURIComponent(REPO)}&ref=nope`);
    expect(missing.res.status).toBe(404);
    const bad = await page('/ui/commit?repo=x&ref=main&commit=1');
    expect(bad.res.status).toBe(404);
  });

  it('shows a commit with its verdict, reason, workflows and log', async () => {
    const { sha, key } = push('failure', { steps: ['build', 'test'] });
    expect(await verdict(sha)).toBe('not_green');
    const { text } = await page(`/ui/commit?repo=${encodeURIComponent(REPO)}&ref=main&commit=${sha}`);
    expect(text).toContain('workflow ci.yml failed');
    expect(text).toContain(`data-logs="/logs/${encodeURIComponent(s.knot.host)}/${key}/ci.yml"`);
    expect(text).toMatch(/▸ build\n/);
    const run = await page(`/ui/run/${encodeURIComponent(s.knot.host)}/${key}`);
    expect(run.res.status).toBe(200);
    expect(run.text).toContain('greenness of this commit');
    expect((await page(`/ui/run/${encodeURIComponent(s.knot.host)}/nope`)).res.status).toBe(404);
  });

  it('escapes record-derived text: a workflow and a branch named with markup render as text', async () => {
    const ref = `refs/heads/x"><img src=x>`;
    const { key } = push('success', { workflow: `${XSS}.yml`, ref });
    await waitFor(
      async () => (await page(`/ui/run/${encodeURIComponent(s.knot.host)}/${key}`)).res.status === 200,
      'the run',
    );
    const run = await page(`/ui/run/${encodeURIComponent(s.knot.host)}/${key}`);
    expect(run.text).not.toContain(XSS);
    expect(run.text).toContain('&lt;script&gt;alert(1)&lt;/script&gt;.yml');
    // The branch is shown, as text.
    expect(run.text).not.toContain('<img src=x>');
    expect(run.text).toContain('x&quot;&gt;&lt;img src=x&gt;');
    const over = await page('/ui/');
    expect(over.text).not.toContain(XSS);
    expect(over.text).not.toContain('<img src=x>');
  });

  it('refuses the queue and landing pages without a session, and signs in with the admin token only', async () => {
    for (const path of ['/ui/queue', '/ui/landing']) {
      const r = await page(path);
      expect(r.res.status).toBe(401);
      expect(r.text).toContain('Admin token');
      expect(r.text).not.toContain('workflow.status');
    }
    const form = { 'content-type': 'application/x-www-form-urlencoded' };
    const wrong = await page('/ui/login?next=/ui/queue', {
      method: 'POST',
      headers: form,
      body: 'token=nope',
    });
    expect(wrong.res.status).toBe(401);
    expect(wrong.res.headers.get('set-cookie')).toBeNull();
    const right = await page('/ui/login?next=/ui/queue', {
      method: 'POST',
      headers: form,
      body: `token=${encodeURIComponent(TOKEN)}`,
    });
    expect(right.res.status).toBe(303);
    expect(right.res.headers.get('location')).toBe('/ui/queue');
    const cookie = right.res.headers.get('set-cookie') ?? '';
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Strict/);
    expect(cookie).not.toContain(TOKEN);
    const session = cookie.split(';')[0]!;
    const queue = await page('/ui/queue', { headers: { cookie: session } });
    expect(queue.res.status).toBe(200);
    expect(queue.text).toContain('<code>workflow.status</code>');
    expect(queue.text).toContain('None: every message was handled.');

    // A dead letter, as a handler that kept failing leaves it: the overview says a person is
    // needed, and the queue page lists it with its reason (as text).
    expect((await page('/ui/')).text).not.toContain('Needs a person');
    const db = new Database(s.db);
    db.prepare(
      `INSERT INTO queue_messages (topic, partition_key, id, payload, metadata, published_at, failed_at,
         failure_count, last_error, original_topic) VALUES ('ui.probe_dlq', 'p', 'probe/1', '{}', '{}', ?, ?, 5, ?, 'ui.probe')`,
    ).run(Date.now(), Date.now(), `receiver answered 500 <b>down</b>`);
    db.close();
    const warned = await page('/ui/');
    expect(warned.text).toContain('Needs a person');
    expect(warned.text).toContain('1 dead letter in the queue');
    const letters = await page('/ui/queue', { headers: { cookie: session } });
    expect(letters.text).toContain('<code>probe/1</code>');
    expect(letters.text).toContain('receiver answered 500 &lt;b&gt;down&lt;/b&gt;');
    const forged = await page('/ui/queue', { headers: { cookie: `${session.slice(0, -4)}beef` } });
    expect(forged.res.status).toBe(401);
    const huge = await page('/ui/login', {
      method: 'POST',
      headers: form,
      body: `token=${'x'.repeat(5000)}`,
    });
    expect(huge.res.status).toBe(413);
    const elsewhere = await page('/ui/login?next=https://evil.example/', {
      method: 'POST',
      headers: form,
      body: `token=${encodeURIComponent(TOKEN)}`,
    });
    expect(elsewhere.res.headers.get('location')).toBe('/ui/');
  });

  it('replays and drops dead letters from the queue page, only for a session posting its own form', async () => {
    const form = { 'content-type': 'application/x-www-form-urlencoded' };
    const login = await page('/ui/login', {
      method: 'POST',
      headers: form,
      body: `token=${encodeURIComponent(TOKEN)}`,
    });
    const session = (login.res.headers.get('set-cookie') ?? '').split(';')[0]!;
    const db = new Database(s.db);
    const bury = (id: string) =>
      db
        .prepare(
          `INSERT INTO queue_messages (topic, partition_key, id, payload, metadata, published_at, failed_at,
             failure_count, last_error, original_topic) VALUES ('ui.manual_dlq', 'p', ?, '{"n":1}', '{}', ?, ?, 5, 'boom', 'ui.manual')`,
        )
        .run(id, Date.now(), Date.now());
    const where = (id: string) =>
      db.prepare('SELECT topic FROM queue_messages WHERE id = ?').pluck().all(id) as string[];
    bury('manual/1');
    bury('manual/2');
    try {
      const queue = await page('/ui/queue', { headers: { cookie: session } });
      expect(queue.text).toContain('aria-label="Drop manual/1"');
      const csrf = /name="csrf" value="([0-9a-f]{64})"/.exec(queue.text)?.[1];
      expect(csrf, 'the anti-forgery value in the page').toBeDefined();
      const post = (verb: string, body: Record<string, string>, headers: Record<string, string> = {}) =>
        page(`/ui/queue/${verb}`, {
          method: 'POST',
          headers: { ...form, cookie: session, ...headers },
          body: new URLSearchParams(body).toString(),
        });

      // Refused, changing nothing: no session, no or a wrong anti-forgery value, another site.
      const refusals = [
        await page('/ui/queue/drop', {
          method: 'POST',
          headers: form,
          body: `csrf=${csrf}&topic=ui.manual&id=manual/1`,
        }),
        await post('drop', { topic: 'ui.manual', id: 'manual/1' }),
        await post('drop', { csrf: 'f'.repeat(64), topic: 'ui.manual', id: 'manual/1' }),
        await post(
          'drop',
          { csrf: csrf!, topic: 'ui.manual', id: 'manual/1' },
          { origin: 'https://evil.example' },
        ),
        await post(
          'drop',
          { csrf: csrf!, topic: 'ui.manual', id: 'manual/1' },
          { 'sec-fetch-site': 'cross-site' },
        ),
      ];
      expect(refusals.map((r) => r.res.status)).toEqual([401, 403, 403, 403, 403]);
      const bad = [
        await post('drop', { csrf: csrf!, topic: 'ui.manual' }),
        await post('replay', { csrf: csrf!, topic: 'ui.manual_dlq' }),
        await post('replay', { csrf: csrf!, topic: '<b>' }),
      ];
      expect(bad.map((r) => r.res.status)).toEqual([400, 400, 400]);
      expect(where('manual/1')).toEqual(['ui.manual_dlq']);

      const dropped = await post('drop', { csrf: csrf!, topic: 'ui.manual', id: 'manual/1' });
      expect(dropped.res.status).toBe(303);
      expect(dropped.res.headers.get('location')).toBe('/ui/queue?dropped=1&topic=ui.manual');
      expect(where('manual/1')).toEqual([]);
      const notice = await page(dropped.res.headers.get('location')!, { headers: { cookie: session } });
      expect(notice.text).toContain('Dropped 1 dead letter of <code>ui.manual</code>.');

      // Behind a proxy the Host is the daemon's address and the browser's Origin the public name.
      const replayed = await post(
        'replay',
        { csrf: csrf!, topic: 'ui.manual' },
        { origin: 'https://spindle.test' },
      );
      expect(replayed.res.headers.get('location')).toBe('/ui/queue?replayed=1&topic=ui.manual');
      expect(where('manual/2')).toEqual(['ui.manual']); // back on its topic, for its consumers
      expect((await page('/ui/queue', { headers: { cookie: session } })).text).not.toContain('manual/2');
    } finally {
      db.close();
    }
  });
});
