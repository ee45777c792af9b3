/**
 * A commit on a branch (its verdict, the reason, its run) and a run (a pipeline's workflows with
 * status, duration, the runner's build link, and each workflow's log). Logs are rendered on the
 * server as plain text (the last lines, secrets already masked when stored); with JavaScript the
 * page follows `/logs` instead, colours and all, as a terminal would.
 */
import { html } from 'hono/html';
import type { QueueRow } from '../db/greenness-store.ts';
import { reasonOf } from '../greenness/api.ts';
import { parsePipelineUri } from '../pipelines/pipeline.ts';
import type { PipelineView, UiData } from './data.ts';
import { branchName, duration, empty, type Html, qs, shortSha, status, when } from './html.ts';

const SERVER_LOG_LINES = 300;
// ESC [ … final byte: the ANSI sequences a terminal interprets (colours, cursor moves).
const ANSI = new RegExp(`${String.fromCharCode(27)}\\[[0-9;?]*[A-Za-z]`, 'g');

export function commitPage(data: UiData, q: QueueRow, commit: string): Html {
  const s = data.d.greenness.api.status(q, commit);
  const key = s.validation ? parsePipelineUri(s.validation.pipeline) : undefined;
  const run = key ? data.pipeline(key.knot, key.rkey) : undefined;
  return html`<p class="crumbs"><a href="/ui/">Overview</a> / <a href="/ui/branch${qs({ repo: q.repo, ref: branchName(q.ref) })}">${q.repo} · ${branchName(q.ref)}</a></p>
<h1>Commit <code>${shortSha(commit)}</code></h1>
<section class="verdict card" aria-labelledby="verdict-h" data-part="verdict"><h2 id="verdict-h">Verdict</h2>
<p class="big">${status(s.status)}${s.degree !== undefined && s.degree > 0 ? html` <span class="muted">(degree ${s.degree.toFixed(2)})</span>` : ''}</p>
<p>${reasonOf(s)}</p>
<p class="small muted"><code>${commit}</code>${s.validation ? html` · attempt ${s.validation.attempt}` : ''}</p>
</section>
${run ? runSection(data, run) : s.validation ? empty('The run of this commit is no longer kept (retention).') : ''}`;
}

export function runPage(data: UiData, run: PipelineView): Html {
  const p = run.pipeline;
  const repo = p.repoDid ?? `${p.repoOwner}/${p.repoName}`;
  const queue =
    run.ref && p.commit && p.kind === 'push'
      ? data.d.greenness.store.queuesOfRepo(repo, 100).find((x) => x.ref === run.ref)
      : undefined;
  return html`<p class="crumbs"><a href="/ui/">Overview</a> / ${p.repoName}</p>
<h1>Run <code>${p.rkey}</code></h1>
<p>${p.kind}${run.ref ? html` of <strong>${branchName(run.ref)}</strong>` : ''}${p.commit ? html` at <code>${shortSha(p.commit)}</code>` : ''} in ${p.repoOwner}/${p.repoName} · received ${when(p.receivedAt)}${
    queue && p.commit
      ? html` · <a href="/ui/commit${qs({ repo: queue.repo, ref: branchName(queue.ref), commit: p.commit })}">greenness of this commit</a>`
      : ''
  }</p>
${runSection(data, run)}`;
}

function runSection(data: UiData, run: PipelineView): Html {
  const p = run.pipeline;
  if (run.workflows.length === 0) return empty('This run has no workflows.');
  return html`<section aria-labelledby="wf-h" data-part="workflows"><h2 id="wf-h">Workflows</h2>
<div class="scroll"><table class="workflows"><thead><tr><th scope="col">Workflow</th><th scope="col">Status</th><th scope="col">Runner</th><th scope="col">Took</th><th scope="col">Build</th></tr></thead><tbody>${run.workflows.map(
    (w) => {
      const url = w.buildId ? data.runnerOf(w.runner)?.buildUrl?.(w.buildId) : undefined;
      const took =
        w.startedAt !== null ? (w.finishedAt ?? Math.floor(Date.now() / 1000)) - w.startedAt : undefined;
      return html`<tr><th scope="row"><a href="#log-${anchor(w.name)}">${w.name}</a></th><td>${status(w.status)}${
        w.error ? html`<br><span class="small">${w.error}</span>` : ''
      }${w.exitCode !== null && w.exitCode !== 0 ? html` <span class="small">exit ${w.exitCode}</span>` : ''}</td><td>${w.runner ?? w.engine}</td><td>${duration(took)}</td><td>${
        url ? html`<a href="${url}" rel="noreferrer">${w.buildId}</a>` : (w.buildId ?? '—')
      }</td></tr>`;
    },
  )}</tbody></table></div>
</section>
${run.workflows.map((w) => {
  const key = { knot: p.knot, rkey: p.rkey, name: w.name };
  const total = data.ctx.lines.count(key);
  const lines = data.ctx.lines.from(key, Math.max(0, total - SERVER_LOG_LINES), SERVER_LOG_LINES);
  const running = w.status === null || w.status === 'pending' || w.status === 'running';
  const path = `/logs/${[p.knot, p.rkey, w.name].map(encodeURIComponent).join('/')}`;
  return html`<section class="log" id="log-${anchor(w.name)}" aria-labelledby="log-h-${anchor(w.name)}">
<h2 id="log-h-${anchor(w.name)}">Log of ${w.name} ${status(w.status)}</h2>
${total > lines.length ? html`<p class="small muted">The last ${lines.length} of ${total} lines; the live view shows them all.</p>` : ''}
<pre class="terminal" tabindex="0" data-logs="${path}" data-running="${running ? '1' : '0'}" aria-label="Log of ${w.name}">${lines.map((l) => plainLine(l.line))}</pre>
</section>`;
})}`;
}

/** A stored LogLine frame as a plain-text line (step headers marked, ANSI removed). */
function plainLine(frame: string): string {
  try {
    const f = JSON.parse(frame) as { kind?: string; content?: string; step_status?: string };
    if (f.kind === 'control') return f.step_status === 'start' ? `▸ ${f.content ?? ''}\n` : '';
    return `${(f.content ?? '').replace(ANSI, '')}\n`;
  } catch {
    return '';
  }
}

function anchor(name: string): string {
  return name.replace(/[^A-Za-z0-9_-]/g, '_');
}
