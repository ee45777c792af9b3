/**
 * A branch (greenness queue): its history strip — one cell per recorded commit, newest left,
 * green / red shaded by degree / pending / cancelled — with the last green and promoted marks,
 * and a chart of pipeline durations over the last 200 runs (inline SVG, drawn on the server).
 */
import { html } from 'hono/html';
import type { QueueRow, ValidationRow } from '../db/greenness-store.ts';
import { verdictOf } from '../greenness/api.ts';
import { parsePipelineUri } from '../pipelines/pipeline.ts';
import { UiData } from './data.ts';
import { branchName, duration, empty, type Html, qs, shortSha, status, when } from './html.ts';

export const STRIP_CELLS = 100;
const CHART_RUNS = 200;

interface Cell {
  v: ValidationRow;
  verdict: 'green' | 'not_green' | 'pending' | 'cancelled';
  degree: number | undefined;
}

export function branch(data: UiData, q: QueueRow): Html {
  const now = Date.now();
  const store = data.d.greenness.store;
  const rows = store.history(q.key, Number.MAX_SAFE_INTEGER, CHART_RUNS);
  const cells: Cell[] = rows.slice(0, STRIP_CELLS).map((v) => {
    const degree = store.fact(q.key, v.commit)?.degree;
    // The strip tells a commit without a verdict (cancelled, expired) from a red one.
    const verdict =
      degree === undefined && (v.state === 'cancelled' || v.state === 'expired')
        ? 'cancelled'
        : verdictOf(degree, v.state);
    return { v, verdict, degree };
  });
  const counts = store.counts(q.key);
  const commitLink = (commit: string) => `/ui/commit${qs({ repo: q.repo, ref: branchName(q.ref), commit })}`;
  return html`<p class="crumbs"><a href="/ui/">Overview</a> / ${q.repo}</p>
<h1>${branchName(q.ref)} <span class="muted small">${q.repo}</span></h1>
<div data-part="branch">
<div class="cards">
<section class="card"><h2>Tip</h2><p>${q.tipSeq === null ? status('unknown') : status(q.tipGreen === 1 ? 'green' : 'not_green')}</p></section>
<section class="card"><h2>Last green</h2><p>${
    q.lastGreenCommit
      ? html`<a href="${commitLink(q.lastGreenCommit)}"><code>${shortSha(q.lastGreenCommit)}</code></a> ${when(q.lastGreenAt, now)}`
      : html`<span class="muted">no green commit yet</span>`
  }</p></section>
${
  q.promotedSeq !== null && q.promotedCommit
    ? html`<section class="card"><h2>Promoted</h2><p><a href="${commitLink(q.promotedCommit)}"><code>${shortSha(q.promotedCommit)}</code></a></p></section>`
    : ''
}
<section class="card"><h2>Recorded</h2><p>${status('green')} ${counts.green} · ${status('not_green')} ${counts.notGreen} · ${status('pending')} ${counts.pending}</p></section>
</div>
<section aria-labelledby="strip-h"><h2 id="strip-h">History <span class="muted small">newest first</span></h2>
${cells.length === 0 ? empty('Nothing recorded on this branch yet: greenness starts with the next push.') : strip(cells, q, commitLink)}
<p class="legend small"><span class="cell green"></span> green <span class="cell not_green"></span> not green (darker: more workflows failed) <span class="cell pending"></span> pending <span class="cell cancelled"></span> cancelled · <span aria-hidden="true">★</span> last green · <span aria-hidden="true">⇪</span> promoted</p>
</section>
<section aria-labelledby="chart-h"><h2 id="chart-h">Pipeline durations <span class="muted small">last ${Math.min(rows.length, CHART_RUNS)} runs, oldest left</span></h2>
${chart(data, rows)}
</section>
</div>`;
}

function strip(cells: readonly Cell[], q: QueueRow, commitLink: (c: string) => string): Html {
  return html`<ol class="strip" aria-label="Commits, newest first">${cells.map((c) => {
    const marks = [
      c.v.seq === q.lastGreenSeq ? 'last green' : '',
      c.v.seq === q.promotedSeq ? 'promoted' : '',
    ].filter(Boolean);
    const label = `${shortSha(c.v.commit)}: ${c.verdict.replace('_', ' ')}${marks.length ? ` (${marks.join(', ')})` : ''}`;
    const shade =
      c.verdict === 'not_green' && c.degree !== undefined
        ? ` deg${Math.min(4, Math.ceil(c.degree * 4))}`
        : '';
    return html`<li><a class="cell ${c.verdict}${shade}" href="${commitLink(c.v.commit)}" title="${label}" data-seq="${c.v.seq}" data-verdict="${c.verdict}"><span class="sr">${label}</span>${c.v.seq === q.lastGreenSeq ? html`<span class="mark" aria-hidden="true">★</span>` : ''}${c.v.seq === q.promotedSeq ? html`<span class="mark" aria-hidden="true">⇪</span>` : ''}</a></li>`;
  })}</ol>`;
}

function chart(data: UiData, rows: readonly ValidationRow[]): Html {
  const points = rows
    .slice()
    .reverse()
    .map((v) => {
      const key = parsePipelineUri(v.pipeline);
      const took = key ? UiData.durationOf(data.ctx.pipelines.workflowsOf(key.knot, key.rkey)) : undefined;
      return { v, took };
    });
  const known = points.filter((p) => p.took !== undefined) as Array<{ v: ValidationRow; took: number }>;
  if (known.length === 0) return empty('No finished runs to chart yet.');
  const max = Math.max(1, ...known.map((p) => p.took));
  const w = 800;
  const h = 160;
  const bar = Math.min(24, w / Math.max(points.length, 1));
  const avg = known.reduce((a, p) => a + p.took, 0) / known.length;
  return html`<figure class="chart"><svg viewBox="0 0 ${w} ${h + 20}" role="img" aria-label="Durations of the last ${points.length} runs: longest ${duration(max)}, average ${duration(avg)}">
${points.map((p, i) =>
  p.took === undefined
    ? ''
    : html`<rect x="${(i * bar).toFixed(1)}" y="${(h - (p.took / max) * h).toFixed(1)}" width="${Math.max(1, bar - 1).toFixed(1)}" height="${Math.max(1, (p.took / max) * h).toFixed(1)}" class="${p.v.state === 'succeeded' ? 'ok' : p.v.state === 'pending' ? 'busy' : 'bad'}"><title>${shortSha(p.v.commit)}: ${duration(p.took)}</title></rect>`,
)}
<line x1="0" x2="${w}" y1="${h}" y2="${h}" class="axis"/>
<text x="0" y="${h + 16}" class="axis-label">0</text><text x="${w}" y="12" text-anchor="end" class="axis-label">${duration(max)}</text>
</svg><figcaption class="small">Longest ${duration(max)}, average ${duration(avg)} over ${known.length} finished runs.</figcaption></figure>`;
}
