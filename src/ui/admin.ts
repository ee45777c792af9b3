/**
 * Pages for whoever holds TREADLE_ADMIN_TOKEN: landing (targets, recent requests and outcomes,
 * conflicts with their paths) and the queue (per topic and group: waiting, in flight, held;
 * dead letters with their reasons, each with replay and drop: form posts that carry the
 * session's anti-forgery value, as `treadle queue dlq replay|drop` does from a shell).
 */
import { html } from 'hono/html';
import type { StoredResult } from '../db/landing-store.ts';
import type { LandResult } from '../landing/contract.ts';
import type { UiData } from './data.ts';
import { empty, type Html, status, when } from './html.ts';

const RESULTS_PER_TARGET = 20;
const LETTERS_PER_TOPIC = 50;

export function landingPage(data: UiData): Html {
  const targets = data.ctx.config.landing.targets;
  const now = Date.now();
  return html`<h1>Landing</h1>
<div data-part="landing">
${targets.length === 0 ? empty('No landing targets configured (landing.targets in TREADLE_CONFIG).') : ''}
${targets.map((t) => {
  const results = data.d.landing.results(t.name, RESULTS_PER_TARGET);
  return html`<section class="card wide" aria-labelledby="t-${t.name}"><h2 id="t-${t.name}">${t.name}</h2>
<p class="small">${t.repo} → <code>${t.targetBranch}</code> · default ${t.defaultStrategy}${t.defaultStrategy === 'PROMOTE' ? html` (${t.promoteMode})` : ''}</p>
${
  results.length === 0
    ? empty('No requests answered yet.')
    : html`<div class="scroll"><table><thead><tr><th scope="col">Request</th><th scope="col">Kind</th><th scope="col">Outcome</th><th scope="col">Detail</th><th scope="col">Finished</th></tr></thead><tbody>${results.map(
        (r) =>
          html`<tr><th scope="row"><code>${r.requestId}</code></th><td>${r.kind}</td><td>${status(r.outcome)}</td><td>${detail(r)}</td><td>${when(r.finishedAt, now)}</td></tr>`,
      )}</tbody></table></div>`
}
</section>`;
})}
</div>`;
}

/** What a result says beyond its outcome: the reason, conflicting paths, pushed commits. */
function detail(r: StoredResult): Html {
  let parsed: LandResult | undefined;
  try {
    parsed = JSON.parse(r.result) as LandResult;
  } catch {
    return html`<span class="muted">unreadable result</span>`;
  }
  const reasons = [parsed.reason, ...(parsed.steps ?? []).map((s) => s.reason)].filter(
    (x): x is string => typeof x === 'string' && x !== '',
  );
  const outputs = (parsed.steps ?? []).flatMap((s) => s.outputs ?? []);
  return html`${reasons.map((x) => html`<div class="small">${x}</div>`)}${
    outputs.length > 0
      ? html`<div class="small muted">${outputs.length} commit${outputs.length === 1 ? '' : 's'} produced</div>`
      : ''
  }`;
}

/** What the last replay or drop did, shown once after its redirect. */
export interface QueueNotice {
  action: 'replayed' | 'dropped';
  topic: string;
  count: number;
}

export function queuePage(data: UiData, csrf: string, notice?: QueueNotice): Html {
  const { groups, dead } = data.ctx.queue.store.stats(Date.now());
  const now = Date.now();
  const sorted = [...groups].sort((a, b) => a.topic.localeCompare(b.topic) || a.group.localeCompare(b.group));
  const deadTopics = [...dead].filter(([, n]) => n > 0).sort(([a], [b]) => a.localeCompare(b));
  return html`<h1>Queue</h1>
${notice ? html`<p class="notice" role="status">${notice.action === 'replayed' ? 'Replayed' : 'Dropped'} ${notice.count} dead letter${notice.count === 1 ? '' : 's'} of <code>${notice.topic}</code>.</p>` : ''}
<div data-part="queue">
<section aria-labelledby="topics-h"><h2 id="topics-h">Topics</h2>
<div class="scroll"><table class="nums"><thead><tr><th scope="col">Topic</th><th scope="col">Group</th><th scope="col">Waiting</th><th scope="col">Retrying</th><th scope="col">In flight</th><th scope="col">Held</th><th scope="col">Dead</th></tr></thead><tbody>${sorted.map(
    (g) =>
      html`<tr><th scope="row"><code>${g.topic}</code></th><td>${g.group}</td><td>${g.ready}</td><td>${g.retrying}</td><td>${g.inFlight}</td><td>${g.held}</td><td>${dead.get(g.topic) ?? 0}</td></tr>`,
  )}</tbody></table></div>
</section>
<section aria-labelledby="dead-h"><h2 id="dead-h">Dead letters</h2>
${deadTopics.length === 0 ? empty('None: every message was handled.') : ''}
${deadTopics.map(([topic, n]) => {
  const letters = data.ctx.queue.store.deadLetters(`${topic}_dlq`).slice(0, LETTERS_PER_TOPIC);
  return html`<h3><code>${topic}</code> <span class="muted">(${n})</span></h3>
<div class="scroll"><table><thead><tr><th scope="col">Message</th><th scope="col">Failures</th><th scope="col">Last error</th><th scope="col">Failed</th><th scope="col">Action</th></tr></thead><tbody>${letters.map(
    (l) =>
      html`<tr><th scope="row"><code>${l.id}</code></th><td>${l.failureCount}</td><td class="small">${l.lastError}</td><td>${when(l.failedAt, now)}</td><td class="actions">${action(csrf, 'replay', topic, l.id, 'Replay', `Replay ${l.id}`)}${action(csrf, 'drop', topic, l.id, 'Drop', `Drop ${l.id}`)}</td></tr>`,
  )}</tbody></table></div>
<div class="actions">${action(csrf, 'replay', topic, undefined, `Replay all ${n}`, `Replay every dead letter of ${topic}`)}</div>
<p class="small muted">Replay puts a message back on <code>${topic}</code> with its failures forgotten; drop deletes it for good. From a shell: <code>treadle queue dlq replay ${topic} [id]</code>, <code>treadle queue dlq drop ${topic} &lt;id&gt;</code>.</p>`;
})}
</section>
</div>`;
}

/** One button posting a replay or drop; a drop asks first when scripts run (ui.js). */
function action(
  csrf: string,
  verb: 'replay' | 'drop',
  topic: string,
  id: string | undefined,
  label: string,
  name: string,
): Html {
  const confirm =
    verb === 'drop'
      ? `Drop ${id} for good?`
      : id === undefined
        ? `Replay every dead letter of ${topic}?`
        : '';
  return html`<form method="post" action="/ui/queue/${verb}" class="inline"${confirm ? html` data-confirm="${confirm}"` : ''}><input type="hidden" name="csrf" value="${csrf}"><input type="hidden" name="topic" value="${topic}">${id === undefined ? '' : html`<input type="hidden" name="id" value="${id}">`}<button type="submit" aria-label="${name}"${verb === 'drop' ? html` class="danger"` : ''}>${label}</button></form>`;
}
