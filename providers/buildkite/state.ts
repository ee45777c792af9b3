/**
 * Buildkite build and job states → a BuildStatus (buildkite spec §5). Pure.
 *
 * | Buildkite build                         | BuildState  | wire      | notes                                     |
 * |-----------------------------------------|-------------|-----------|-------------------------------------------|
 * | `creating`, `scheduled`                 | accepted    | pending   |                                           |
 * | `running`, `failing`, `canceling`       | running     | running   | failing/canceling are not terminal yet    |
 * | any state with `blocked: true`          | running     | running   | waits on a block step; resumable (§5.1)   |
 * | `passed`                                | succeeded   | success   | exit code 0                               |
 * | `failed`, a script job `timed_out`      | timed_out   | timeout   |                                           |
 * | `failed`                                | failed      | failed    | exit code of the first hard-failed job    |
 * | `canceled`                              | cancelled   | cancelled |                                           |
 * | `skipped`                               | cancelled   | cancelled | superseded by a newer build               |
 * | `not_run`                               | cancelled   | cancelled | every step was skipped or filtered out    |
 * | anything else (`waiting`, new states)   | accepted / running (by `started_at`) | | never terminal (§5.1)           |
 */
import type { BuildState, BuildStatus } from '../runner.ts';

export interface BkJob {
  id: string;
  type: string;
  name?: string | null;
  label?: string | null;
  command?: string | null;
  state: string;
  exit_status?: number | null;
  soft_failed?: boolean;
  retried?: boolean;
  started_at?: string | null;
  finished_at?: string | null;
}

export interface BkBuild {
  id: string;
  number: number;
  state: string;
  blocked?: boolean;
  web_url?: string;
  started_at?: string | null;
  finished_at?: string | null;
  meta_data?: Record<string, string> | null;
  jobs?: BkJob[];
}

const TERMINAL_BUILD = new Set(['passed', 'failed', 'canceled', 'skipped', 'not_run']);

/** Terminal = a finished state and not blocked (spec §5.1). */
export function isTerminalBuild(build: Pick<BkBuild, 'state' | 'blocked'>): boolean {
  return TERMINAL_BUILD.has(build.state) && build.blocked !== true;
}

export function buildStatus(build: BkBuild): BuildStatus {
  const url = build.web_url;
  const state = mapState(build);
  const status: BuildStatus = url ? { state, url } : { state };
  if (state === 'succeeded') status.exitCode = 0;
  if (state === 'failed' || state === 'timed_out') {
    const job = failedJob(build.jobs);
    if (job?.exit_status !== undefined && job.exit_status !== null) status.exitCode = job.exit_status;
    status.error = failureText(state, job);
  }
  if (state === 'cancelled') status.error = CANCEL_TEXT[build.state] ?? 'cancelled';
  return status;
}

const CANCEL_TEXT: Record<string, string> = {
  canceled: 'cancelled on Buildkite',
  skipped: 'skipped by Buildkite (a newer build superseded it)',
  not_run: 'not run: every step was skipped or filtered out on Buildkite',
};

function mapState(build: BkBuild): BuildState {
  if (build.blocked === true) return 'running';
  switch (build.state) {
    case 'creating':
    case 'scheduled':
      return 'accepted';
    case 'running':
    case 'failing':
    case 'canceling':
      return 'running';
    case 'passed':
      return 'succeeded';
    case 'failed':
      return scriptJobs(build.jobs).some((j) => j.state === 'timed_out') ? 'timed_out' : 'failed';
    case 'canceled':
    case 'skipped':
    case 'not_run':
      return 'cancelled';
    default:
      return build.started_at ? 'running' : 'accepted';
  }
}

function scriptJobs(jobs: BkJob[] | undefined): BkJob[] {
  return (jobs ?? []).filter((j) => j.type === 'script' && j.retried !== true);
}

/** The job that failed the build: timed out or failed without soft-fail, first in step order. */
function failedJob(jobs: BkJob[] | undefined): BkJob | undefined {
  const script = scriptJobs(jobs);
  return (
    script.find((j) => j.state === 'timed_out') ??
    script.find((j) => j.state === 'failed' && j.soft_failed !== true) ??
    script.find((j) => ['broken', 'expired', 'canceled'].includes(j.state))
  );
}

function failureText(state: BuildState, job: BkJob | undefined): string {
  if (!job) return state === 'timed_out' ? 'timed out on Buildkite' : 'failed on Buildkite';
  const name = job.name || job.label || job.command || job.id;
  if (job.state === 'timed_out') return `step "${name}" timed out on Buildkite`;
  if (job.exit_status !== undefined && job.exit_status !== null)
    return `step "${name}" failed with exit status ${job.exit_status}`;
  return `step "${name}" ${job.state} on Buildkite`;
}
