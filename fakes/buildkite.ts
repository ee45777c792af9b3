/**
 * A fake Buildkite (buildkite spec §10) on a real HTTP server.
 *
 * - REST under `/v2`: create, get, the three build lists (filters, `page`/`per_page`, `Link`),
 *   cancel, rebuild, jobs list (cursor `{items,links}`), job get (build- and org-scoped), job
 *   env, retry and unblock, and the log routes (JSON, text, HEAD, suffix Range, DELETE) under
 *   both base paths; the unauthenticated `GET /`; 404 JSON for anything else.
 * - Bearer tokens from a table with scopes (401 with the exact text, 403 `Forbidden`).
 * - A clock-driven state machine from a per-pipeline script: scheduled → running → (failing) →
 *   passed | failed, canceling → canceled, blocked builds that resume on unblock, job retries
 *   that move a finished build back to running, and an "unknown state" switch.
 * - Agent-style logs that grow while a job runs, with optional upload lag (`content: ""`).
 * - Per-org and per-user one-minute windows with all eight `RateLimit-*` headers (or only the
 *   pre-2026 three), 429 with the documented body.
 * - Webhooks (token or HMAC signature), `ping` on registration, per-hook event lists, pipeline
 *   and branch filters, and faults: drop, delay/reorder, duplicate, payload newer than the event,
 *   retries, signature clock skew, bad credentials; the last 20 attempts are kept.
 * - Faults: a share of 502s, per-route 5xx / hang / connection reset, 429 bursts, creates that
 *   are committed but answered 500.
 *
 * Serialisation lives in `buildkite-json.ts` and is checked against fixtures F1–F4.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { signWebhook } from '../providers/buildkite/webhook-auth.ts';
import {
  type AgentSnap,
  agentLog,
  type BuildSnap,
  buildJson,
  type JobSnap,
  jobJson,
  logJson,
  type Origins,
  type PipelineSnap,
  type UserSnap,
  visibleJobs,
  webhookBody,
} from './buildkite-json.ts';

export const AUTH_REQUIRED =
  'Authentication required. Please supply a valid API Access Token: https://buildkite.com/docs/apis/rest-api#authentication';
const RATE_LIMITED = 'You have exceeded your API rate limit.';
const ALL_SCOPES = ['read_builds', 'write_builds', 'read_build_logs', 'write_build_logs', 'read_job_env'];
const TERMINAL_BUILD = ['passed', 'failed', 'canceled', 'skipped', 'not_run'];
const FINISHED_JOB = ['passed', 'failed', 'canceled', 'timed_out', 'unblocked', 'broken', 'expired'];
const CANCEL_MS = 100;

export interface JobScript {
  name: string;
  command: string;
  /** Output lines, spread over the job's run time. */
  lines: number;
  /**
   * Lines the command prints first, as a shell would: `$NAME` and `${NAME}` expand from the
   * build's `env` (what a real job sees of the env given at create time).
   */
  echo?: string[];
  /** One line of `\r`-separated progress updates after `echo` (a terminal shows the last). */
  progress?: string[];
  /**
   * While the job runs, its log ends with the first half of the next line, no newline yet: log
   * chunks that end mid-line, as a real agent's uploads do.
   */
  partialTail?: boolean;
  exitStatus?: number;
  /** The job ends `broken` (its agent lost, say) or `expired` (no agent took it), with no exit status. */
  endState?: 'broken' | 'expired';
  /** The job times out instead of finishing. */
  timesOut?: boolean;
  softFailed?: boolean;
}

export interface BuildScript {
  /** From creation to the first job starting. */
  startAfterMs: number;
  /** Each job's run time. */
  runMs: number;
  jobs: JobScript[];
  /** A block step after the jobs: the build ends blocked until `unblock()`. */
  blocked?: boolean;
  /** The REST `state` of a blocked build (default `passed`). */
  blockedState?: 'passed' | 'failed' | 'running';
  /** The build reports `creating` for this long after it is created (pipeline upload). */
  creatingMs?: number;
  /** The build ends this way after `startAfterMs`, no job having run (a newer build superseded it, or every step was filtered out). */
  outcome?: 'skipped' | 'not_run';
  /** A `wait` step between the jobs (a waiter job, which has no state of its own to fail). */
  waiter?: boolean;
}

export interface FakeJob {
  id: string;
  stepId: string;
  type: 'script' | 'manual' | 'waiter';
  script: JobScript;
  createdAt: number;
  startAt: number;
  endAt: number;
  canceledAt?: number;
  retriedIn?: string;
  retryOf?: string;
  retriesCount?: number;
  unblockedAt?: number;
  logDeleted?: boolean;
}

export interface FakeBuild {
  id: string;
  number: number;
  org: string;
  pipeline: string;
  createdAt: number;
  body: Record<string, unknown>;
  script: BuildScript;
  jobs: FakeJob[];
  creator: UserSnap;
  cancelAt?: number;
  rebuiltFrom?: { id: string; number: number; url: string };
  /** Last webhook event per build, and per job. */
  lastEvent?: string;
  /** Finished with every job event sent: the ticker skips it until a retry or unblock. */
  settled?: boolean;
  jobEvents: Map<string, string>;
}

export interface Webhook {
  url: string;
  mode: 'token' | 'signature';
  secret: string;
  /** Events sent (default: the build events). */
  events?: string[];
  /** Only builds of these pipelines. */
  pipelines?: string[];
  /** Branch filter, `*` wildcards, space-separated (as Buildkite's). */
  branches?: string;
}

export interface Delivery {
  event: string;
  status: number | string;
  dropped: boolean;
  headers?: Record<string, string>;
  body?: string;
}

export interface FakeBuildkiteOptions {
  token?: string;
  /** Per-org and per-user requests per minute (defaults 200 and 50, as Buildkite's). */
  orgLimit?: number;
  userLimit?: number;
  webhook?: Webhook;
}

type Fault = { route: RegExp; kind: 'status' | 'hang' | 'reset'; status?: number; left: number };
type Rate = Record<string, string>;

const DEFAULT_SCRIPT: BuildScript = {
  startAfterMs: 50,
  runMs: 200,
  jobs: [{ name: ':test_tube: test', command: 'npm test', lines: 5 }],
};
const DEFAULT_EVENTS = ['build.scheduled', 'build.running', 'build.failing', 'build.finished'];
const USER: UserSnap = {
  id: '3d3c3bf0-7d58-4afe-8fe7-b3017d5504de',
  name: 'treadle',
  email: 'treadle@example.test',
  avatarUrl: 'https://www.gravatar.com/avatar/00000000000000000000000000000000',
  createdAt: Date.UTC(2024, 0, 2, 3, 4, 5),
};
const AGENT: AgentSnap = {
  id: '0190c0de-aaaa-4bbb-8ccc-0123456789ab',
  name: 'agent-1',
  connectionState: 'connected',
  hostname: 'ci-host-1',
  ipAddress: '203.0.113.10',
  userAgent: 'buildkite-agent/3.80.0 (linux; amd64)',
};
const SENDER = { id: '8a7693f8-dbae-4783-9137-84090fce9045', name: 'Some Person' };

export class FakeBuildkite {
  readonly token: string;
  readonly builds: FakeBuild[] = [];
  /** Every API request as `METHOD path`, in order (auth failures included). */
  readonly requests: string[] = [];
  /** Start times of requests counted against the org budget. */
  readonly requestTimes: number[] = [];
  /** The last 20 webhook delivery attempts (and drops). */
  readonly deliveries: Delivery[] = [];
  /** Every webhook sent and every one dropped, since start. */
  readonly webhookCounts = { sent: 0, dropped: 0 };
  /** Token → its user and scopes. */
  readonly tokens = new Map<string, { user: UserSnap; scopes: string[] }>();
  /** Share (0–1) of API answers replaced by a 502. */
  failRate = 0;
  /** Share (0–1) of build creates that are committed and then answered 500 (spec §10.4). */
  commitThenFailRate = 0;
  /** Share of webhooks not delivered, and of those delivered twice. */
  dropRate = 0;
  duplicateRate = 0;
  /** Webhooks are sent after a random delay up to this (reordering them). */
  maxDelayMs = 0;
  /** Share of webhooks whose payload is serialised when sent, not when the event happened. */
  payloadNewerRate = 0;
  /** Share of webhooks sent with a wrong token or signature. */
  badCredentialRate = 0;
  /** Added to the signature timestamp, in seconds. */
  signatureSkewS = 0;
  /** Re-send a delivery answered non-2xx (or unanswered): attempts after the first, and the gap. */
  retryPolicy: { attempts: number; delayMs: number } = { attempts: 0, delayMs: 1000 };
  /** Non-terminal builds report this state while set (spec §10.13 "unknown state"). */
  unknownState: string | undefined;
  /** A finished job's log reads `""` for this long (agent upload lag). */
  logLagMs = 0;
  /** `header_times: []`, as agent v4 leaves it. */
  emptyHeaderTimes = false;
  /** Omit the `RateLimit-User-*` headers, as the pre-2026 API did. */
  legacyRateLimitHeaders = false;
  /** Refuse HEAD and Range on logs (400), as older deployments might. */
  noLogRanges = false;
  /** Ignore `meta_data[…]` filters on build lists (a proxy or API version that drops them). */
  ignoreMetaDataFilter = false;
  orgLimit: number;
  userLimit: number;
  private hooks: Webhook[] = [];
  private readonly scripts = new Map<string, BuildScript>();
  private readonly pipelines = new Map<string, PipelineSnap>();
  private readonly server: Server;
  private readonly numbers = new Map<string, number>();
  private readonly userTimes = new Map<string, number[]>();
  private readonly faults: Fault[] = [];
  private burst429 = 0;
  private committedButFailed = 0;
  private readonly ticker: NodeJS.Timeout;

  private constructor(server: Server, o: FakeBuildkiteOptions) {
    this.server = server;
    this.token = o.token ?? 'bk-test-token';
    this.tokens.set(this.token, { user: USER, scopes: ALL_SCOPES });
    this.orgLimit = o.orgLimit ?? 200;
    this.userLimit = o.userLimit ?? 50;
    if (o.webhook) this.webhook = o.webhook;
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

  private get origins(): Origins {
    return { api: this.origin, web: 'https://buildkite.com' };
  }

  /** The first registered webhook. Setting it replaces every hook and sends a `ping`. */
  get webhook(): Webhook | undefined {
    return this.hooks[0];
  }

  set webhook(hook: Webhook | undefined) {
    this.hooks = [];
    if (hook) this.addWebhook(hook);
  }

  addWebhook(hook: Webhook): void {
    this.hooks.push(hook);
    const body = JSON.stringify({
      event: 'ping',
      service: { id: randomUUID(), provider: 'webhook', settings: { url: hook.url } },
      organization: { id: randomUUID(), slug: this.builds[0]?.org ?? 'acme' },
      sender: SENDER,
    });
    this.send(hook, 'ping', () => body);
  }

  /** A token with some scopes (for 403 tests). */
  addToken(token: string, scopes: string[], user: Partial<UserSnap> = {}): void {
    this.tokens.set(token, { user: { ...USER, id: randomUUID(), ...user }, scopes });
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

  /** The next `n` requests whose `METHOD path` matches `route` fail this way. */
  fault(route: RegExp, kind: 'hang' | 'reset' | number, n = 1): void {
    this.faults.push(
      typeof kind === 'number' ? { route, kind: 'status', status: kind, left: n } : { route, kind, left: n },
    );
  }

  /** Builds per `treadle:request_id`. */
  buildsPerRequest(): Map<string, number> {
    const out = new Map<string, number>();
    for (const b of this.builds) {
      const id = (b.body.meta_data as Record<string, string> | undefined)?.['treadle:request_id'] ?? '';
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

  /** Retries a finished job (as `PUT …/jobs/{id}/retry`): a new job, and the build runs again. */
  retryJob(b: FakeBuild, jobId: string, script: Partial<JobScript> = {}): FakeJob | string {
    const old = b.jobs.find((j) => j.id === jobId);
    if (!old) return 'No job found';
    const now = Date.now();
    if (old.retriedIn) return 'Job has already been retried';
    if (!['failed', 'canceled', 'timed_out'].includes(this.jobState(b, old, now)))
      return `Job can't be retried because it's ${this.jobState(b, old, now)}`;
    const job: FakeJob = {
      id: randomUUID(),
      stepId: old.stepId,
      type: 'script',
      script: { ...old.script, ...script },
      createdAt: now,
      startAt: now + 50,
      endAt: now + 50 + b.script.runMs,
      retryOf: old.id,
      retriesCount: (old.retriesCount ?? 0) + 1,
    };
    old.retriedIn = job.id;
    b.jobs.push(job);
    b.settled = false;
    b.cancelAt = undefined;
    return job;
  }

  /** Releases a blocked build's block step; one more job (`script`) then runs. */
  unblock(b: FakeBuild, script: JobScript = { name: 'after block', command: 'deploy', lines: 2 }): boolean {
    const block = b.jobs.find((j) => j.type === 'manual' && j.unblockedAt === undefined);
    if (!block || this.stateOf(b, Date.now()) === 'canceled') return false;
    const now = Date.now();
    block.unblockedAt = now;
    b.settled = false;
    b.jobs.push({
      id: randomUUID(),
      stepId: randomUUID(),
      type: 'script',
      script,
      createdAt: now,
      startAt: now + 50,
      endAt: now + 50 + b.script.runMs,
    });
    return true;
  }

  async close(): Promise<void> {
    clearInterval(this.ticker);
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  // --- state machine --------------------------------------------------------------------------

  /** A build's REST view at `now`. */
  view(b: FakeBuild, now = Date.now(), withJobs = true): Record<string, unknown> {
    return buildJson(this.origins, this.snapshot(b, now), { excludeJobs: !withJobs });
  }

  /** Jobs that count: the latest attempt of each step. */
  private latest(b: FakeBuild): FakeJob[] {
    return b.jobs.filter((j) => !j.retriedIn);
  }

  private jobState(b: FakeBuild, j: FakeJob, now: number): string {
    // A wait step: waiting until the jobs before it end, then (always) passed.
    if (j.type === 'waiter') return now >= j.startAt ? 'passed' : 'waiting';
    if (j.type === 'manual') {
      if (j.unblockedAt !== undefined) return 'unblocked';
      return now >= j.startAt ? 'blocked' : 'waiting';
    }
    if (j.canceledAt !== undefined && now >= j.startAt && now < j.endAt)
      return now >= j.canceledAt ? 'canceled' : 'canceling';
    if (j.canceledAt !== undefined && now < j.startAt) return now >= j.canceledAt ? 'canceled' : 'scheduled';
    if (now < j.startAt) return now < b.createdAt + b.script.startAfterMs ? 'scheduled' : 'waiting';
    // An agent takes the job in steps before it runs: assigned, then accepted.
    const warmup = Math.min(100, (j.endAt - j.startAt) / 4);
    if (now < j.startAt + warmup / 2) return 'assigned';
    if (now < j.startAt + warmup) return 'accepted';
    if (now < j.endAt) return 'running';
    if (j.script.endState) return j.script.endState;
    if (j.script.timesOut) return 'timed_out';
    return (j.script.exitStatus ?? 0) === 0 ? 'passed' : 'failed';
  }

  /** The REST state; `blocked` is reported beside it. */
  stateOf(b: FakeBuild, now: number): string {
    const real = this.realState(b, now);
    if (this.unknownState && !TERMINAL_BUILD.includes(real)) return this.unknownState;
    return real;
  }

  private realState(b: FakeBuild, now: number): string {
    if (b.cancelAt !== undefined) return now >= b.cancelAt ? 'canceled' : 'canceling';
    if (now < b.createdAt + (b.script.creatingMs ?? 0)) return 'creating';
    if (now < b.createdAt + b.script.startAfterMs) return 'scheduled';
    if (b.script.outcome) return b.script.outcome;
    const states = this.latest(b).map((j) => this.jobState(b, j, now));
    const failed = this.latest(b).some(
      (j) =>
        j.type === 'script' &&
        !j.script.softFailed &&
        ['failed', 'timed_out', 'broken', 'expired'].includes(this.jobState(b, j, now)),
    );
    if (states.some((s) => ['running', 'scheduled', 'waiting', 'assigned', 'accepted'].includes(s)))
      return failed ? 'failing' : 'running';
    if (states.includes('blocked')) return b.script.blockedState ?? (failed ? 'failed' : 'passed');
    return failed ? 'failed' : 'passed';
  }

  private isBlocked(b: FakeBuild, now: number): boolean {
    return b.cancelAt === undefined && this.latest(b).some((j) => this.jobState(b, j, now) === 'blocked');
  }

  private pipelineOf(b: FakeBuild): PipelineSnap {
    let p = this.pipelines.get(`${b.org}/${b.pipeline}`);
    if (!p) {
      p = {
        id: randomUUID(),
        slug: b.pipeline,
        name: b.pipeline,
        repository: `git@example.test:${b.org}/${b.pipeline}.git`,
        defaultBranch: 'main',
        providerSettings: {},
        badgeToken: '0'.repeat(49),
        createdAt: b.createdAt,
        counts: { scheduledBuilds: 0, runningBuilds: 0, scheduledJobs: 0, runningJobs: 0, waitingJobs: 0 },
      };
      this.pipelines.set(`${b.org}/${b.pipeline}`, p);
    }
    return p;
  }

  private jobSnap(b: FakeBuild, j: FakeJob, now: number): JobSnap {
    const state = this.jobState(b, j, now);
    const started = now >= j.startAt && !(j.canceledAt !== undefined && j.canceledAt <= j.startAt);
    const finished = FINISHED_JOB.includes(state);
    const end = j.unblockedAt ?? (j.canceledAt !== undefined ? Math.min(j.canceledAt, j.endAt) : j.endAt);
    return {
      id: j.id,
      type: j.type,
      name: j.script.name,
      stepKey: null,
      stepId: j.stepId,
      state,
      command: j.type === 'manual' ? null : j.script.command,
      softFailed: state === 'failed' && j.script.softFailed === true,
      exitStatus:
        state === 'passed'
          ? 0
          : state === 'failed'
            ? (j.script.exitStatus ?? 1)
            : state === 'canceled' && started
              ? -1
              : null,
      signalReason: state === 'canceled' && started ? 'cancel' : null,
      artifactPaths: null,
      agent: started && j.type === 'script' ? AGENT : null,
      createdAt: j.createdAt,
      scheduledAt: b.createdAt,
      runnableAt: j.createdAt,
      startedAt: started && j.type === 'script' ? j.startAt : null,
      finishedAt: finished ? end : null,
      retried: j.retriedIn !== undefined,
      retriedInJobId: j.retriedIn ?? null,
      retriesCount: j.retriesCount ?? null,
      retrySource: j.retryOf ? { job_id: j.retryOf, retry_type: 'manual' } : null,
    };
  }

  /** Everything the serialisers need, as the build is at `now`. */
  snapshot(b: FakeBuild, now = Date.now()): BuildSnap {
    const state = this.stateOf(b, now);
    const jobs = b.jobs.map((j) => this.jobSnap(b, j, now));
    const latest = jobs.filter((j) => !j.retried);
    const started = now >= b.createdAt + b.script.startAfterMs ? b.createdAt + b.script.startAfterMs : null;
    const ends = latest.map((j) => j.finishedAt ?? 0);
    const terminal = TERMINAL_BUILD.includes(this.realState(b, now)) || this.isBlocked(b, now);
    const failedEnds = latest
      .filter(
        (j) => j.type === 'script' && (j.state === 'failed' || j.state === 'timed_out') && !j.softFailed,
      )
      .map((j) => j.finishedAt ?? 0);
    const meta: Record<string, string> = { ...((b.body.meta_data as Record<string, string>) ?? {}) };
    if (started !== null) meta['buildkite:git:commit'] = gitCommitMeta(b);
    return {
      id: b.id,
      org: b.org,
      number: b.number,
      state,
      cancelReason: b.cancelAt !== undefined ? 'canceled via API' : null,
      blocked: this.isBlocked(b, now),
      blockedState: this.isBlocked(b, now) ? (b.script.blockedState ?? 'passed') : null,
      message: (b.body.message as string | undefined) ?? null,
      commit: b.body.commit as string,
      branch: b.body.branch as string,
      env: (b.body.env as Record<string, unknown> | undefined) ?? {},
      author: b.body.author ?? null,
      creator: b.creator,
      jobs,
      createdAt: b.createdAt,
      scheduledAt: b.createdAt,
      startedAt: started,
      failingAt: failedEnds.length > 0 ? Math.min(...failedEnds) : null,
      finishedAt: terminal ? (b.cancelAt ?? Math.max(...ends, started ?? b.createdAt)) : null,
      metaData: meta,
      pullRequest: b.body.pull_request_base_branch
        ? {
            id: String(b.body.pull_request_id ?? '1'),
            base: b.body.pull_request_base_branch,
            repository: b.body.pull_request_repository ?? null,
          }
        : null,
      rebuiltFrom: b.rebuiltFrom ?? null,
      pipeline: this.pipelineOf(b),
    };
  }

  /** The job's raw log at `now`: the lines printed so far, agent-style. */
  logOf(j: FakeJob, now: number): Buffer {
    return this.logAt(j, now).bytes;
  }

  private logAt(j: FakeJob, now: number): { bytes: Buffer; headerTimesNs: bigint[] } {
    if (now < j.startAt || j.type !== 'script' || j.logDeleted)
      return { bytes: Buffer.alloc(0), headerTimesNs: [] };
    const stop = Math.min(j.canceledAt ?? j.endAt, j.endAt);
    if (now >= stop && now < stop + this.logLagMs) return { bytes: Buffer.alloc(0), headerTimesNs: [] };
    const span = Math.max(1, j.endAt - j.startAt);
    const upTo = Math.min(now, stop);
    const printed =
      upTo >= j.endAt ? j.script.lines : Math.floor(((upTo - j.startAt) / span) * j.script.lines);
    const lines = [
      { t: j.startAt, text: '~~~ Running script' },
      { t: j.startAt, text: `\x1b[90m$\x1b[0m ${j.script.command}` },
      ...(j.script.echo ?? []).map((text) => ({ t: j.startAt, text })),
      ...(j.script.progress ? [{ t: j.startAt, text: j.script.progress.join('\r') }] : []),
    ];
    const lineText = (i: number) => `line ${i + 1} of ${j.script.name}`;
    for (let i = 0; i < printed; i++)
      lines.push({ t: Math.floor(j.startAt + (i / j.script.lines) * span), text: lineText(i) });
    const log = agentLog(lines);
    if (j.script.partialTail && printed < j.script.lines && upTo < stop) {
      // Half of the next line, its timestamp escape included: the upload cut it mid-line.
      const next = agentLog([
        { t: Math.floor(j.startAt + (printed / j.script.lines) * span), text: lineText(printed) },
      ]).bytes;
      log.bytes = Buffer.concat([log.bytes, next.subarray(0, Math.floor(next.length / 2))]);
    }
    return log;
  }

  private tick(): void {
    const now = Date.now();
    for (const b of this.builds) {
      if (b.settled) continue;
      const snap = this.snapshot(b, now);
      const event =
        snap.state === 'scheduled'
          ? 'build.scheduled'
          : snap.state === 'failing'
            ? 'build.failing'
            : snap.finishedAt !== null
              ? 'build.finished'
              : 'build.running';
      if (b.lastEvent !== event) {
        b.lastEvent = event;
        this.emit(event, b, snap);
      }
      for (const j of snap.jobs) {
        const je =
          j.finishedAt !== null ? 'job.finished' : j.startedAt !== null ? 'job.started' : 'job.scheduled';
        if (b.jobEvents.get(j.id) !== je) {
          b.jobEvents.set(j.id, je);
          this.emit(je, b, snap, j);
        }
      }
      b.settled =
        event === 'build.finished' &&
        !snap.blocked &&
        snap.jobs.every((j) => j.finishedAt !== null || j.retried);
    }
  }

  private emit(event: string, b: FakeBuild, snap: BuildSnap, job?: JobSnap): void {
    for (const hook of this.hooks) {
      if (!(hook.events ?? DEFAULT_EVENTS).includes(event)) continue;
      if (hook.pipelines && !hook.pipelines.includes(b.pipeline)) continue;
      if (hook.branches && !hook.branches.split(/\s+/).some((p) => glob(p).test(b.body.branch as string)))
        continue;
      const newer = Math.random() < this.payloadNewerRate;
      this.send(hook, event, () => {
        const s = newer ? this.snapshot(b) : snap;
        const j = job && newer ? s.jobs.find((x) => x.id === job.id) : job;
        return webhookBody(this.origins, event, s, SENDER, j);
      });
    }
  }

  private send(hook: Webhook, event: string, body: () => string): void {
    const copies = Math.random() < this.dropRate ? 0 : Math.random() < this.duplicateRate ? 2 : 1;
    this.webhookCounts.sent++;
    if (copies === 0) {
      this.webhookCounts.dropped++;
      this.record({ event, status: 'dropped', dropped: true });
      return;
    }
    for (let i = 0; i < copies; i++)
      setTimeout(
        () => void this.post(hook, event, body(), this.retryPolicy.attempts),
        Math.random() * this.maxDelayMs,
      );
  }

  private async post(hook: Webhook, event: string, body: string, retries: number): Promise<void> {
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'x-buildkite-event': event,
    };
    const bad = Math.random() < this.badCredentialRate;
    const secret = bad ? `${hook.secret}-wrong` : hook.secret;
    if (hook.mode === 'token') headers['x-buildkite-token'] = secret;
    else
      headers['x-buildkite-signature'] = signWebhook(
        secret,
        body,
        Math.floor(Date.now() / 1000) + this.signatureSkewS,
      );
    let status: number | string;
    try {
      const res = await fetch(hook.url, { method: 'POST', headers, body });
      await res.body?.cancel();
      status = res.status;
    } catch (err) {
      status = String(err);
    }
    this.record({ event, status, dropped: false, headers, body });
    const ok = typeof status === 'number' && status >= 200 && status < 300;
    if (!ok && retries > 0)
      setTimeout(() => void this.post(hook, event, body, retries - 1), this.retryPolicy.delayMs);
  }

  private record(d: Delivery): void {
    this.deliveries.push(d);
    if (this.deliveries.length > 20) this.deliveries.shift();
  }

  // --- HTTP -------------------------------------------------------------------------------------

  private route(req: IncomingMessage, body: Buffer, res: ServerResponse) {
    const url = new URL(req.url ?? '/', this.origin);
    const method = req.method ?? 'GET';
    this.requests.push(`${method} ${url.pathname}`);
    if (url.pathname === '/')
      return send(res, 200, { message: '🛠', timestamp: Math.floor(Date.now() / 1000) });
    const auth = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
    const who = auth ? this.tokens.get(auth[1]!) : undefined;
    if (!who) return send(res, 401, { message: AUTH_REQUIRED });
    const limited = this.limit(who.user.id);
    if (limited.status) return send(res, 429, limited.body, limited.headers);
    const rate = limited.headers;
    const fault = this.faults.find((f) => f.left > 0 && f.route.test(`${method} ${url.pathname}`));
    if (fault) {
      fault.left--;
      if (fault.kind === 'hang') return;
      if (fault.kind === 'reset') return req.socket.destroy();
      return send(res, fault.status!, { message: 'Injected failure' }, rate);
    }
    if (Math.random() < this.failRate) return send(res, 502, { message: 'Bad Gateway' }, rate);
    const scope = (s: string) => who.scopes.includes(s);
    const p = url.pathname;
    const q = url.searchParams;
    if (method === 'GET' && p === '/v2/builds')
      return scope('read_builds') ? this.list(() => true, url, res, rate) : forbid(res, rate);
    const orgBuilds = /^\/v2\/organizations\/([^/]+)\/builds$/.exec(p);
    if (orgBuilds && method === 'GET') {
      const org = orgBuilds[1];
      return scope('read_builds') ? this.list((b) => b.org === org, url, res, rate) : forbid(res, rate);
    }
    const orgJob =
      /^\/v2\/organizations\/([^/]+)\/jobs\/([^/]+)(?:\/(log|log\.txt|env|retry|unblock))?$/.exec(p);
    if (orgJob) {
      const [, org, jobId, action] = orgJob;
      const found = this.findJob(org!, jobId!);
      if (!found) return send(res, 404, { message: 'No job found' }, rate);
      return this.jobRoute(req, method, action, found.b, found.j, scope, res, rate);
    }
    const m =
      /^\/v2\/organizations\/([^/]+)\/pipelines\/([^/]+)\/builds(?:\/(\d+)(?:\/(cancel|rebuild|jobs)(?:\/([^/]+)(?:\/(log|log\.txt|env|retry|unblock))?)?)?)?$/.exec(
        p,
      );
    if (!m) return send(res, 404, { message: 'Not Found' }, rate);
    const [, org, pipeline, num, action, jobId, jobAction] = m;
    if (!num) {
      if (method === 'POST')
        return scope('write_builds')
          ? this.create(org!, pipeline!, body, who.user, res, rate)
          : forbid(res, rate);
      if (method === 'GET')
        return scope('read_builds')
          ? this.list((b) => b.org === org && b.pipeline === pipeline, url, res, rate)
          : forbid(res, rate);
      return send(res, 404, { message: 'Not Found' }, rate);
    }
    const b = this.builds.find((x) => x.org === org && x.pipeline === pipeline && x.number === Number(num));
    if (!b) return send(res, 404, { message: 'No build found' }, rate);
    const now = Date.now();
    if (!action && method === 'GET') {
      if (!scope('read_builds')) return forbid(res, rate);
      return send(
        res,
        200,
        buildJson(this.origins, this.snapshot(b, now), {
          excludeJobs: q.get('exclude_jobs') === 'true',
          excludePipeline: q.get('exclude_pipeline') === 'true',
          includeRetried: q.get('include_retried_jobs') === 'true',
          jobStates: q.getAll('job_states[]'),
          jobStateCounts: true,
        }),
        rate,
      );
    }
    if (action === 'cancel' && method === 'PUT')
      return scope('write_builds') ? this.cancel(b, res, rate) : forbid(res, rate);
    if (action === 'rebuild' && method === 'PUT')
      return scope('write_builds') ? this.rebuild(b, who.user, res, rate) : forbid(res, rate);
    if (action === 'jobs' && !jobId && method === 'GET')
      return scope('read_builds') ? this.jobsList(b, url, res, rate) : forbid(res, rate);
    if (action === 'jobs' && jobId) {
      const j = b.jobs.find((x) => x.id === jobId);
      if (!j) return send(res, 404, { message: 'No job found' }, rate);
      return this.jobRoute(req, method, jobAction, b, j, scope, res, rate);
    }
    return send(res, 404, { message: 'Not Found' }, rate);
  }

  /** Counts the request in the org and user windows; a 429 answer when either is exhausted. */
  private limit(user: string): { status?: 429; body?: unknown; headers: Rate } {
    const now = Date.now();
    this.requestTimes.push(now);
    const users = this.userTimes.get(user) ?? [];
    users.push(now);
    this.userTimes.set(user, users);
    while (users.length > 0 && users[0]! <= now - 60_000) users.shift();
    const inWindow = (times: number[]) => {
      let n = 0;
      for (let i = times.length - 1; i >= 0 && times[i]! > now - 60_000; i--) n++;
      return n;
    };
    const orgUsed = inWindow(this.requestTimes);
    const userUsed = users.length;
    const resetOf = (times: number[], used: number) =>
      used === 0 ? 60 : Math.max(1, Math.ceil((times[times.length - used]! + 60_000 - now) / 1000));
    const orgReset = this.burst429 > 0 ? 1 : resetOf(this.requestTimes, orgUsed);
    const userReset = resetOf(users, userUsed);
    const headers: Rate = {
      'RateLimit-Scope': 'rest',
      'RateLimit-Remaining': String(Math.max(0, this.orgLimit - orgUsed)),
      'RateLimit-Limit': String(this.orgLimit),
      'RateLimit-Reset': String(orgReset),
      'Access-Control-Expose-Headers': 'Link',
    };
    if (!this.legacyRateLimitHeaders)
      Object.assign(headers, {
        'RateLimit-User-Scope': 'rest_user',
        'RateLimit-User-Remaining': String(Math.max(0, this.userLimit - userUsed)),
        'RateLimit-User-Limit': String(this.userLimit),
        'RateLimit-User-Reset': String(userReset),
      });
    const orgOver = this.burst429 > 0 || orgUsed > this.orgLimit;
    const userOver = userUsed > this.userLimit;
    if (!orgOver && !userOver) return { headers };
    if (this.burst429 > 0) this.burst429--;
    if (orgOver) headers['RateLimit-Warning'] = RATE_LIMITED;
    if (userOver && !this.legacyRateLimitHeaders) headers['RateLimit-User-Warning'] = RATE_LIMITED;
    const [scope, limit, current, reset] = orgOver
      ? ['rest', this.orgLimit, orgUsed, orgReset]
      : ['rest_user', this.userLimit, userUsed, userReset];
    return {
      status: 429,
      headers,
      body: {
        message: `${RATE_LIMITED} Please wait ${reset} seconds before making more requests.`,
        scope,
        limit,
        current,
        reset,
      },
    };
  }

  private create(
    org: string,
    pipeline: string,
    raw: Buffer,
    user: UserSnap,
    res: ServerResponse,
    rate: Rate,
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
    const build = this.newBuild(org, pipeline, body, user);
    if (this.committedButFailed > 0 || Math.random() < this.commitThenFailRate) {
      if (this.committedButFailed > 0) this.committedButFailed--;
      return send(res, 500, { message: 'Internal Server Error' }, rate);
    }
    send(res, 201, buildJson(this.origins, this.snapshot(build, build.createdAt)), rate);
  }

  private newBuild(
    org: string,
    pipeline: string,
    body: Record<string, unknown>,
    creator: UserSnap,
  ): FakeBuild {
    const script = this.scripts.get(pipeline) ?? DEFAULT_SCRIPT;
    const key = `${org}/${pipeline}`;
    const number = (this.numbers.get(key) ?? 0) + 1;
    this.numbers.set(key, number);
    const createdAt = Date.now();
    let at = createdAt + script.startAfterMs;
    const env = (body.env ?? {}) as Record<string, string>;
    const jobs: FakeJob[] = script.jobs.map((s) => {
      const job: FakeJob = {
        id: randomUUID(),
        stepId: randomUUID(),
        type: 'script',
        script: s.echo
          ? {
              ...s,
              echo: s.echo.map((l) =>
                l.replace(/\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?/g, (_, k: string) => env[k] ?? ''),
              ),
            }
          : s,
        createdAt,
        startAt: at,
        endAt: at + script.runMs,
      };
      at += script.runMs;
      return job;
    });
    if (script.waiter && jobs.length > 1)
      jobs.splice(1, 0, {
        id: randomUUID(),
        stepId: randomUUID(),
        type: 'waiter',
        script: { name: '', command: '', lines: 0 },
        createdAt,
        startAt: jobs[0]!.endAt,
        endAt: jobs[0]!.endAt,
      });
    if (script.blocked)
      jobs.push({
        id: randomUUID(),
        stepId: randomUUID(),
        type: 'manual',
        script: { name: ':rocket: Release?', command: '', lines: 0 },
        createdAt,
        startAt: at,
        endAt: at,
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
      creator,
      jobEvents: new Map(),
    };
    this.builds.push(build);
    return build;
  }

  private list(match: (b: FakeBuild) => boolean, url: URL, res: ServerResponse, rate: Rate) {
    const q = url.searchParams;
    const all = (name: string) => [...q.getAll(name), ...q.getAll(`${name}[]`)];
    const states = all('state').flatMap((s) =>
      s === 'finished' ? ['passed', 'failed', 'blocked', 'canceled'] : [s],
    );
    const branches = all('branch').map(glob);
    const commits = all('commit');
    const meta = [...q.entries()]
      .map(([k, v]) => [/^meta_data\[(.+)\]$/.exec(k)?.[1], v] as const)
      .filter((e): e is readonly [string, string] => e[0] !== undefined && !this.ignoreMetaDataFilter);
    const time = (name: string) => (q.get(name) ? Date.parse(q.get(name)!) : undefined);
    const [createdFrom, createdTo, finishedFrom] = [
      time('created_from'),
      time('created_to'),
      time('finished_from'),
    ];
    const creator = q.get('creator');
    const now = Date.now();
    const found = this.builds
      .filter(match)
      .map((b) => ({ b, s: this.snapshot(b, now) }))
      .filter(
        ({ s }) =>
          states.length === 0 || states.includes(s.state) || (s.blocked && states.includes('blocked')),
      )
      .filter(({ s }) => branches.length === 0 || branches.some((g) => g.test(s.branch)))
      .filter(({ s }) => commits.length === 0 || commits.includes(s.commit))
      .filter(({ s }) => meta.every(([k, v]) => s.metaData[k] === v))
      .filter(({ s }) => createdFrom === undefined || s.createdAt >= createdFrom)
      .filter(({ s }) => createdTo === undefined || s.createdAt <= createdTo)
      .filter(
        ({ s }) => finishedFrom === undefined || (s.finishedAt !== null && s.finishedAt >= finishedFrom),
      )
      .filter(({ s }) => !creator || s.creator.id === creator)
      .reverse();
    const perPage = Math.max(1, Math.min(100, Number(q.get('per_page') ?? 30) || 30));
    const page = Math.max(1, Number(q.get('page') ?? 1) || 1);
    const last = Math.max(1, Math.ceil(found.length / perPage));
    const link = (n: number, rel: string) => {
      const u = new URL(url);
      u.searchParams.set('page', String(n));
      return `<${u}>; rel="${rel}"`;
    };
    const links = [
      ...(page < last ? [link(page + 1, 'next')] : []),
      ...(page > 1 ? [link(page - 1, 'prev'), link(1, 'first')] : []),
      ...(page < last ? [link(last, 'last')] : []),
    ];
    const opts = {
      excludeJobs: q.get('exclude_jobs') === 'true',
      excludePipeline: q.get('exclude_pipeline') === 'true',
      includeRetried: q.get('include_retried_jobs') === 'true',
    };
    const rows = found
      .slice((page - 1) * perPage, page * perPage)
      .map(({ s }) => buildJson(this.origins, s, opts));
    send(res, 200, rows, links.length > 0 ? { ...rate, Link: links.join(', ') } : rate);
  }

  private jobsList(b: FakeBuild, url: URL, res: ServerResponse, rate: Rate) {
    const q = url.searchParams;
    if (q.has('after') && q.has('before'))
      return send(res, 400, { message: '`after` and `before` are mutually exclusive' }, rate);
    const snap = this.snapshot(b);
    const jobs = visibleJobs(snap, {
      includeRetried: q.get('include_retried_jobs') !== 'false',
      jobStates: q.getAll('state[]'),
    }).filter((j) => !q.get('step_key') || j.stepKey === q.get('step_key'));
    const perPage = Math.max(1, Math.min(100, Number(q.get('per_page') ?? 30) || 30));
    const after = q.get('after');
    const before = q.get('before');
    let start = 0;
    if (after) start = jobs.findIndex((j) => j.id === after) + 1;
    if (before) start = Math.max(0, jobs.findIndex((j) => j.id === before) - perPage);
    const items = jobs.slice(start, start + perPage);
    const links: Record<string, string> = { self: url.toString() };
    if (start + perPage < jobs.length && items.length > 0) {
      const next = new URL(url);
      next.searchParams.delete('before');
      next.searchParams.set('after', items.at(-1)!.id);
      links.next = next.toString();
    }
    send(res, 200, { items: items.map((j) => jobJson(this.origins, snap, j)), links }, rate);
  }

  private jobRoute(
    req: IncomingMessage,
    method: string,
    action: string | undefined,
    b: FakeBuild,
    j: FakeJob,
    scope: (s: string) => boolean,
    res: ServerResponse,
    rate: Rate,
  ) {
    if (!action && method === 'GET') {
      if (!scope('read_builds')) return forbid(res, rate);
      const snap = this.snapshot(b);
      return send(res, 200, jobJson(this.origins, snap, snap.jobs.find((x) => x.id === j.id)!), rate);
    }
    if (action === 'env' && method === 'GET')
      return scope('read_job_env') ? send(res, 200, { env: b.body.env ?? {} }, rate) : forbid(res, rate);
    if (action === 'retry' && method === 'PUT') {
      if (!scope('write_builds')) return forbid(res, rate);
      const job = this.retryJob(b, j.id);
      if (typeof job === 'string') return send(res, 422, { message: job }, rate);
      const snap = this.snapshot(b);
      return send(res, 200, jobJson(this.origins, snap, snap.jobs.find((x) => x.id === job.id)!), rate);
    }
    if (action === 'unblock' && method === 'PUT') {
      if (!scope('write_builds')) return forbid(res, rate);
      if (j.type !== 'manual' || !this.unblock(b))
        return send(res, 422, { message: 'This job cannot be unblocked' }, rate);
      const snap = this.snapshot(b);
      return send(res, 200, jobJson(this.origins, snap, snap.jobs.find((x) => x.id === j.id)!), rate);
    }
    if (action === 'log' || action === 'log.txt') {
      if (method === 'DELETE') {
        if (!scope('write_build_logs')) return forbid(res, rate);
        j.logDeleted = true;
        res.writeHead(204, rate).end();
        return;
      }
      if (method === 'GET' || method === 'HEAD')
        return scope('read_build_logs')
          ? this.log(req, b, j, action === 'log.txt', res, rate)
          : forbid(res, rate);
    }
    return send(res, 404, { message: 'Not Found' }, rate);
  }

  private findJob(org: string, jobId: string): { b: FakeBuild; j: FakeJob } | undefined {
    for (const b of this.builds) {
      if (b.org !== org) continue;
      const j = b.jobs.find((x) => x.id === jobId);
      if (j) return { b, j };
    }
    return undefined;
  }

  private cancel(b: FakeBuild, res: ServerResponse, rate: Rate) {
    const now = Date.now();
    const state = this.realState(b, now);
    if (!['scheduled', 'running', 'failing'].includes(state))
      return send(res, 422, { message: `Build can't be canceled because it's already ${state}` }, rate);
    let end = now;
    for (const j of this.latest(b)) {
      if (j.type !== 'script') continue;
      const js = this.jobState(b, j, now);
      if (js === 'running') {
        j.canceledAt = now + CANCEL_MS;
        end = Math.max(end, j.canceledAt);
      } else if (!FINISHED_JOB.includes(js)) j.canceledAt = now;
    }
    b.cancelAt = end;
    send(res, 200, buildJson(this.origins, this.snapshot(b, now)), rate);
  }

  private rebuild(b: FakeBuild, user: UserSnap, res: ServerResponse, rate: Rate) {
    const state = this.realState(b, Date.now());
    if (!TERMINAL_BUILD.includes(state))
      return send(res, 422, { message: `Build can't be rebuilt because it's ${state}` }, rate);
    const copy: Record<string, unknown> = {};
    for (const k of ['commit', 'branch', 'message', 'env', 'author', 'meta_data'])
      if (b.body[k] !== undefined) copy[k] = b.body[k];
    for (const k of Object.keys(b.body)) if (k.startsWith('pull_request_')) copy[k] = b.body[k];
    const next = this.newBuild(b.org, b.pipeline, copy, user);
    next.rebuiltFrom = {
      id: b.id,
      number: b.number,
      url: buildJson(this.origins, this.snapshot(b)).url as string,
    };
    send(res, 200, buildJson(this.origins, this.snapshot(next)), rate);
  }

  private log(req: IncomingMessage, b: FakeBuild, j: FakeJob, txt: boolean, res: ServerResponse, rate: Rate) {
    const { bytes, headerTimesNs } = this.logAt(j, Date.now());
    const text = txt || req.headers.accept === 'text/plain';
    if (req.method === 'HEAD') {
      if (this.noLogRanges) return send(res, 400, { message: 'HEAD is not supported' }, rate);
      res.writeHead(200, { ...rate, 'content-length': bytes.length, 'accept-ranges': 'bytes' }).end();
      return;
    }
    const range = req.headers.range;
    if (range) {
      const m = /^bytes=-(\d+)$/.exec(range);
      if (this.noLogRanges || !text || !m || m[1] === '0')
        return send(res, 400, { message: 'Invalid range' }, rate);
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
    const url = `${buildJson(this.origins, this.snapshot(b), { excludeJobs: true, excludePipeline: true }).url}/jobs/${j.id}/log`;
    const out = logJson(url, bytes, this.emptyHeaderTimes ? [] : headerTimesNs);
    res
      .writeHead(200, {
        ...rate,
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(out),
      })
      .end(out);
  }
}

function send(res: ServerResponse, status: number, body: unknown, headers: Rate = {}): void {
  const text = JSON.stringify(body);
  res
    .writeHead(status, {
      ...headers,
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(text),
    })
    .end(text);
}

function forbid(res: ServerResponse, rate: Rate): void {
  send(res, 403, { message: 'Forbidden' }, rate);
}

/** A branch pattern with `*` wildcards (Buildkite's filter syntax). */
function glob(pattern: string): RegExp {
  return new RegExp(
    `^${pattern
      .split('*')
      .map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
      .join('.*')}$`,
  );
}

/** What the agent writes as `buildkite:git:commit` on first checkout (spec §9 F2). */
function gitCommitMeta(b: FakeBuild): string {
  const sha = b.body.commit as string;
  const author = b.body.author as { name?: string; email?: string } | undefined;
  const who = `${author?.name ?? 'Some Developer'} <${author?.email ?? 'dev@example.test'}>`;
  const message = String(b.body.message ?? '').replace(/\n/g, '\n    ');
  return `commit ${sha}\nabbrev-commit ${sha.slice(0, 10)}\nAuthor: ${who}\n\n    ${message}\n`;
}
