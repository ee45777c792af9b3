/**
 * The overview: what needs a person first (a knot down for 10 minutes, dead letters, a runner
 * near its API budget), then every served repo with its branches' greenness, the latest runs,
 * knots, runners and the queue in numbers.
 */
import { html } from 'hono/html';
import type { QueueRow } from '../db/greenness-store.ts';
import { type PipelineView, type RepoView, UiData } from './data.ts';
import { branchName, duration, empty, type Html, qs, shortSha, status, when } from './html.ts';

const KNOT_DOWN_MS = 10 * 60_000;
const BUDGET_WARNING = 0.8;
export const REPOS_PER_PAGE = 50;

export interface OverviewQuery {
  filter: string;
  page: number;
}

/**
 * The banner's lines: a knot without a connection for 10 minutes or more, dead letters, a runner
 * past 80 % of its API budget.
 */
export function needsAPerson(o: {
  knots: ReadonlyArray<{ knot: string; state: string; downForMs: number }>;
  deadTotal: number;
  runners: ReadonlyMap<string, { budgetUsed?(): number }>;
}): Html[] {
  const warnings: Html[] = [];
  const down = o.knots.filter((k) => k.state !== 'connected' && k.downForMs >= KNOT_DOWN_MS);
  if (down.length > 0)
    warnings.push(
      html`<li>${down.length === 1 ? `Knot ${down[0]!.knot} has` : `${down.length} knots have`} been disconnected for over 10 minutes: new pushes there are not seen.</li>`,
    );
  const { deadTotal } = o;
  if (deadTotal > 0)
    warnings.push(
      html`<li>${deadTotal} dead ${deadTotal === 1 ? 'letter' : 'letters'} in the queue need a look (<a href="/ui/queue">queue</a>; <code>treadle queue dlq</code> replays or drops them).</li>`,
    );
  for (const [name, runner] of o.runners) {
    const used = runner.budgetUsed?.();
    if (used !== undefined && used >= BUDGET_WARNING)
      warnings.push(
        html`<li>Runner ${name} has used ${Math.round(used * 100)}% of its API rate limit in the current window: builds and polls are being paced.</li>`,
      );
  }
  return warnings;
}

export function overview(data: UiData, q: OverviewQuery): Html {
  const now = Date.now();
  const repos = data.repos(q.filter, (q.page - 1) * REPOS_PER_PAGE, REPOS_PER_PAGE);
  const knots = data.d.knots.connections();
  const { groups, dead } = data.ctx.queue.store.stats(now);
  const deadTotal = [...dead.values()].reduce((a, b) => a + b, 0);
  const warnings = needsAPerson({ knots, deadTotal, runners: data.d.runners });
  const ready = groups.reduce((a, g) => a + g.ready + g.retrying, 0);
  const inFlight = groups.reduce((a, g) => a + g.inFlight, 0);
  const held = groups.reduce((a, g) => a + g.held, 0);
  const states = new Map<string, number>();
  for (const k of knots) states.set(k.state, (states.get(k.state) ?? 0) + 1);

  return html`<h1>Overview</h1>
<div data-part="overview-top">
${
  warnings.length > 0
    ? html`<section class="banner" role="alert" aria-labelledby="needs"><h2 id="needs"><span aria-hidden="true">⚠</span> Needs a person</h2><ul>${warnings}</ul></section>`
    : ''
}
<div class="cards">
<section class="card" aria-labelledby="knots-h"><h2 id="knots-h">Knots</h2>
${knots.length === 0 ? empty('No knots followed yet: a repo that names this spindle brings its knot.') : ''}
<ul class="plain">${[...states].map(([state, n]) => html`<li>${status(state)} <strong>${n}</strong></li>`)}</ul>
${
  knots.some((k) => k.state !== 'connected')
    ? html`<ul class="plain small">${knots
        .filter((k) => k.state !== 'connected')
        .slice(0, 20)
        .map(
          (k) =>
            html`<li><code>${k.knot}</code>: ${status(k.state)} for ${duration(k.downForMs / 1000)}</li>`,
        )}</ul>`
    : ''
}
</section>
<section class="card" aria-labelledby="runners-h"><h2 id="runners-h">Runners</h2>
<ul class="plain">${[...data.d.runners].map(([name, r]) => {
    const used = r.budgetUsed?.();
    return html`<li><strong>${name}</strong>${used !== undefined ? html` · API budget ${Math.round(used * 100)}% used` : ''}</li>`;
  })}</ul>
<p class="small">Engines: ${Object.entries(data.ctx.config.engines).map(([e, r], i) => html`${i ? ', ' : ''}<code>${e}</code> → ${r}`)}</p>
</section>
<section class="card" aria-labelledby="queue-h"><h2 id="queue-h">Queue</h2>
<dl class="nums"><div><dt>waiting</dt><dd>${ready}</dd></div><div><dt>in flight</dt><dd>${inFlight}</dd></div><div><dt>held</dt><dd>${held}</dd></div><div><dt>dead</dt><dd class="${deadTotal > 0 ? 'bad' : ''}">${deadTotal}</dd></div></dl>
</section>
</div>
</div>
<section aria-labelledby="repos-h"><h2 id="repos-h">Repositories</h2>
<form class="filter" method="get" action="/ui/" role="search"><label for="q">Filter</label> <input id="q" name="q" value="${q.filter}" placeholder="owner or name"> <button type="submit">Filter</button></form>
<div data-part="repos"><p class="small muted">${repos.total} served</p>
${
  repos.items.length === 0
    ? empty(
        q.filter
          ? 'No served repository matches.'
          : 'No repositories yet: set this spindle on a repository in Tangled and it appears here.',
      )
    : html`<div class="scroll"><table class="repos"><thead><tr><th scope="col">Repository</th><th scope="col">Branch</th><th scope="col">Tip</th><th scope="col">Last green</th><th scope="col">Other branches</th></tr></thead><tbody>${repos.items.map((r) => repoRow(r, now))}</tbody></table></div>`
}
${pager(q, repos.total)}
</div>
</section>
<section aria-labelledby="runs-h"><h2 id="runs-h">Latest runs</h2>
<div data-part="runs">${runsTable(data.recentPipelines(15), now)}</div>
</section>`;
}

/** The branch shown first: main, then master, then the first by name. */
function defaultQueue(queues: readonly QueueRow[]): QueueRow | undefined {
  return (
    queues.find((x) => x.ref === 'refs/heads/main') ??
    queues.find((x) => x.ref === 'refs/heads/master') ??
    queues[0]
  );
}

function repoRow(r: RepoView, now: number): Html {
  const main = defaultQueue(r.queues);
  const others = r.queues.filter((x) => x !== main);
  const link = (x: QueueRow) => `/ui/branch${qs({ repo: r.id, ref: branchName(x.ref) })}`;
  return html`<tr>
<th scope="row"><span class="repo">${r.name}</span><br><span class="small muted">${r.owner} · ${r.knot}</span></th>
<td>${main ? html`<a href="${link(main)}">${branchName(main.ref)}</a>` : html`<span class="muted">no pushes recorded</span>`}</td>
<td>${main && main.tipSeq !== null ? status(main.tipGreen === 1 ? 'green' : 'not_green') : status('unknown')}</td>
<td>${main?.lastGreenCommit ? html`<code>${shortSha(main.lastGreenCommit)}</code> ${when(main.lastGreenAt, now)}` : html`<span class="muted">none yet</span>`}</td>
<td>${others.map((x, i) => html`${i ? ', ' : ''}<a href="${link(x)}">${branchName(x.ref)}</a>`)}</td>
</tr>`;
}

function pager(q: OverviewQuery, total: number): Html {
  const pages = Math.max(1, Math.ceil(total / REPOS_PER_PAGE));
  if (pages === 1) return html``;
  const at = (p: number) => `/ui/${qs({ q: q.filter, page: p > 1 ? p : undefined })}`;
  return html`<nav class="pager" aria-label="Pages">${q.page > 1 ? html`<a href="${at(q.page - 1)}" rel="prev">← previous</a>` : ''} page ${q.page} of ${pages} ${q.page < pages ? html`<a href="${at(q.page + 1)}" rel="next">next →</a>` : ''}</nav>`;
}

/** Runs as a table: repo, ref, commit, workflows' statuses, duration, when. */
export function runsTable(runs: readonly PipelineView[], now: number): Html {
  if (runs.length === 0) return empty('No runs yet.');
  return html`<div class="scroll"><table class="runs"><thead><tr><th scope="col">Run</th><th scope="col">Trigger</th><th scope="col">Commit</th><th scope="col">Workflows</th><th scope="col">Took</th><th scope="col">Received</th></tr></thead><tbody>${runs.map(
    (r) => html`<tr>
<th scope="row"><a href="/ui/run/${encodeURIComponent(r.pipeline.knot)}/${encodeURIComponent(r.pipeline.rkey)}">${r.pipeline.repoName}</a></th>
<td>${r.pipeline.kind}${r.ref ? html` · ${branchName(r.ref)}` : ''}</td>
<td><code>${shortSha(r.pipeline.commit)}</code></td>
<td>${r.workflows.map((w) => html`<span class="wf">${status(w.status)} ${w.name}</span> `)}</td>
<td>${duration(UiData.durationOf(r.workflows))}</td>
<td>${when(r.pipeline.receivedAt, now)}</td>
</tr>`,
  )}</tbody></table></div>`;
}
