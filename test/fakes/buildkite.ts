/**
 * A fake Buildkite (buildkite spec §10) on a real HTTP server: the REST paths under `/v2` with
 * bearer auth (the exact 401 text), builds created with `state: "scheduled"` and echoed
 * env/meta_data, a clock-driven state machine (scheduled → running → passed/failed/canceled,
 * blocked), the meta_data list filter, cancel (canceling → canceled), job logs that grow over
 * time in the agent's format (`ESC_bk;t=<ms>BEL` markers, CRLF, `~~~` headers) served as JSON,
 * text, HEAD and suffix Range; per-org rate limits with all `RateLimit-*` headers and 429s; and
 * webhooks (token or HMAC signature) with drop, duplicate and reorder faults. Faults: a share of
 * 5xx answers, 429 bursts, and creates that are committed but answered 500.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { signWebhook } from '../../providers/buildkite/webhook-auth.ts';

export const AUTH_REQUIRED =
  'Authentication required. Please supply a valid API Access Token: https://buildkite.com/docs/apis/rest-api#authentication';

export interface JobScript {
  name: string;
  command: string;
  /** Output lines, spread over the job's run time. */
  lines: number;
  exitStatus?: number;
  /** The job times out instead of finishing. */
  timesOut?: boolean;
}

export interface BuildScript {
  /** From creation to the first job starting. */
  startAfterMs: number;
  /** Each job's run time. */
  runMs: number;
  jobs: JobScript[];
  /** The build ends blocked (a block step) with this REST state. */
  blocked?: boolean;
}

interface FakeJob {
  id: string;
  script: JobScript;
  startAt: number;
  endAt: number;
  canceledAt?: number;
}

interface FakeBuild {
  id: string;
  number: number;
  org: string;
  pipeline: string;
  createdAt: number;
  body: Record<string, unknown>;
  script: BuildScript;
  jobs: FakeJob[];
  cancelAt?: number;
  /** Webhook events already sent for this build. */
  sent: Set<string>;
}

export interface Delivery {
  event: string;
  status: number | string;
  dropped: boolean;
}

export interface FakeBuildkiteOptions {
  token?: string;
  orgLimit?: number;
  webhook?: { url: string; mode: 'token' | 'signature'; secret: string };
}

const DEFAULT_SCRIPT: BuildScript = {
  startAfterMs: 50,
  runMs: 200,
  jobs: [{ name: ':test_tube: test', command: 'npm test', lines: 5 }],
};

export class FakeBuildkite {
  readonly token: string;
  readonly builds: FakeBuild[] = [];
  /** Every API request as `METHOD path`, in order (auth failures included). */
  readonly requests: string[] = [];
  /** Start times of requests counted against the org budget. */
  readonly requestTimes: number[] = [];
  readonly deliveries: Delivery[] = [];
  /** Share (0–1) of API answers replaced by a 502. */
  failRate = 0;
  /** Share of webhooks not delivered, and of those delivered twice. */
  dropRate = 0;
  duplicateRate = 0;
  /** Webhooks are sent after a random delay up to this (reordering them). */
  maxDelayMs = 0;
  webhook: FakeBuildkiteOptions['webhook'];
  orgLimit: number;
  private readonly scripts = new Map<string, BuildScript>();
  private readonly server: Server;
  private numbers = new Map<string, number>();
  private burst429 = 0;
  private committedButFailed = 0;
  private ticker: NodeJS.Timeout;

  private constructor(server: Server, o: FakeBuildkiteOptions) {
    this.server = server;
    this.token = o.token ?? 'bk-test-token';
    this.orgLimit = o.orgLimit ?? 200;
    this.webhook = o.webhook;
    server.on('request', (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => this.route(req, Buffer.concat(chunks), res));
    });
    this.ticker = setInterval(() => this.tick(), 25);
  }

  static async start(o: FakeBuildkiteOptions = {}): Promise<FakeBuildkite> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return new FakeBuildkite(server, o);
  }

  get origin(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  get apiUrl(): string {
    return `${this.origin}/v2`;
  }

  /** The script of builds created on `pipeline` from now on. */
  script(pipeline: string, script: Partial<BuildScript>): void {
    this.scripts.set(pipeline, { ...DEFAULT_SCRIPT, ...script });
  }

  /** The next `n` API answers are 429. */
  rateLimitBurst(n: number): void {
    this.burst429 = n;
  }

  /** The next `n` creates are committed, then answered 500 (spec §10.4). */
  failAfterCommit(n: number): void {
    this.committedButFailed = n;
  }

  /** Builds per `bobbin:request_id`. */
  buildsPerRequest(): Map<string, number> {
    const out = new Map<string, number>();
    for (const b of this.builds) {
      const id = (b.body.meta_data as Record<string, string> | undefined)?.['bobbin:request_id'] ?? '';
      out.set(id, (out.get(id) ?? 0) + 1);
    }
    return out;
  }

  /** The most requests started within any 60 s window. */
  peakPerMinute(): number {
    let peak = 0;
    let lo = 0;
    for (let hi = 0; hi < this.requestTimes.length; hi++) {
      while (this.requestTimes[hi]! - this.requestTimes[lo]! >= 60_000) lo++;
      peak = Math.max(peak, hi - lo + 1);
    }
    return peak;
  }

  async close(): Promise<void> {
    clearInterval(this.ticker);
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  // --- state machine --------------------------------------------------------------------------

  /** A build's REST view at `now`. */
  view(b: FakeBuild, now = Date.now(), withJobs = true): Record<string, unknown> {
    const state = this.stateOf(b, now);
    const lastEnd = Math.max(...b.jobs.map((j) => j.endAt));
    const finished = ['passed', 'failed', 'canceled'].includes(state);
    const web = `https://buildkite.com/${b.org}/${b.pipeline}/builds/${b.number}`;
    const view: Record<string, unknown> = {
      id: b.id,
      graphql_id: Buffer.from(`Build---${b.id}`).toString('base64'),
      url: `${this.apiUrl}/organizations/${b.org}/pipelines/${b.pipeline}/builds/${b.number}`,
      web_url: web,
      number: b.number,
      state,
      blocked: finished && b.script.blocked === true,
      cancel_reason: b.cancelAt !== undefined ? 'canceled via API' : null,
      message: b.body.message ?? null,
      commit: b.body.commit,
      branch: b.body.branch,
      env: b.body.env ?? {},
      source: 'api',
      creator: { id: 'u-1', name: 'bobbin', email: 'bobbin@example.test' },
      created_at: iso(b.createdAt),
      scheduled_at: iso(b.createdAt),
      started_at:
        now >= b.createdAt + b.script.startAfterMs ? iso(b.createdAt + b.script.startAfterMs) : null,
      finished_at: finished ? iso(b.cancelAt ?? lastEnd) : null,
      meta_data: b.body.meta_data ?? {},
      pull_request: b.body.pull_request_base_branch
        ? { id: '1', base: b.body.pull_request_base_branch }
        : null,
    };
    if (withJobs) view.jobs = b.jobs.map((j) => this.jobView(b, j, now));
    return view;
  }

  private jobView(b: FakeBuild, j: FakeJob, now: number): Record<string, unknown> {
    const state = this.jobState(j, now);
    const base = `${this.apiUrl}/organizations/${b.org}/pipelines/${b.pipeline}/builds/${b.number}/jobs/${j.id}`;
    return {
      id: j.id,
      type: 'script',
      name: j.script.name,
      command: j.script.command,
      state,
      exit_status:
        state === 'passed'
          ? 0
          : state === 'failed'
            ? (j.script.exitStatus ?? 1)
            : state === 'canceled'
              ? -1
              : null,
      soft_failed: false,
      log_url: `${base}/log`,
      raw_log_url: `${base}/log.txt`,
      started_at: now >= j.startAt ? iso(j.startAt) : null,
      finished_at: ['passed', 'failed', 'canceled', 'timed_out'].includes(state)
        ? iso(j.canceledAt ?? j.endAt)
        : null,
    };
  }

  private jobState(j: FakeJob, now: number): string {
    if (j.canceledAt !== undefined && j.canceledAt <= now) return 'canceled';
    if (now < j.startAt) return 'scheduled';
    if (now < j.endAt) return 'running';
    if (j.script.timesOut) return 'timed_out';
    return (j.script.exitStatus ?? 0) === 0 ? 'passed' : 'failed';
  }

  private stateOf(b: FakeBuild, now: number): string {
    const states = b.jobs.map((j) => this.jobState(j, now));
    if (b.cancelAt !== undefined) return now >= b.cancelAt ? 'canceled' : 'canceling';
    if (now < b.createdAt + b.script.startAfterMs) return 'scheduled';
    if (states.some((s) => s === 'running' || s === 'scheduled')) {
      return states.some((s) => s === 'failed' || s === 'timed_out') ? 'failing' : 'running';
    }
    return states.every((s) => s === 'passed') ? 'passed' : 'failed';
  }

  /** The job's raw log bytes at `now`: the lines printed so far. */
  logOf(j: FakeJob, now: number): Buffer {
    if (now < j.startAt) return Buffer.alloc(0);
    const end = Math.min(now, j.canceledAt ?? j.endAt, j.endAt);
    const span = Math.max(1, j.endAt - j.startAt);
    const printed = now >= j.endAt ? j.script.lines : Math.floor(((end - j.startAt) / span) * j.script.lines);
    const t = (ms: number) => `\x1b_bk;t=${Math.floor(ms)}\x07`;
    let text = `${t(j.startAt)}~~~ Running script\r\n${t(j.startAt)}\x1b[90m$\x1b[0m ${j.script.command}\r\n`;
    for (let i = 0; i < printed; i++)
      text += `${t(j.startAt + (i / j.script.lines) * span)}line ${i + 1} of ${j.script.name}\r\n`;
    return Buffer.from(text);
  }

  private tick(): void {
    const now = Date.now();
    for (const b of this.builds) {
      const state = this.stateOf(b, now);
      const event =
        state === 'scheduled'
          ? 'build.scheduled'
          : state === 'running' || state === 'failing' || state === 'canceling'
            ? 'build.running'
            : 'build.finished';
      if (b.sent.has(event)) continue;
      if (event === 'build.finished' && !b.sent.has('build.running')) b.sent.add('build.running');
      b.sent.add(event);
      this.deliver(event, b);
    }
  }

  private deliver(event: string, b: FakeBuild): void {
    const hook = this.webhook;
    if (!hook) return;
    const copies = Math.random() < this.dropRate ? 0 : Math.random() < this.duplicateRate ? 2 : 1;
    if (copies === 0) {
      this.deliveries.push({ event, status: 'dropped', dropped: true });
      return;
    }
    const build = this.view(b, Date.now(), false);
    for (const key of ['created_at', 'scheduled_at', 'started_at', 'finished_at'])
      if (typeof build[key] === 'string') build[key] = webhookTime(build[key] as string);
    const body = JSON.stringify({
      event,
      build,
      pipeline: { slug: b.pipeline },
      sender: { id: 's', name: 'Some Person' },
    });
    for (let i = 0; i < copies; i++) {
      setTimeout(() => void this.post(hook, event, body), Math.random() * this.maxDelayMs);
    }
  }

  private async post(
    hook: NonNullable<FakeBuildkiteOptions['webhook']>,
    event: string,
    body: string,
  ): Promise<void> {
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'x-buildkite-event': event,
    };
    if (hook.mode === 'token') headers['x-buildkite-token'] = hook.secret;
    else headers['x-buildkite-signature'] = signWebhook(hook.secret, body, Math.floor(Date.now() / 1000));
    try {
      const res = await fetch(hook.url, { method: 'POST', headers, body });
      await res.body?.cancel();
      this.deliveries.push({ event, status: res.status, dropped: false });
    } catch (err) {
      this.deliveries.push({ event, status: String(err), dropped: false });
    }
  }

  // --- HTTP -------------------------------------------------------------------------------------

  private route(req: IncomingMessage, body: Buffer, res: ServerResponse) {
    const url = new URL(req.url ?? '/', this.origin);
    const method = req.method ?? 'GET';
    this.requests.push(`${method} ${url.pathname}`);
    if (url.pathname === '/')
      return send(res, 200, { message: '🛠', timestamp: Math.floor(Date.now() / 1000) });
    if (req.headers.authorization !== `Bearer ${this.token}`)
      return send(res, 401, { message: AUTH_REQUIRED });
    const now = Date.now();
    this.requestTimes.push(now);
    const used = this.requestTimes.filter((t) => t > now - 60_000).length;
    const limited = this.burst429 > 0 || used > this.orgLimit;
    const rate = {
      'RateLimit-Scope': 'rest',
      'RateLimit-Limit': String(this.orgLimit),
      'RateLimit-Remaining': String(Math.max(0, this.orgLimit - used)),
      'RateLimit-Reset': limited && this.burst429 > 0 ? '1' : '60',
    };
    if (limited) {
      if (this.burst429 > 0) this.burst429--;
      return send(
        res,
        429,
        {
          message: 'You have exceeded your API rate limit.',
          scope: 'rest',
          limit: this.orgLimit,
          current: used,
          reset: Number(rate['RateLimit-Reset']),
        },
        { ...rate, 'RateLimit-Warning': 'You have exceeded your API rate limit.' },
      );
    }
    if (Math.random() < this.failRate) return send(res, 502, { message: 'Bad Gateway' }, rate);
    const m =
      /^\/v2\/organizations\/([^/]+)(?:\/pipelines\/([^/]+))?\/builds(?:\/(\d+)(?:\/(cancel|jobs\/([^/]+)\/(log|log\.txt)))?)?$/.exec(
        url.pathname,
      );
    if (!m) return send(res, 404, { message: 'Not Found' }, rate);
    const [, org, pipeline, num, action, jobId, logKind] = m;
    if (!pipeline) {
      if (method !== 'GET') return send(res, 404, { message: 'Not Found' }, rate);
      return send(
        res,
        200,
        this.builds
          .filter((b) => b.org === org)
          .slice(-30)
          .reverse()
          .map((b) => this.view(b, now, false)),
        rate,
      );
    }
    if (!num) {
      if (method === 'POST') return this.create(org!, pipeline, body, res, rate);
      if (method === 'GET') return this.list(org!, pipeline, url.searchParams, res, rate);
      return send(res, 404, { message: 'Not Found' }, rate);
    }
    const b = this.builds.find((x) => x.org === org && x.pipeline === pipeline && x.number === Number(num));
    if (!b) return send(res, 404, { message: 'No build found' }, rate);
    if (!action && method === 'GET')
      return send(res, 200, this.view(b, now, url.searchParams.get('exclude_jobs') !== 'true'), rate);
    if (action === 'cancel' && method === 'PUT') return this.cancel(b, res, rate);
    if (jobId && (method === 'GET' || method === 'HEAD')) {
      const j = b.jobs.find((x) => x.id === jobId);
      if (!j) return send(res, 404, { message: 'No job found' }, rate);
      return this.log(req, b, j, logKind === 'log.txt', res, rate);
    }
    return send(res, 404, { message: 'Not Found' }, rate);
  }

  private create(
    org: string,
    pipeline: string,
    raw: Buffer,
    res: ServerResponse,
    rate: Record<string, string>,
  ) {
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch {
      return send(res, 400, { message: 'Problems parsing JSON' }, rate);
    }
    for (const field of ['commit', 'branch']) {
      if (typeof body[field] !== 'string' || body[field] === '')
        return send(
          res,
          422,
          { message: 'Validation Failed', errors: [{ field, code: 'missing_field' }] },
          rate,
        );
    }
    const script = this.scripts.get(pipeline) ?? DEFAULT_SCRIPT;
    const key = `${org}/${pipeline}`;
    const number = (this.numbers.get(key) ?? 0) + 1;
    this.numbers.set(key, number);
    const createdAt = Date.now();
    let at = createdAt + script.startAfterMs;
    const jobs = script.jobs.map((s) => {
      const job = { id: randomUUID(), script: s, startAt: at, endAt: at + script.runMs };
      at += script.runMs;
      return job;
    });
    const build: FakeBuild = {
      id: randomUUID(),
      number,
      org,
      pipeline,
      createdAt,
      body,
      script,
      jobs,
      sent: new Set(),
    };
    this.builds.push(build);
    if (this.committedButFailed > 0) {
      this.committedButFailed--;
      return send(res, 500, { message: 'Internal Server Error' }, rate);
    }
    send(res, 201, this.view(build, createdAt), rate);
  }

  private list(
    org: string,
    pipeline: string,
    q: URLSearchParams,
    res: ServerResponse,
    rate: Record<string, string>,
  ) {
    const meta = [...q.entries()]
      .map(([k, v]) => [/^meta_data\[(.+)\]$/.exec(k)?.[1], v] as const)
      .filter((e): e is readonly [string, string] => e[0] !== undefined);
    const now = Date.now();
    const found = this.builds
      .filter((b) => b.org === org && b.pipeline === pipeline)
      .filter((b) =>
        meta.every(([k, v]) => (b.body.meta_data as Record<string, string> | undefined)?.[k] === v),
      )
      .reverse()
      .slice(0, Math.min(100, Number(q.get('per_page') ?? 30)))
      .map((b) => this.view(b, now, q.get('exclude_jobs') !== 'true'));
    send(res, 200, found, rate);
  }

  private cancel(b: FakeBuild, res: ServerResponse, rate: Record<string, string>) {
    const now = Date.now();
    const state = this.stateOf(b, now);
    if (!['scheduled', 'running', 'failing'].includes(state))
      return send(res, 422, { message: `Build can't be canceled because it's already ${state}` }, rate);
    b.cancelAt = now + 100;
    for (const j of b.jobs) if (this.jobState(j, now) !== 'passed') j.canceledAt = b.cancelAt;
    send(res, 200, this.view(b, now), rate);
  }

  private log(
    req: IncomingMessage,
    b: FakeBuild,
    j: FakeJob,
    txt: boolean,
    res: ServerResponse,
    rate: Record<string, string>,
  ) {
    const bytes = this.logOf(j, Date.now());
    const text = txt || req.headers.accept === 'text/plain';
    if (req.method === 'HEAD') {
      res.writeHead(200, { ...rate, 'content-length': bytes.length, 'accept-ranges': 'bytes' }).end();
      return;
    }
    const range = req.headers.range;
    if (range) {
      const m = /^bytes=-(\d+)$/.exec(range);
      if (!text || !m || m[1] === '0') return send(res, 400, { message: 'Invalid range' }, rate);
      if (bytes.length === 0) return send(res, 416, { message: 'Range Not Satisfiable' }, rate);
      const n = Math.min(Number(m[1]), bytes.length);
      const start = bytes.length - n;
      res
        .writeHead(206, {
          ...rate,
          'content-type': 'text/plain',
          'accept-ranges': 'bytes',
          'content-range': `bytes ${start}-${bytes.length - 1}/${bytes.length}`,
          'content-length': n,
        })
        .end(bytes.subarray(start));
      return;
    }
    if (text) {
      res
        .writeHead(200, { ...rate, 'content-type': 'text/plain', 'content-length': bytes.length })
        .end(bytes);
      return;
    }
    const url = `${this.apiUrl}/organizations/${b.org}/pipelines/${b.pipeline}/builds/${b.number}/jobs/${j.id}/log`;
    send(res, 200, { url, content: bytes.toString('utf8'), size: bytes.length, header_times: [] }, rate);
  }
}

function send(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res
    .writeHead(status, {
      ...headers,
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(text),
    })
    .end(text);
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/** `2024-06-25 00:42:37 UTC`, the webhook form (spec §8.4). */
function webhookTime(isoText: string): string {
  return `${isoText.slice(0, 10)} ${isoText.slice(11, 19)} UTC`;
}
