/**
 * The dashboard under /ui/: server-rendered pages (overview, branch, commit, run, landing,
 * queue, about, sign-in) with a small script for live updates and live logs, and plain CSS.
 * The queue page's replay and drop are form posts checked by `AdminSessions.mayChange`.
 * Every response carries a strict Content-Security-Policy. Public pages show only what /events
 * and the appview's CI view already make public; landing and queue need an admin session.
 */
import { readFileSync } from 'node:fs';
import type { Context, Hono } from 'hono';
import { html } from 'hono/html';
import type { AppContext } from '../context.ts';
import { InvalidRequestError, XrpcError } from '../errors.ts';
import { checkCommit } from '../greenness/api.ts';
import { readBody } from '../http/body.ts';
import type { Module } from '../module.ts';
import { DLQ_SUFFIX } from '../queue/index.ts';
import { checkName } from '../queue/validate.ts';
import { VERSION } from '../version.ts';
import { landingPage, type QueueNotice, queuePage } from './admin.ts';
import { branch } from './branch.ts';
import { UiData, type UiDeps } from './data.ts';
import { branchName, CSP, type Html, page } from './html.ts';
import { overview } from './overview.ts';
import { commitPage, runPage } from './run.ts';
import { AdminSessions } from './session.ts';

const STATIC: Record<string, string> = {
  'ui.css': 'text/css; charset=utf-8',
  'ui.js': 'text/javascript; charset=utf-8',
};
/** The sign-in and the queue's forms: a few short fields. */
const FORM_BODY_LIMIT = 4096;
/** A message id as a form may carry it. */
const LETTER_ID = /^\P{Cc}{1,1024}$/u;
const TO_QUEUE = { href: '/ui/queue', label: 'Back to the queue' };

export function createUi(ctx: AppContext, deps: UiDeps): Module {
  const data = new UiData(ctx, deps);
  const sessions = new AdminSessions(ctx.config.adminToken, Date.now, ctx.config.hostname);
  const files = new Map(
    Object.keys(STATIC).map((name) => [name, readFileSync(new URL(`./static/${name}`, import.meta.url))]),
  );

  const render = (
    c: Context,
    o: Parameters<typeof page>[0],
    body: Html,
    code: 200 | 401 | 403 | 404 | 400 = 200,
  ) => c.html(page(o, body), code);

  const routes = (app: Hono): void => {
    app.use('/ui/*', async (c, next) => {
      await next();
      c.header('Content-Security-Policy', CSP);
      c.header('X-Content-Type-Options', 'nosniff');
      c.header('Referrer-Policy', 'same-origin');
      if (!c.res.headers.has('cache-control')) c.header('Cache-Control', 'no-store');
    });
    // A browser goes to the dashboard; anything else gets the stock spindle's plain-text banner.
    app.all('/', (c) =>
      c.req.method === 'GET' && (c.req.header('accept') ?? '').includes('text/html')
        ? c.redirect('/ui/', 302)
        : c.text(banner(ctx.config.hostname)),
    );
    app.get('/ui', (c) => c.redirect('/ui/', 301));

    app.get('/ui/static/:file', (c) => {
      const name = c.req.param('file');
      const body = files.get(name);
      if (!body) return c.text('404 page not found\n', 404);
      return c.body(new Uint8Array(body), 200, {
        'content-type': STATIC[name]!,
        'cache-control': 'public, max-age=300',
      });
    });

    app.get('/ui/', (c) => {
      const admin = sessions.isAdmin(c);
      const filter = (c.req.query('q') ?? '').slice(0, 200);
      const pageNo = positive(c.req.query('page'));
      return render(
        c,
        { title: 'Overview', nav: 'overview', live: true, admin },
        overview(data, { filter, page: pageNo }),
      );
    });

    app.get('/ui/branch', (c) => {
      const admin = sessions.isAdmin(c);
      const q = uiQueue(c, data);
      if ('error' in q) return problem(c, admin, q.error);
      return render(
        c,
        { title: `${branchName(q.ref)} of ${q.repo}`, nav: 'none', live: true, admin },
        branch(data, q),
      );
    });

    app.get('/ui/commit', (c) => {
      const admin = sessions.isAdmin(c);
      const q = uiQueue(c, data);
      if ('error' in q) return problem(c, admin, q.error);
      let commit: string;
      try {
        commit = checkCommit(c.req.query('commit'));
      } catch (err) {
        return problem(c, admin, (err as Error).message, 400);
      }
      return render(
        c,
        { title: `Commit ${commit.slice(0, 8)}`, nav: 'none', live: true, admin },
        commitPage(data, q, commit),
      );
    });

    app.get('/ui/run/:knot/:rkey', (c) => {
      const admin = sessions.isAdmin(c);
      const run = data.pipeline(c.req.param('knot'), c.req.param('rkey'));
      if (!run) return problem(c, admin, 'No such run here (it may be past retention).');
      return render(
        c,
        { title: `Run ${run.pipeline.rkey}`, nav: 'none', live: true, admin },
        runPage(data, run),
      );
    });

    app.get('/ui/landing', (c) => {
      const admin = sessions.isAdmin(c);
      if (!admin) return refuse(c);
      return render(c, { title: 'Landing', nav: 'landing', live: true, admin }, landingPage(data));
    });

    app.get('/ui/queue', (c) => {
      const csrf = sessions.csrf(c);
      if (csrf === undefined) return refuse(c);
      return render(
        c,
        { title: 'Queue', nav: 'queue', live: true, admin: true },
        queuePage(data, csrf, queueNotice(c)),
      );
    });

    // Replay (every dead letter of a topic, or one) and drop (one), as `treadle queue dlq` does.
    for (const verb of ['replay', 'drop'] as const) {
      app.post(`/ui/queue/${verb}`, async (c) => {
        if (!sessions.isAdmin(c)) return refuse(c);
        const form = new URLSearchParams((await readBody(c, FORM_BODY_LIMIT)).toString('utf8'));
        if (!sessions.mayChange(c, form.get('csrf') ?? ''))
          return problem(
            c,
            true,
            'This form is out of date or came from another site: reload the queue page and try again.',
            403,
            TO_QUEUE,
          );
        const topic = form.get('topic') ?? '';
        const id = form.get('id') ?? undefined;
        if (!isTopic(topic) || (id !== undefined && !LETTER_ID.test(id)))
          return problem(c, true, 'Expected a topic name and, for one letter, its id.', 400, TO_QUEUE);
        if (verb === 'drop' && id === undefined)
          return problem(c, true, 'Drop needs the id of a letter.', 400, TO_QUEUE);
        const count =
          verb === 'replay' ? ctx.queue.replayDeadLetters(topic, id) : ctx.queue.dropDeadLetters(topic, id!);
        ctx.log.info(
          { topic, id, count, via: 'dashboard' },
          `dead letters ${verb === 'replay' ? 'replayed' : 'dropped'}`,
        );
        const back = new URLSearchParams({
          [verb === 'replay' ? 'replayed' : 'dropped']: String(count),
          topic,
        });
        return c.redirect(`/ui/queue?${back}`, 303);
      });
    }

    app.get('/ui/about', (c) =>
      render(
        c,
        { title: 'About', nav: 'about', admin: sessions.isAdmin(c) },
        html`<h1>About</h1>
<p>treadle ${VERSION}: a Tangled spindle at <strong>${ctx.config.hostname}</strong>.</p>
<p>This is a CI server for <a href="https://tangled.org">Tangled</a>. It runs the workflows in <code>.tangled/workflows/</code> of the repositories that name it as their spindle, by handing them to another CI system, and reports their status and logs back to Tangled. It also records which commits of each branch are green.</p>
<p>API routes are under <code>/xrpc/</code>; greenness under <code>/greenness/v1/</code>; health at <code>/healthz</code> and <code>/readyz</code>.</p>`,
      ),
    );

    app.get('/ui/login', (c) =>
      render(
        c,
        { title: 'Sign in', nav: 'login', admin: sessions.isAdmin(c) },
        loginForm(sessions.enabled, false, safeNext(c.req.query('next'))),
      ),
    );

    app.post('/ui/login', async (c) => {
      // Over the bound: 413 from the shared error handler, the body never buffered.
      const body = await readBody(c, FORM_BODY_LIMIT);
      const token = new URLSearchParams(body.toString('utf8')).get('token') ?? '';
      const back = safeNext(c.req.query('next'));
      if (sessions.signIn(c, token)) return c.redirect(back, 303);
      return render(
        c,
        { title: 'Sign in', nav: 'login', admin: false },
        loginForm(sessions.enabled, true, back),
        401,
      );
    });

    app.post('/ui/logout', (c) => {
      sessions.signOut(c);
      return c.redirect('/ui/', 303);
    });

    app.all('/ui/*', (c) => problem(c, sessions.isAdmin(c), 'No such page.'));
  };

  const refuse = (c: Context) =>
    render(
      c,
      { title: 'Sign in', nav: 'login', admin: false },
      html`<h1>Sign in needed</h1><p>This page shows landing and queue details; it needs the admin token.</p>${loginForm(sessions.enabled, false, new URL(c.req.url).pathname)}`,
      sessions.enabled ? 401 : 403,
    );

  const problem = (
    c: Context,
    admin: boolean,
    message: string,
    code: 400 | 403 | 404 = 404,
    back: { href: string; label: string } = { href: '/ui/', label: 'Back to the overview' },
  ) => {
    const heading = code === 400 ? 'Bad request' : code === 403 ? 'Refused' : 'Not found';
    return render(
      c,
      { title: heading, nav: 'none', admin },
      html`<h1>${heading}</h1><p>${message}</p><p><a href="${back.href}">${back.label}</a></p>`,
      code,
    );
  };

  return { name: 'ui', routes };
}

/** The stock spindle's answer at `/`, kept for clients that are not browsers. */
function banner(hostname: string): string {
  return `treadle ${VERSION}: a Tangled spindle at ${hostname}

This is a CI server for Tangled (https://tangled.org). It runs the workflows in
.tangled/workflows/ of the repositories that name it as their spindle, by handing
them to another CI system, and reports their status and logs back to Tangled.

API routes are under /xrpc/; the dashboard is at /ui/.
`;
}

function loginForm(enabled: boolean, failed = false, next = '/ui/'): Html {
  if (!enabled) return html`<p>Admin pages are off: set <code>TREADLE_ADMIN_TOKEN</code> to use them.</p>`;
  return html`<form method="post" action="/ui/login?next=${encodeURIComponent(next)}" class="login">
${failed ? html`<p class="error" role="alert">That token is not the admin token.</p>` : ''}
<label for="token">Admin token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>`;
}

/** Only a path under /ui/ is a place to go back to after signing in (no open redirect). */
function safeNext(next: string | undefined): string {
  return next && /^\/ui\/[A-Za-z0-9/_-]*$/.test(next) ? next : '/ui/';
}

/** A queue topic's name, as the queue checks it (not a dead-letter topic's own name). */
function isTopic(name: string): boolean {
  try {
    checkName('topic', name);
    return !name.endsWith(DLQ_SUFFIX);
  } catch {
    return false;
  }
}

/** The notice a replay or drop redirects with (`?replayed=3&topic=…`), if any. */
function queueNotice(c: Context): QueueNotice | undefined {
  const topic = c.req.query('topic') ?? '';
  for (const action of ['replayed', 'dropped'] as const) {
    const n = c.req.query(action);
    if (n !== undefined && /^\d{1,9}$/.test(n) && isTopic(topic)) return { action, topic, count: Number(n) };
  }
  return undefined;
}

function positive(raw: string | undefined): number {
  const n = raw && /^\d{1,6}$/.test(raw) ? Number(raw) : 1;
  return n >= 1 ? n : 1;
}

function uiQueue(c: Context, data: UiData) {
  try {
    return data.d.greenness.api.queue(c.req.query('repo'), c.req.query('ref'));
  } catch (err) {
    if (err instanceof InvalidRequestError || err instanceof XrpcError) return { error: err.message };
    throw err;
  }
}
