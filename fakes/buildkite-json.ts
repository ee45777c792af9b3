/**
 * The fake Buildkite's serialisers (buildkite spec §4, §6, §7.2, §8): pure functions from a
 * snapshot of a build to the exact JSON Buildkite sends, key order included, in the REST form
 * (ISO timestamps with milliseconds) and the webhook form (`YYYY-MM-DD HH:MM:SS UTC`, no `jobs`,
 * `blocked_state` and `tag`). Checked against fixtures F1–F4 in `buildkite-json.test.ts`.
 */

export interface Origins {
  /** `https://api.buildkite.com` in production; the fake's own origin in tests. */
  api: string;
  /** `https://buildkite.com`. */
  web: string;
}

export interface UserSnap {
  id: string;
  name: string;
  email: string;
  avatarUrl: string;
  createdAt: number;
}

export interface AgentSnap {
  id: string;
  name: string;
  connectionState: string;
  hostname: string;
  ipAddress: string;
  userAgent: string;
}

export interface PipelineSnap {
  id: string;
  slug: string;
  name: string;
  repository: string;
  defaultBranch: string;
  providerSettings: Record<string, unknown>;
  badgeToken: string;
  createdAt: number;
  counts: {
    scheduledBuilds: number;
    runningBuilds: number;
    scheduledJobs: number;
    runningJobs: number;
    waitingJobs: number;
  };
}

export interface JobSnap {
  id: string;
  type: 'script' | 'waiter' | 'manual';
  name: string | null;
  stepKey: string | null;
  stepId: string;
  state: string;
  command: string | null;
  softFailed: boolean;
  exitStatus: number | null;
  signalReason: string | null;
  artifactPaths: string | null;
  agent: AgentSnap | null;
  createdAt: number;
  scheduledAt: number;
  runnableAt: number | null;
  startedAt: number | null;
  finishedAt: number | null;
  retried: boolean;
  retriedInJobId: string | null;
  retriesCount: number | null;
  retrySource: { job_id: string; retry_type: string } | null;
}

export interface BuildSnap {
  id: string;
  org: string;
  number: number;
  state: string;
  cancelReason: string | null;
  blocked: boolean;
  blockedState: string | null;
  message: string | null;
  commit: string;
  branch: string;
  env: Record<string, unknown>;
  author: unknown;
  creator: UserSnap;
  /** Every job, retried attempts included. */
  jobs: JobSnap[];
  createdAt: number;
  scheduledAt: number;
  startedAt: number | null;
  failingAt: number | null;
  finishedAt: number | null;
  metaData: Record<string, string>;
  pullRequest: Record<string, unknown> | null;
  rebuiltFrom: { id: string; number: number; url: string } | null;
  pipeline: PipelineSnap;
}

export interface BuildJsonOptions {
  /** Leave out `jobs` (`exclude_jobs=true`, and every list row the caller asks so for). */
  excludeJobs?: boolean;
  excludePipeline?: boolean;
  /** Retried attempts too (`include_retried_jobs=true`). */
  includeRetried?: boolean;
  /** `job_states[]`: filters `jobs`, not `job_state_counts`. */
  jobStates?: string[];
  /** Get-one only. */
  jobStateCounts?: boolean;
}

const graphql = (type: string, id: string) => Buffer.from(`${type}---${id}`).toString('base64');
const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** `2024-06-25 00:42:37 UTC` (spec §8.4). */
export function webhookTime(ms: number | null): string | null {
  if (ms === null) return null;
  const text = new Date(ms).toISOString();
  return `${text.slice(0, 10)} ${text.slice(11, 19)} UTC`;
}

export function pipelineUrl(o: Origins, org: string, slug: string): string {
  return `${o.api}/v2/organizations/${org}/pipelines/${slug}`;
}

export function buildUrl(o: Origins, b: BuildSnap): string {
  return `${pipelineUrl(o, b.org, b.pipeline.slug)}/builds/${b.number}`;
}

export function jobLogUrl(o: Origins, b: BuildSnap, jobId: string): string {
  return `${buildUrl(o, b)}/jobs/${jobId}/log`;
}

function userJson(u: UserSnap, time: (ms: number) => string | null) {
  return {
    id: u.id,
    graphql_id: graphql('User', u.id),
    name: u.name,
    email: u.email,
    avatar_url: u.avatarUrl,
    created_at: time(u.createdAt),
  };
}

function agentJson(o: Origins, org: string, a: AgentSnap) {
  return {
    id: a.id,
    graphql_id: graphql('Agent', a.id),
    url: `${o.api}/v2/organizations/${org}/agents/${a.id}`,
    web_url: `${o.web}/organizations/${org}/agents/${a.id}`,
    name: a.name,
    connection_state: a.connectionState,
    hostname: a.hostname,
    ip_address: a.ipAddress,
    user_agent: a.userAgent,
  };
}

/** Jobs as a get or list shows them: latest attempts unless `includeRetried`, then `jobStates`. */
export function visibleJobs(b: BuildSnap, opts: BuildJsonOptions): JobSnap[] {
  return b.jobs
    .filter((j) => opts.includeRetried || !j.retried)
    .filter((j) => !opts.jobStates || opts.jobStates.length === 0 || opts.jobStates.includes(j.state));
}

export function jobJson(o: Origins, b: BuildSnap, j: JobSnap): Record<string, unknown> {
  if (j.type === 'waiter') {
    return {
      id: j.id,
      graphql_id: graphql('Job', j.id),
      type: 'waiter',
      state: j.state,
      step_key: j.stepKey,
    };
  }
  const build = buildUrl(o, b);
  const web = `${o.web}/${b.org}/${b.pipeline.slug}/builds/${b.number}`;
  return {
    id: j.id,
    graphql_id: graphql('Job', j.id),
    type: j.type,
    name: j.name,
    step_key: j.stepKey,
    step: { id: j.stepId, signature: null },
    priority: { number: 0 },
    agent_query_rules: ['queue=default'],
    state: j.state,
    build_url: build,
    web_url: `${web}#${j.id}`,
    log_url: `${build}/jobs/${j.id}/log`,
    raw_log_url: `${build}/jobs/${j.id}/log.txt`,
    artifacts_url: `${build}/jobs/${j.id}/artifacts`,
    command: j.command,
    soft_failed: j.softFailed,
    exit_status: j.exitStatus,
    signal: null,
    signal_reason: j.signalReason,
    broken_reason: null,
    artifact_paths: j.artifactPaths,
    agent: j.agent ? agentJson(o, b.org, j.agent) : null,
    created_at: iso(j.createdAt),
    scheduled_at: iso(j.scheduledAt),
    runnable_at: iso(j.runnableAt),
    started_at: iso(j.startedAt),
    finished_at: iso(j.finishedAt),
    expired_at: null,
    retried: j.retried,
    retried_in_job_id: j.retriedInJobId,
    retries_count: j.retriesCount,
    retry_source: j.retrySource,
    retry_type: j.retrySource?.retry_type ?? null,
    parallel_group_index: null,
    parallel_group_total: null,
    matrix: null,
    cluster_id: null,
    cluster_url: null,
    cluster_queue_id: null,
    cluster_queue_url: null,
  };
}

export function pipelineJson(
  o: Origins,
  org: string,
  p: PipelineSnap,
  form: 'rest' | 'webhook',
): Record<string, unknown> {
  const url = pipelineUrl(o, org, p.slug);
  const time = form === 'rest' ? iso : webhookTime;
  return {
    id: p.id,
    graphql_id: graphql('Pipeline', p.id),
    url,
    web_url: `${o.web}/${org}/${p.slug}`,
    name: p.name,
    slug: p.slug,
    repository: p.repository,
    default_branch: p.defaultBranch,
    provider: { id: 'github', webhook_url: '', settings: p.providerSettings },
    ...(form === 'rest'
      ? {
          skip_queued_branch_builds: false,
          skip_queued_branch_builds_filter: null,
          cancel_running_branch_builds: false,
          cancel_running_branch_builds_filter: null,
        }
      : {}),
    builds_url: `${url}/builds`,
    badge_url: `https://badge.buildkite.com/${p.badgeToken}.svg`,
    created_at: time(p.createdAt),
    scheduled_builds_count: p.counts.scheduledBuilds,
    running_builds_count: p.counts.runningBuilds,
    scheduled_jobs_count: p.counts.scheduledJobs,
    running_jobs_count: p.counts.runningJobs,
    waiting_jobs_count: p.counts.waitingJobs,
  };
}

/** The fields every build form starts with, in Buildkite's order. */
function buildHead(o: Origins, b: BuildSnap) {
  return {
    id: b.id,
    graphql_id: graphql('Build', b.id),
    url: buildUrl(o, b),
    web_url: `${o.web}/${b.org}/${b.pipeline.slug}/builds/${b.number}`,
    number: b.number,
    state: b.state,
    cancel_reason: b.cancelReason,
    blocked: b.blocked,
  };
}

/** A build as the REST API answers it (create, get, list rows). */
export function buildJson(o: Origins, b: BuildSnap, opts: BuildJsonOptions = {}): Record<string, unknown> {
  const out: Record<string, unknown> = {
    ...buildHead(o, b),
    message: b.message,
    commit: b.commit,
    branch: b.branch,
    env: b.env,
    source: 'api',
    author: b.author,
    creator: userJson(b.creator, iso),
  };
  if (!opts.excludeJobs) out.jobs = visibleJobs(b, opts).map((j) => jobJson(o, b, j));
  if (opts.jobStateCounts) {
    const counted = b.jobs.filter((j) => opts.includeRetried || !j.retried);
    const states: Record<string, number> = {};
    for (const j of counted) states[j.state] = (states[j.state] ?? 0) + 1;
    out.job_state_counts = { total: counted.length, states };
  }
  Object.assign(out, {
    created_at: iso(b.createdAt),
    scheduled_at: iso(b.scheduledAt),
    started_at: iso(b.startedAt),
    failing_at: iso(b.failingAt),
    finished_at: iso(b.finishedAt),
    meta_data: b.metaData,
    pull_request: b.pullRequest,
    merge_queue: null,
    rebuilt_from: b.rebuiltFrom,
  });
  if (!opts.excludePipeline) out.pipeline = pipelineJson(o, b.org, b.pipeline, 'rest');
  return out;
}

/** A build inside a webhook payload: no `jobs`, webhook timestamps, `blocked_state` and `tag`. */
export function webhookBuildJson(o: Origins, b: BuildSnap): Record<string, unknown> {
  return {
    ...buildHead(o, b),
    blocked_state: b.blockedState,
    message: b.message,
    commit: b.commit,
    branch: b.branch,
    tag: null,
    source: 'api',
    author: b.author,
    creator: userJson(b.creator, webhookTime),
    created_at: webhookTime(b.createdAt),
    scheduled_at: webhookTime(b.scheduledAt),
    started_at: webhookTime(b.startedAt),
    finished_at: webhookTime(b.finishedAt),
    meta_data: b.metaData,
    pull_request: b.pullRequest,
    rebuilt_from: b.rebuiltFrom,
  };
}

/** The exact bytes of a build (or job) webhook: `{"event",build,[job,]pipeline,sender}`. */
export function webhookBody(
  o: Origins,
  event: string,
  b: BuildSnap,
  sender: { id: string; name: string },
  job?: JobSnap,
): string {
  const body: Record<string, unknown> = { event, build: webhookBuildJson(o, b) };
  if (job) body.job = jobJson(o, b, job);
  body.pipeline = pipelineJson(o, b.org, b.pipeline, 'webhook');
  body.sender = sender;
  return JSON.stringify(body);
}

/**
 * The JSON log answer (§7.2). `header_times` are nanosecond integers beyond 2^53, so they are
 * written from BigInt text rather than through `JSON.stringify`.
 */
export function logJson(url: string, bytes: Buffer, headerTimesNs: bigint[]): string {
  const head = JSON.stringify({ url, content: bytes.toString('utf8'), size: bytes.length });
  return `${head.slice(0, -1)},"header_times":[${headerTimesNs.map(String).join(',')}]}`;
}

/**
 * Agent-style log bytes (§7.4): `ESC_bk;t=<ms>BEL` before each line, CRLF endings; header lines
 * (`~~~`, `---`, `+++`) also give a `header_times` entry in nanoseconds.
 */
export function agentLog(lines: Array<{ t: number; text: string }>): {
  bytes: Buffer;
  headerTimesNs: bigint[];
} {
  let text = '';
  const headerTimesNs: bigint[] = [];
  for (const { t, text: line } of lines) {
    text += `\x1b_bk;t=${t}\x07${line}\r\n`;
    if (/^(~~~|---|\+\+\+) /.test(line)) headerTimesNs.push(BigInt(t) * 1_000_000n);
  }
  return { bytes: Buffer.from(text, 'utf8'), headerTimesNs };
}
