/**
 * The BuildRunner contract: the CI-facing side of treadle. A runner takes one workflow run,
 * reports its state, cancels it and streams its logs in the spindle's LogLine shape.
 */

/** A run's state as the runner sees it. */
export type BuildState = 'accepted' | 'running' | 'succeeded' | 'failed' | 'timed_out' | 'cancelled';

export const TERMINAL_STATES: ReadonlySet<BuildState> = new Set([
  'succeeded',
  'failed',
  'timed_out',
  'cancelled',
]);

import type { WireStatus } from '../src/pipelines/pipeline.ts';

export type { WireStatus };

const WIRE: Record<BuildState, WireStatus> = {
  accepted: 'pending',
  running: 'running',
  succeeded: 'success',
  failed: 'failed',
  timed_out: 'timeout',
  cancelled: 'cancelled',
};

export function wireStatus(state: BuildState): WireStatus {
  return WIRE[state];
}

export interface BuildStatus {
  state: BuildState;
  /** Where a person can look at the build, if the runner has such a page. */
  url?: string;
  exitCode?: number;
  /** Why the build failed, in words (shown to users). */
  error?: string;
}

/** One log line in the spindle's wire shape (spindle protocol §9.2); key names are the wire's. */
export interface LogLine {
  kind: 'data' | 'control';
  content: string;
  /** RFC 3339. */
  time: string;
  /** 0-based index into the workflow's step list, system steps included. */
  step_id: number;
  stream?: 'stdout' | 'stderr';
  step_status?: 'start' | 'end';
  /** 1 for a user step; omitted (0) for a system step. */
  step_kind?: 1;
  step_command?: string;
}

export interface BuildRequest {
  /** Stable for one workflow run (`knot/rkey/workflow`): triggering it twice starts one build. */
  id: string;
  repo: { did: string; name: string; knot: string; cloneUrl: string };
  /** The change being verified. */
  head: { ref: string; sha: string };
  /** What it is measured against (pull requests); the sha when known. */
  base?: { ref: string; sha?: string };
  workflow: {
    /** File name, e.g. `build.yml`. */
    name: string;
    /** The workflow file's YAML text. */
    raw: string;
    engine: string;
    /** This runner's options from the workflow's `treadle:` block (already parsed YAML). */
    options: Record<string, unknown>;
  };
  /** Secrets and variables for the build's environment. */
  env: Record<string, string>;
  metadata: Record<string, string>;
}

export interface LogOptions {
  /** Whether someone is reading the log live; a runner that pays per fetch only tails then. */
  watched?: () => boolean;
}

export interface BuildRunner {
  readonly name: string;
  /** True when the runner pushes progress itself (webhooks), so the dispatcher need not poll. */
  readonly pushesProgress: boolean;
  /** Starts (or finds) the build for `request.id`; returns its id promptly. */
  trigger(request: BuildRequest): Promise<string>;
  /** The build's state; throws NotFoundError when the runner no longer knows the build. */
  status(buildId: string): Promise<BuildStatus>;
  /** Asks for cancellation; returns promptly. */
  cancel(buildId: string): Promise<void>;
  /** When to poll `status` next (ms); the dispatcher's default when absent. */
  pollAfterMs?(buildId: string): number;
  /** The build's log lines; ends once the build is terminal and its output drained. */
  logs(buildId: string, signal: AbortSignal, options?: LogOptions): AsyncIterable<LogLine>;
  /** A link to the build in the runner's own web UI, when it has one (the dashboard shows it). */
  buildUrl?(buildId: string): string | undefined;
  /** The share of the runner's API request budget spent in the current window, 0–1. */
  budgetUsed?(): number;
  /**
   * Retention: forgets up to `limit` of the runner's own records of finished builds created
   * before `beforeMs` (never one still running); returns how many. Called with the runs window.
   */
  prune?(beforeMs: number, limit: number): number;
}
