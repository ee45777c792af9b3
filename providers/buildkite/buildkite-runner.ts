/**
 * Buildkite behind the BuildRunner contract (buildkite spec). One build per workflow run:
 *
 * - trigger: the intent is stored before the create request; after a crash or an ambiguous
 *   failure the build is looked up by its `treadle:request_id` meta-data before creating again,
 *   so a run never gets two builds (§4.9).
 * - progress: webhooks (`onWebhook`) store the newest state and wake the dispatcher; `status()`
 *   answers from that without an API call, and polls the build only when nothing new arrived
 *   (reconciliation: a lost webhook costs at most one poll interval). A terminal build is read
 *   once with its jobs, for exit codes and the job list of the logs.
 * - logs: each script job is one step; while the build runs and someone watches, job logs are
 *   fetched incrementally (HEAD + suffix Range, else full refetch skipping what was sent) at a
 *   bounded rate; after the end each job's log is fetched once, and the collector keeps it.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { NotFoundError, RetryableError } from '../../src/errors.ts';
import type { Logger } from '../../src/logger.ts';
import type { BuildRequest, BuildRunner, BuildStatus, LogLine, LogOptions } from '../runner.ts';
import type { BuildRow, BuildStore } from './build-store.ts';
import {
  AmbiguousRequestError,
  type BkResponse,
  BuildkiteApiError,
  type BuildkiteClient,
  header,
} from './client.ts';
import { LogLineSplitter, type ParsedLine } from './log-parse.ts';
import { readOptions } from './options.ts';
import { type BkBuild, type BkJob, buildStatus, isTerminalBuild } from './state.ts';

export const REQUEST_ID_KEY = 'treadle:request_id';
/** Creates tried in one trigger call after ambiguous failures (each preceded by a lookup). */
const CREATE_ATTEMPTS = 4;

export interface BuildkiteRunnerOptions {
  client: BuildkiteClient;
  /** The runner's own table of builds (migration 0006). */
  store: BuildStore;
  log: Logger;
  /** TREADLE_BUILDKITE_ORG: the organisation of workflows that name none. */
  org?: string;
  /** Reconciliation poll interval for a build no webhook has reported on. */
  pollIntervalMs: number;
  /** Minimum gap between log fetches of a watched, running build. */
  logPollMs?: number;
  /**
   * The agent uploads log chunks about once a second, so a job's stored log can trail its end
   * (spec §7.1, §7.3 step 5): the final fetch waits until this long after `finished_at`
   * (default 2000 ms), and an empty final log is fetched again, up to 5 times a second apart.
   */
  logSettleMs?: number;
  /** A webhook changed a run: wake whatever waits on `requestId`. */
  onProgress?: (requestId: string) => void;
}

/** How a webhook payload's build is matched to a run. */
export interface WebhookEvent {
  event: string;
  build?: BkBuild;
}

export class BuildkiteRunner implements BuildRunner {
  readonly name = 'buildkite';
  readonly pushesProgress = true;
  readonly store: BuildStore;
  private readonly o: BuildkiteRunnerOptions;

  constructor(options: BuildkiteRunnerOptions) {
    this.o = options;
    this.store = options.store;
  }

  private get client(): BuildkiteClient {
    return this.o.client;
  }

  async trigger(request: BuildRequest): Promise<string> {
    const opts = readOptions(request.workflow.options, this.o.org);
    const existing = this.store.get(request.id);
    if (existing?.phase === 'created') return buildIdOf(existing);
    if (existing) {
      const found = await this.findByRequest(existing.org, existing.pipeline, request.id);
      if (found) return this.adopt(request.id, found, 'found after an interrupted create');
    }
    this.store.creating(request.id, opts.org, opts.pipeline);
    const path = `/organizations/${opts.org}/pipelines/${opts.pipeline}/builds`;
    let build: BkBuild | undefined;
    for (let attempt = 1; !build; attempt++) {
      try {
        build = await this.client.json<BkBuild>({ method: 'POST', path, body: createBody(request, opts) });
      } catch (err) {
        if (!(err instanceof AmbiguousRequestError)) throw err;
        // The create may have happened: look before creating again (spec §4.9).
        const found = await this.findByRequest(opts.org, opts.pipeline, request.id);
        if (found) return this.adopt(request.id, found, 'found after an ambiguous create');
        if (attempt >= CREATE_ATTEMPTS)
          throw new RetryableError(
            `${err.message}; no build with this request id exists, so it will be created later`,
          );
        await sleep(250 * 2 ** attempt);
      }
    }
    this.store.created(request.id, build);
    this.o.log.info(
      { request: request.id, org: opts.org, pipeline: opts.pipeline, number: build.number },
      'Buildkite build created',
    );
    return `${opts.org}/${opts.pipeline}/${build.number}`;
  }

  async status(buildId: string): Promise<BuildStatus> {
    const row = this.row(buildId);
    if (row.final) return buildStatus(row.final);
    const now = Date.now();
    const news = row.stateAt > row.checkedAt;
    const fresh = now - row.checkedAt < 2000;
    const known: BkBuild = {
      id: row.buildUuid ?? '',
      number: row.number!,
      state: row.state ?? 'scheduled',
      blocked: row.blocked,
      web_url: row.webUrl ?? undefined,
      started_at: row.startedAt,
    };
    if (!isTerminalBuild(known)) {
      // Webhook news is reported without an API call; so is a state fetched moments ago
      // (creation). `checkedAt` moves only on news or a fetch, so polling resumes after 2 s.
      if (news) this.store.checked(row.requestId, now);
      if (news || fresh) return buildStatus(known);
    }
    const build = await this.getBuild(row);
    this.store.setState(row.requestId, build, true);
    if (isTerminalBuild(build)) this.store.setFinal(row.requestId, build);
    return buildStatus(build);
  }

  /**
   * When the dispatcher should look again: soon after creation (webhooks usually come first),
   * then every poll interval, stretched while the request budget is under pressure.
   */
  pollAfterMs(buildId: string): number {
    const row = this.store.byNumber(...splitBuildId(buildId));
    const age = row ? Date.now() - row.stateAt : Number.POSITIVE_INFINITY;
    const base = age < 60_000 ? Math.min(this.o.pollIntervalMs, 10_000) : this.o.pollIntervalMs;
    return Math.round(base * (1 + 3 * this.client.budget.pressure()));
  }

  async cancel(buildId: string): Promise<void> {
    const row = this.row(buildId);
    try {
      const build = await this.client.json<BkBuild>({
        method: 'PUT',
        path: `${buildPath(row)}/cancel`,
      });
      this.store.setState(row.requestId, build, false);
    } catch (err) {
      // 422: the build is past cancelling (already finished or being cancelled).
      if (err instanceof BuildkiteApiError && err.status === 422) return;
      throw err;
    }
    this.o.onProgress?.(row.requestId);
  }

  /** A verified webhook: stores the build's newer state; true when it was one of ours. */
  onWebhook(ev: WebhookEvent): boolean {
    const build = ev.build;
    if (!ev.event.startsWith('build.') || !build || typeof build.state !== 'string') return false;
    const requestId = build.meta_data?.[REQUEST_ID_KEY];
    let row = requestId ? this.store.get(requestId) : undefined;
    if (!row && typeof build.id === 'string') row = this.store.byUuid(build.id);
    if (!row || row.final) return row !== undefined;
    if (row.phase === 'creating' && typeof build.number === 'number')
      this.store.created(row.requestId, build);
    // Delivery order is not guaranteed: a stale non-terminal event never undoes a terminal state.
    const stored = { state: row.state ?? '', blocked: row.blocked };
    if (isTerminalBuild(stored) && !isTerminalBuild(build) && !build.finished_at) return true;
    this.store.setState(row.requestId, { ...build, started_at: convertTime(build.started_at) }, false);
    this.o.onProgress?.(row.requestId);
    return true;
  }

  async *logs(buildId: string, signal: AbortSignal, options: LogOptions = {}): AsyncIterable<LogLine> {
    const row = this.row(buildId);
    const jobs = new Map<string, JobLog>();
    let step = 0;
    let lastFetch = 0;
    for (;;) {
      if (signal.aborted) return;
      const current = this.store.get(row.requestId)!;
      const final = current.final;
      const watched = options.watched?.() ?? false;
      const due = Date.now() - lastFetch >= (this.o.logPollMs ?? 3000);
      if (!final && !(watched && due)) {
        await pause(500, signal);
        continue;
      }
      lastFetch = Date.now();
      const build = final ?? (await this.getBuild(current));
      if (!final && isTerminalBuild(build)) {
        this.store.setState(row.requestId, build, false);
        this.store.setFinal(row.requestId, build);
        this.o.onProgress?.(row.requestId);
      }
      // Jobs are streamed strictly in order, so a replay after a restart yields the same lines.
      for (const job of scriptJobs(build)) {
        let log = jobs.get(job.id);
        if (!log) {
          if (!STARTED.has(job.state) && !TERMINAL_JOB.has(job.state)) break;
          log = {
            step: step++,
            have: 0,
            splitter: new LogLineSplitter(),
            started: false,
            ended: false,
            ranges: true,
          };
          jobs.set(job.id, log);
        }
        if (log.ended) continue;
        const control = {
          content: job.name || job.label || job.command || job.id,
          step_id: log.step,
          step_kind: 1 as const,
          ...(job.command ? { step_command: job.command } : {}),
        };
        if (!log.started) {
          log.started = true;
          yield { kind: 'control', time: new Date().toISOString(), ...control, step_status: 'start' };
        }
        const done = TERMINAL_JOB.has(job.state);
        if (done) await this.settle(job, signal);
        for (const line of await this.fetchLog(current, job, log, done, signal))
          yield dataLine(line, log.step);
        if (!done) break;
        for (const line of log.splitter.flush()) yield dataLine(line, log.step);
        log.ended = true;
        yield { kind: 'control', time: new Date().toISOString(), ...control, step_status: 'end' };
      }
      if (final) return;
    }
  }

  /** Waits out the agent's upload lag after a job ended (bounded, whatever the clocks say). */
  private async settle(job: BkJob, signal: AbortSignal): Promise<void> {
    const settleMs = this.o.logSettleMs ?? 2000;
    const end = Date.parse(job.finished_at ?? '');
    if (!Number.isFinite(end)) return;
    const wait = Math.min(settleMs, end + settleMs - Date.now());
    if (wait > 0) await pause(wait, signal);
  }

  /** New bytes of a job's log: the whole log once the job is done, else an increment. */
  private async fetchLog(
    row: BuildRow,
    job: BkJob,
    log: JobLog,
    done: boolean,
    signal: AbortSignal,
  ): Promise<ParsedLine[]> {
    const path = `${buildPath(row)}/jobs/${job.id}/log`;
    if (!done && log.ranges) {
      const increment = await this.increment(path, log);
      if (increment) return log.splitter.push(increment);
    }
    let res: BkResponse | undefined;
    // A job that ran but whose log reads empty is still uploading: ask again, a few times.
    for (let attempt = 0; attempt < (done && job.started_at ? 6 : 1); attempt++) {
      if (attempt > 0) await pause(1000, signal);
      try {
        res = await this.client.request({ method: 'GET', path, headers: { accept: 'text/plain' } });
      } catch (err) {
        if (err instanceof NotFoundError) return [];
        throw err;
      }
      if (res.body.length > 0 || signal.aborted) break;
    }
    return log.splitter.push(skip(res!.body, log));
  }

  /**
   * New bytes by HEAD + suffix Range (spec §7.3 A). Undefined when the API refuses HEAD or
   * Range (older deployments): `log.ranges` goes false and the caller refetches in full (B).
   */
  private async increment(path: string, log: JobLog): Promise<Buffer | undefined> {
    const refused = (err: unknown) => {
      if (err instanceof BuildkiteApiError && [400, 405, 406, 501].includes(err.status)) return undefined;
      throw err;
    };
    const head = await this.client.request({ method: 'HEAD', path }).catch(refused);
    if (!head) {
      log.ranges = false;
      return undefined;
    }
    const total = Number(header(head, 'content-length') ?? 0);
    if (total <= log.have) return Buffer.alloc(0);
    const res = await this.client
      .request({
        method: 'GET',
        path,
        headers: { accept: 'text/plain', range: `bytes=-${total - log.have}` },
      })
      .catch((err: unknown) => {
        if (err instanceof BuildkiteApiError && err.status === 416) return null; // still empty
        return refused(err);
      });
    if (res === null) return Buffer.alloc(0);
    if (!res) {
      log.ranges = false;
      return undefined;
    }
    return res.status === 206 ? this.rangeBody(res, log) : skip(res.body, log);
  }

  /** The part of a suffix-range answer after what was already read (spec §7.3 A). */
  private rangeBody(res: BkResponse, log: JobLog): Buffer {
    const m = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(header(res, 'content-range') ?? '');
    if (!m) return skip(res.body, log);
    const start = Number(m[1]);
    const total = Number(m[3]);
    if (start > log.have) return Buffer.alloc(0); // grew in between: the next round asks again
    const body = res.body.subarray(log.have - start);
    log.have = total;
    return body;
  }

  private async getBuild(row: BuildRow): Promise<BkBuild> {
    this.store.checked(row.requestId);
    return this.client.json<BkBuild>({
      method: 'GET',
      path: buildPath(row),
      query: [['exclude_pipeline', 'true']],
    });
  }

  private async findByRequest(
    org: string,
    pipeline: string,
    requestId: string,
  ): Promise<BkBuild | undefined> {
    const builds = await this.client.json<BkBuild[]>({
      method: 'GET',
      path: `/organizations/${org}/pipelines/${pipeline}/builds`,
      query: [
        [`meta_data[${REQUEST_ID_KEY}]`, requestId],
        ['exclude_jobs', 'true'],
        ['exclude_pipeline', 'true'],
      ],
    });
    // Only an exact match: an answer the filter did not narrow may hold anyone's builds.
    return builds.find((b) => b.meta_data?.[REQUEST_ID_KEY] === requestId);
  }

  private adopt(requestId: string, build: BkBuild, why: string): string {
    this.store.created(requestId, build);
    const row = this.store.get(requestId)!;
    this.o.log.info({ request: requestId, number: build.number }, `Buildkite build ${why}`);
    return buildIdOf(row);
  }

  buildUrl(buildId: string): string | undefined {
    const m = /^([^/]+)\/([^/]+)\/(\d+)$/.exec(buildId);
    const url = m ? this.store.byNumber(m[1]!, m[2]!, Number(m[3]))?.webUrl : undefined;
    return url && /^https?:\/\//.test(url) ? url : undefined;
  }

  budgetUsed(): number {
    return this.client.budget.pressure();
  }

  prune(beforeMs: number, limit: number): number {
    return this.store.pruneFinished(beforeMs, limit);
  }

  private row(buildId: string): BuildRow {
    const row = this.store.byNumber(...splitBuildId(buildId));
    if (!row) throw new NotFoundError(`Buildkite build ${buildId} is not one treadle started`);
    return row;
  }
}

interface JobLog {
  step: number;
  have: number;
  splitter: LogLineSplitter;
  started: boolean;
  ended: boolean;
  /** False once the API refused a suffix range: full refetches from then on. */
  ranges: boolean;
}

const STARTED = new Set(['running', 'canceling', 'timing_out']);
const TERMINAL_JOB = new Set([
  'passed',
  'failed',
  'canceled',
  'timed_out',
  'expired',
  'skipped',
  'broken',
  'finished',
]);

function scriptJobs(build: BkBuild): BkJob[] {
  return (build.jobs ?? []).filter((j) => j.type === 'script' && j.retried !== true);
}

/** The bytes of a full log after what was already read (spec §7.3 B). */
function skip(body: Buffer, log: JobLog): Buffer {
  const fresh = body.length > log.have ? body.subarray(log.have) : Buffer.alloc(0);
  log.have = Math.max(log.have, body.length);
  return fresh;
}

function dataLine(line: ParsedLine, step: number): LogLine {
  const time = new Date(line.timeMs ?? Date.now()).toISOString();
  return { kind: 'data', content: line.text, time, step_id: step, stream: 'stdout' };
}

function buildIdOf(row: BuildRow): string {
  return `${row.org}/${row.pipeline}/${row.number}`;
}

function splitBuildId(buildId: string): [string, string, number] {
  const m = /^([^/]+)\/([^/]+)\/(\d+)$/.exec(buildId);
  if (!m)
    throw new NotFoundError(`${JSON.stringify(buildId)} is not a Buildkite build id (org/pipeline/number)`);
  return [m[1]!, m[2]!, Number(m[3])];
}

function buildPath(row: BuildRow): string {
  return `/organizations/${row.org}/pipelines/${row.pipeline}/builds/${row.number}`;
}

function createBody(request: BuildRequest, opts: ReturnType<typeof readOptions>): Record<string, unknown> {
  const [knot = '', rkey = '', ...rest] = request.id.split('/');
  const workflow = rest.join('/') || request.workflow.name;
  const branch = opts.branch ?? branchOf(request.head.ref) ?? 'main';
  const trigger = request.metadata.trigger ?? 'push';
  const body: Record<string, unknown> = {
    commit: request.head.sha || 'HEAD',
    branch,
    message: opts.message ?? `${request.repo.name}: ${workflow} (${trigger} ${request.head.ref || branch})`,
    env: {
      ...opts.env,
      ...request.env,
      TANGLED_REPO: `${request.repo.did}/${request.repo.name}`,
      TANGLED_REPO_CLONE_URL: request.repo.cloneUrl,
      TANGLED_KNOT: request.repo.knot,
      TANGLED_REF: request.head.ref,
      TANGLED_SHA: request.head.sha,
      TANGLED_PIPELINE: request.metadata.pipeline ?? '',
      TANGLED_WORKFLOW: workflow,
      TANGLED_TRIGGER: trigger,
      TREADLE_REQUEST_ID: request.id,
    },
    meta_data: {
      ...opts.metaData,
      [REQUEST_ID_KEY]: request.id,
      'treadle:knot': knot,
      'treadle:rkey': rkey,
      'treadle:workflow': workflow,
    },
  };
  if (request.base) {
    body.pull_request_base_branch = branchOf(request.base.ref) ?? request.base.ref;
    body.pull_request_repository = request.repo.cloneUrl;
  }
  return body;
}

function branchOf(ref: string): string | undefined {
  return ref.startsWith('refs/heads/') ? ref.slice('refs/heads/'.length) : undefined;
}

/** Webhook times are `YYYY-MM-DD HH:MM:SS UTC` (spec §8.4); REST uses ISO. Stored as ISO. */
function convertTime(value: string | null | undefined): string | null {
  if (!value) return null;
  const m = /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2}) UTC$/.exec(value);
  return m ? `${m[1]}T${m[2]}Z` : value;
}

async function pause(ms: number, signal: AbortSignal): Promise<void> {
  try {
    await sleep(ms, undefined, { signal });
  } catch {
    // aborted: the caller checks the signal
  }
}
