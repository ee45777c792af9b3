/**
 * The Buildkite REST client (buildkite spec §1–3): one undici Pool to the API origin, a bearer
 * token that never appears in logs or errors, JSON errors mapped to typed errors, and a
 * client-side request budget per organisation (a sliding one-minute window) so treadle queues
 * its own calls instead of being throttled. A 429 pauses every caller until `RateLimit-Reset`
 * and is retried (nothing was done); network errors and 5xx are retried with backoff only for
 * idempotent requests — a create that fails ambiguously is the caller's to resolve (§4.9).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Pool } from 'undici';
import { NotFoundError, PermanentError, RetryableError } from '../../src/errors.ts';
import type { Logger } from '../../src/logger.ts';
import type { RunnerObserver } from '../index.ts';

export interface BuildkiteClientOptions {
  /** e.g. `https://api.buildkite.com/v2`. */
  apiUrl: string;
  token: string;
  /** Client-side budget: requests per minute, across all callers. */
  requestsPerMinute: number;
  log: Logger;
  timeoutMs?: number;
  /** Attempts for an idempotent request on a network error or 5xx. */
  maxAttempts?: number;
  /** Counts calls and budget waits for `/metrics`. */
  observe?: RunnerObserver;
}

export interface BkRequest {
  method: 'GET' | 'HEAD' | 'POST' | 'PUT';
  /** Below the API URL, e.g. `/organizations/acme/pipelines/app/builds`. */
  path: string;
  query?: Array<[string, string]>;
  body?: unknown;
  headers?: Record<string, string>;
  /** Safe to repeat after an ambiguous failure (default: every method but POST). */
  idempotent?: boolean;
}

export interface BkResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** A Buildkite API answer that is an error (the status and the API's `message`). */
export class BuildkiteApiError extends PermanentError {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

/** A request the outcome of which is unknown (sent, no answer): a create may have happened. */
export class AmbiguousRequestError extends RetryableError {}

const WINDOW_MS = 60_000;

/** A sliding one-minute window of request start times; `take()` waits for room. */
/** How long after its window a request's slot is freed (network latency to the API). */
const WINDOW_SLACK_MS = 1000;

export class RequestBudget {
  private limitNow: number;
  private readonly windowMs: number;
  private readonly starts: number[] = [];
  private pausedUntil = 0;

  constructor(limit: number, windowMs = WINDOW_MS) {
    this.limitNow = limit;
    this.windowMs = windowMs;
  }

  get limit(): number {
    return this.limitNow;
  }

  /** Lowers the budget to what the API says it allows (never raises it). True if it changed. */
  narrow(limit: number): boolean {
    if (!(limit > 0) || limit >= this.limitNow) return false;
    this.limitNow = limit;
    return true;
  }

  /** Callers waiting for their turn right now (metrics, and tests that must not sleep). */
  waiting = 0;

  async take(): Promise<void> {
    let waited = false;
    try {
      for (;;) {
        const now = Date.now();
        // A slot frees a little after the window: the API counts a request when it arrives,
        // later than it was started here, so its window ends later too.
        const window = this.windowMs + Math.min(WINDOW_SLACK_MS, this.windowMs / 10);
        while (this.starts.length > 0 && this.starts[0]! <= now - window) this.starts.shift();
        const wait = Math.max(
          this.pausedUntil - now,
          this.starts.length >= this.limit ? this.starts[0]! + window - now : 0,
        );
        if (wait <= 0) {
          this.starts.push(now);
          return;
        }
        if (!waited) {
          waited = true;
          this.waiting++;
        }
        await sleep(Math.min(wait, 1000, this.windowMs));
      }
    } finally {
      if (waited) this.waiting--;
    }
  }

  /**
   * Takes the API's own count: when it says fewer requests are left than this budget thinks,
   * the difference counts as spent now (it frees up a window from now, later than the API's
   * reset: conservative).
   */
  sync(remaining: number): void {
    const now = Date.now();
    while (this.starts.length > 0 && this.starts[0]! <= now - this.windowMs) this.starts.shift();
    const excess = this.limit - this.starts.length - remaining;
    for (let i = 0; i < excess; i++) this.starts.push(now);
  }

  /** Nobody starts a request before `until` (a 429's reset). */
  pause(until: number): void {
    this.pausedUntil = Math.max(this.pausedUntil, until);
  }

  /** Share of the window used, 0–1 (pollers back off when it is high). */
  pressure(): number {
    const now = Date.now();
    const recent = this.starts.filter((t) => t > now - this.windowMs).length;
    return Math.min(1, recent / this.limit + (this.pausedUntil > now ? 1 : 0));
  }
}

export class BuildkiteClient {
  readonly budget: RequestBudget;
  /** Requests sent (tests and the benchmark count API calls with it). */
  requests = 0;
  private readonly pool: Pool;
  private readonly base: string;
  private readonly o: BuildkiteClientOptions;

  constructor(options: BuildkiteClientOptions) {
    this.o = options;
    const url = new URL(options.apiUrl);
    this.base = url.pathname.replace(/\/$/, '');
    this.pool = new Pool(url.origin, { connections: 8, headersTimeout: options.timeoutMs ?? 15_000 });
    this.budget = new RequestBudget(options.requestsPerMinute);
  }

  async json<T>(req: BkRequest): Promise<T> {
    const res = await this.request(req);
    try {
      return JSON.parse(res.body.toString('utf8')) as T;
    } catch {
      throw new PermanentError(`Buildkite ${req.method} ${req.path}: the answer is not JSON`);
    }
  }

  /** Sends `req`; 2xx (and 206/3xx for callers that want them) come back, errors are thrown. */
  async request(req: BkRequest): Promise<BkResponse> {
    const idempotent = req.idempotent ?? req.method !== 'POST';
    const maxAttempts = this.o.maxAttempts ?? 4;
    const observe = this.o.observe;
    for (let attempt = 1; ; attempt++) {
      const before = performance.now();
      await this.budget.take();
      const waitedMs = performance.now() - before;
      if (waitedMs >= 1) observe?.waited(waitedMs / 1000);
      let res: BkResponse;
      try {
        res = await this.send(req);
      } catch (err) {
        observe?.apiCall('error');
        const what = `Buildkite ${req.method} ${req.path} failed: ${(err as Error).message}`;
        if (!idempotent) throw new AmbiguousRequestError(what, { cause: err });
        if (attempt >= maxAttempts) throw new RetryableError(what, { cause: err });
        await sleep(backoff(attempt));
        continue;
      }
      this.learnLimits(res);
      observe?.apiCall(res.status === 429 ? 'rate_limited' : res.status >= 400 ? 'error' : 'ok');
      if (res.status === 429) {
        const resetS = resetSeconds(res);
        const waitMs =
          (Number.isFinite(resetS) ? Math.min(resetS, 120) * 1000 : backoff(attempt)) +
          500 +
          Math.random() * 1000;
        this.budget.pause(Date.now() + waitMs);
        this.o.log.warn({ path: req.path, waitMs: Math.round(waitMs) }, 'Buildkite rate limit hit; pausing');
        continue;
      }
      if (res.status >= 500) {
        const what = `Buildkite ${req.method} ${req.path} failed: HTTP ${res.status}`;
        if (!idempotent) throw new AmbiguousRequestError(what);
        if (attempt >= maxAttempts) throw new RetryableError(what);
        await sleep(backoff(attempt));
        continue;
      }
      if (res.status >= 400) throw this.apiError(req, res);
      return res;
    }
  }

  async close(): Promise<void> {
    await this.pool.close();
  }

  /**
   * Buildkite limits each token's user too (default 50/min, `RateLimit-User-Limit`), often below
   * the organisation's 200: a budget above what the API allows only buys 429s, so it narrows.
   */
  private learnLimits(res: BkResponse): void {
    const before = this.budget.limit;
    const user = Number(header(res, 'ratelimit-user-limit'));
    const org = Number(header(res, 'ratelimit-limit'));
    if (
      this.budget.narrow(
        Math.min(Number.isFinite(user) ? user : Infinity, Number.isFinite(org) ? org : Infinity),
      )
    )
      this.o.log.warn(
        { configured: before, allowed: this.budget.limit },
        'Buildkite allows fewer requests per minute than TREADLE_BUILDKITE_RATE_LIMIT; using its limit',
      );
    // What the API says is left counts too: requests made before a restart (or by another
    // client with the same token) used the window up without this process knowing.
    const left = [header(res, 'ratelimit-user-remaining'), header(res, 'ratelimit-remaining')]
      .map(Number)
      .filter((n) => Number.isFinite(n) && n >= 0);
    if (left.length > 0) this.budget.sync(Math.min(...left));
  }

  private async send(req: BkRequest): Promise<BkResponse> {
    this.requests++;
    const q = new URLSearchParams(req.query ?? []);
    const path = `${this.base}${req.path}${req.query?.length ? `?${q}` : ''}`;
    const headers: Record<string, string> = {
      authorization: `Bearer ${this.o.token}`,
      accept: 'application/json',
      ...req.headers,
    };
    if (req.body !== undefined) headers['content-type'] = 'application/json';
    const res = await this.pool.request({
      method: req.method,
      path,
      headers,
      body: req.body === undefined ? undefined : JSON.stringify(req.body),
      bodyTimeout: this.o.timeoutMs ?? 15_000,
    });
    const body = Buffer.from(await res.body.arrayBuffer());
    return { status: res.statusCode, headers: res.headers, body };
  }

  private apiError(req: BkRequest, res: BkResponse): Error {
    let message = `HTTP ${res.status}`;
    try {
      const parsed = JSON.parse(res.body.toString('utf8')) as { message?: unknown; errors?: unknown };
      if (typeof parsed.message === 'string') message = parsed.message.slice(0, 500);
      if (Array.isArray(parsed.errors) && parsed.errors.length > 0)
        message += `: ${JSON.stringify(parsed.errors).slice(0, 300)}`;
    } catch {
      // not JSON: the status alone
    }
    const text = `Buildkite ${req.method} ${req.path}: ${message}`;
    if (res.status === 404) return new NotFoundError(text);
    return new BuildkiteApiError(res.status, text);
  }
}

export function header(res: BkResponse, name: string): string | undefined {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Seconds until the exhausted window(s) reset: the user window, the org window, or both. */
function resetSeconds(res: BkResponse): number {
  const num = (name: string) => Number(header(res, name) ?? 'NaN');
  const orgOut = num('ratelimit-remaining') === 0 || header(res, 'ratelimit-warning') !== undefined;
  const userOut =
    num('ratelimit-user-remaining') === 0 || header(res, 'ratelimit-user-warning') !== undefined;
  const candidates = [
    ...(orgOut || !userOut ? [num('ratelimit-reset')] : []),
    ...(userOut ? [num('ratelimit-user-reset')] : []),
  ].filter(Number.isFinite);
  return candidates.length > 0 ? Math.max(...candidates) : Number.NaN;
}

function backoff(attempt: number): number {
  return Math.min(8000, 250 * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2);
}
