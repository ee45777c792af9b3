/**
 * The greenness read API, public and read-only like the appview's CI view: queues, a commit's
 * status, the last green commit, history, and the deploy gate (200 green, 409 otherwise, with a
 * reason a person can act on).
 */
import { makeBadge } from 'badge-maker';
import type { Context, Hono } from 'hono';
import type { GreennessStore, QueueRow, ValidationRow } from '../db/greenness-store.ts';
import { InvalidRequestError, XrpcError } from '../errors.ts';
import { queueKey } from './recorder.ts';

const COMMIT = /^([0-9a-f]{40}|[0-9a-f]{64})$/;
const REPO = /^did:[a-z]+:[A-Za-z0-9._:%-]+(\/[^/\s]+)?$/;

export type Verdict = 'green' | 'not_green' | 'pending' | 'unknown';

export interface CommitStatus {
  repo: string;
  ref: string;
  commit: string;
  status: Verdict;
  degree?: number;
  seq?: number;
  validation?: { id: string; state: string; attempt: number; pipeline: string };
  workflows: Array<{ name: string; status: string; degree?: number }>;
  /** Set when the branch counts only these workflows (`requiredWorkflows`). */
  requiredWorkflows?: string[];
  /** The branch's promoted commit (a queue with `promote`, once a promotion succeeded). */
  promoted?: { commit: string; seq: number };
  /** `status` only: the nearest green commits below and above this one's seq. */
  previousGreen?: { commit: string; seq: number } | null;
  nextGreen?: { commit: string; seq: number } | null;
}

export class GreennessApi {
  private readonly store: GreennessStore;

  constructor(store: GreennessStore) {
    this.store = store;
  }

  mount(app: Hono): void {
    app.get('/greenness/v1/queues', (c) =>
      c.json({ queues: this.store.queues().map((q) => this.queueView(q)) }),
    );
    app.get('/greenness/v1/status', (c) => {
      const q = this.queueOf(c);
      const s = this.status(q, commitParam(c));
      if (s.seq !== undefined) {
        s.previousGreen = this.store.previousGreen(q.key, s.seq);
        s.nextGreen = this.store.nextGreen(q.key, s.seq);
      }
      return c.json(s);
    });
    app.get('/greenness/v1/last-green', (c) => {
      const q = this.queueOf(c);
      if (q.lastGreenSeq === null)
        throw new XrpcError(404, 'NoGreenCommit', `${q.ref} of ${q.repo} has no green commit yet`);
      return c.json({
        commit: q.lastGreenCommit,
        seq: q.lastGreenSeq,
        at: new Date(q.lastGreenAt!).toISOString(),
      });
    });
    app.get('/greenness/v1/history', (c) => {
      const q = this.queueOf(c);
      const before = intParam(c, 'before', 1, Number.MAX_SAFE_INTEGER) ?? Number.MAX_SAFE_INTEGER;
      const limit = intParam(c, 'limit', 1, 200) ?? 50;
      const rows = this.store.history(q.key, before, limit);
      const items = rows.map((v) => this.status(q, v.commit, v));
      return c.json(rows.length === limit ? { items, cursor: String(rows.at(-1)!.seq) } : { items });
    });
    app.get('/greenness/v1/badge.svg', (c) => {
      const q = this.queueOf(c);
      const tip = q.tipSeq === null ? null : q.tipGreen === 1;
      const branch = q.ref.replace(/^refs\/heads\//, '');
      const svg = makeBadge({
        label: `ci: ${branch}`,
        message: tip === null ? 'unknown' : tip ? 'green' : 'not green',
        color: tip === null ? 'lightgrey' : tip ? 'brightgreen' : 'red',
      });
      return c.body(svg, 200, {
        'content-type': 'image/svg+xml; charset=utf-8',
        'cache-control': 'max-age=30',
      });
    });
    app.get('/greenness/v1/gate', (c) => {
      const q = this.queueOf(c);
      const s = this.status(q, commitParam(c));
      return c.json(
        { green: s.status === 'green', status: s.status, reason: reasonOf(s) },
        s.status === 'green' ? 200 : 409,
      );
    });
  }

  /** A commit's greenness in a queue (spec §6.6 getStatus), with its workflows. */
  status(q: QueueRow, commit: string, known?: ValidationRow): CommitStatus {
    const v = known ?? this.store.validationByCommit(q.key, commit);
    const base = { repo: q.repo, ref: q.ref, commit };
    if (!v) return { ...base, status: 'unknown', workflows: [] };
    const facts = new Map(this.store.facts(q.key, commit).map((f) => [f.project, f]));
    const whole = facts.get('');
    const runs = this.store.runs(v.pipeline);
    const names = this.store.pipeline(v.pipeline)?.workflows ?? [...runs.keys()];
    const workflows = names.map((name) => {
      const f = facts.get(`workflow:${name}`);
      return { name, status: runs.get(name) ?? 'pending', ...(f ? { degree: f.degree } : {}) };
    });
    const status = verdictOf(whole?.degree, v.state);
    return {
      ...base,
      status,
      ...(whole ? { degree: whole.degree } : {}),
      seq: v.seq,
      validation: { id: v.id, state: v.state, attempt: v.attempt, pipeline: v.pipeline },
      workflows,
      ...(q.required ? { requiredWorkflows: JSON.parse(q.required) as string[] } : {}),
      ...promotedOf(q),
    };
  }

  private queueView(q: QueueRow) {
    const tip =
      q.tipSeq === null ? null : { seq: q.tipSeq, status: q.tipGreen === 1 ? 'green' : 'not_green' };
    const tipCommit = tip ? this.store.history(q.key, tip.seq + 1, 1)[0]?.commit : undefined;
    return {
      repo: q.repo,
      ref: q.ref,
      lastGreen:
        q.lastGreenSeq === null
          ? null
          : { commit: q.lastGreenCommit, seq: q.lastGreenSeq, at: new Date(q.lastGreenAt!).toISOString() },
      tip: tip ? { commit: tipCommit, ...tip } : null,
      counts: this.store.counts(q.key),
      ...promotedOf(q),
    };
  }

  private queueOf(c: Context): QueueRow {
    return this.queue(c.req.query('repo'), c.req.query('ref'));
  }

  /** The queue of (repo, ref); `ref` may be short (`main`). InvalidRequest, or 404 QueueNotFound. */
  queue(repo: string | undefined, rawRef: string | undefined): QueueRow {
    if (!repo || !REPO.test(repo))
      throw new InvalidRequestError('repo: expected a repo DID or <ownerDid>/<name>');
    if (!rawRef || rawRef.length > 1024 || /[\s\\]|\.\./.test(rawRef))
      throw new InvalidRequestError('ref: expected refs/heads/<branch> or <branch>');
    const ref = rawRef.startsWith('refs/') ? rawRef : `refs/heads/${rawRef}`;
    const q = this.store.queue(queueKey(this.store.keyedRepo(repo), ref));
    if (!q) throw new XrpcError(404, 'QueueNotFound', `${ref} of ${repo} is not a greenness queue here`);
    return q;
  }
}

/**
 * A recorded commit's verdict from its whole-repo fact's degree (when written) and its
 * validation's state: "not recorded" is never green.
 */
export function verdictOf(degree: number | undefined, state: string): Exclude<Verdict, 'unknown'> {
  if (degree !== undefined) return degree === 0 ? 'green' : 'not_green';
  return state === 'pending' ? 'pending' : 'not_green';
}

function promotedOf(q: QueueRow): { promoted?: { commit: string; seq: number } } {
  return q.promotedSeq !== null && q.promotedCommit !== null
    ? { promoted: { commit: q.promotedCommit, seq: q.promotedSeq } }
    : {};
}

function commitParam(c: Context): string {
  return checkCommit(c.req.query('commit'));
}

export function checkCommit(commit: string | undefined): string {
  if (!commit || !COMMIT.test(commit))
    throw new InvalidRequestError('commit: expected 40 (or 64) lowercase hex characters');
  return commit;
}

function intParam(c: Context, name: string, min: number, max: number): number | undefined {
  const raw = c.req.query(name);
  if (raw === undefined || raw === '') return undefined;
  const n = /^\d{1,16}$/.test(raw) ? Number(raw) : Number.NaN;
  if (!(n >= min && n <= max))
    throw new InvalidRequestError(`${name}: expected an integer from ${min} to ${max}`);
  return n;
}

/** Why a commit may or may not be deployed, in words. */
export function reasonOf(s: CommitStatus): string {
  if (s.status === 'green') return 'green: every counted workflow succeeded';
  if (s.status === 'unknown') return 'never built on this branch';
  const counts = (name: string) => !s.requiredWorkflows || s.requiredWorkflows.includes(name);
  const broken = s.workflows.filter(
    (w) => counts(w.name) && (w.status === 'failed' || w.status === 'timeout'),
  );
  const missing = (s.requiredWorkflows ?? []).filter((name) => !s.workflows.some((w) => w.name === name));
  if (s.status === 'pending') {
    const running = s.workflows.filter(
      (w) => !['success', 'failed', 'timeout', 'cancelled'].includes(w.status),
    ).length;
    return `pending: ${running} of ${s.workflows.length} workflows running`;
  }
  if (broken.length > 0 || missing.length > 0)
    return [
      ...broken.map((w) => `workflow ${w.name} ${w.status === 'timeout' ? 'timed out' : 'failed'}`),
      ...missing.map((name) => `required workflow ${name} did not run`),
    ].join('; ');
  if (s.validation?.state === 'expired') return 'expired: the pipeline did not finish before its deadline';
  return 'cancelled: no verdict (a workflow was cancelled)';
}
