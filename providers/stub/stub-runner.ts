/**
 * The stub runner: no real work. A build follows its script — accepted, running, then the
 * scripted outcome after the scripted duration — and its logs name, per step, the command a
 * real runner would have run. For development, demos and tests.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { NotFoundError } from '../../src/errors.ts';
import type { BuildRequest, BuildRunner, BuildStatus, LogLine } from '../runner.ts';
import { readStubScript, type StubScript } from './stub-script.ts';

interface StubBuild {
  id: string;
  requestId: string;
  startedAt: number;
  script: StubScript;
  /** The run's environment (secrets included): `$NAME` in a step's command expands from it. */
  env: Record<string, string>;
  cancelledAt?: number;
}

export class StubRunner implements BuildRunner {
  readonly name: string;
  readonly pushesProgress = false;
  private readonly builds = new Map<string, StubBuild>();
  private readonly byRequest = new Map<string, string>();
  private readonly now: () => number;

  constructor(options: { name?: string; now?: () => number } = {}) {
    this.name = options.name ?? 'stub';
    this.now = options.now ?? Date.now;
  }

  async trigger(request: BuildRequest): Promise<string> {
    const existing = this.byRequest.get(request.id);
    if (existing) return existing;
    const script = readStubScript(request.workflow.raw, request.workflow.options);
    const build: StubBuild = {
      id: `stub-${randomUUID()}`,
      requestId: request.id,
      startedAt: this.now(),
      script,
      env: { ...request.env },
    };
    this.builds.set(build.id, build);
    this.byRequest.set(request.id, build.id);
    return build.id;
  }

  async status(buildId: string): Promise<BuildStatus> {
    const build = this.get(buildId);
    const now = this.now();
    if (build.cancelledAt !== undefined) return { state: 'cancelled', error: 'cancelled' };
    const { script } = build;
    if (now - build.startedAt >= script.durationMs) {
      if (script.outcome === 'succeeded') return { state: 'succeeded', exitCode: 0 };
      return { state: script.outcome, exitCode: script.exitCode, error: outcomeError(script) };
    }
    return { state: now - build.startedAt >= runningAfter(script) ? 'running' : 'accepted' };
  }

  async cancel(buildId: string): Promise<void> {
    const build = this.get(buildId);
    const done = this.now() - build.startedAt >= build.script.durationMs;
    if (!done) build.cancelledAt ??= this.now();
  }

  async *logs(buildId: string, signal: AbortSignal): AsyncIterable<LogLine> {
    const build = this.get(buildId);
    const { steps, durationMs } = build.script;
    const slice = steps.length > 0 ? durationMs / steps.length : durationMs;
    for (const [i, step] of steps.entries()) {
      const due = build.startedAt + runningAfter(build.script) + i * slice;
      if (!(await this.waitUntil(due, build, signal))) return;
      const control = { content: step.name, step_id: i, step_kind: 1 as const, step_command: step.command };
      yield { kind: 'control', time: stamp(), ...control, step_status: 'start' };
      yield {
        kind: 'data',
        content: `[stub] would run: ${step.command}`,
        time: stamp(),
        step_id: i,
        stream: 'stdout',
      };
      const expanded = expandEnv(step.command, build.env);
      if (expanded !== step.command)
        yield {
          kind: 'data',
          content: `[stub] with env: ${expanded}`,
          time: stamp(),
          step_id: i,
          stream: 'stdout',
        };
      const last = i === steps.length - 1;
      if (last && build.script.outcome !== 'succeeded') {
        if (!(await this.waitUntil(build.startedAt + durationMs, build, signal))) return;
        yield {
          kind: 'data',
          content: outcomeError(build.script),
          time: stamp(),
          step_id: i,
          stream: 'stderr',
        };
      }
      yield { kind: 'control', time: stamp(), ...control, step_status: 'end' };
    }
    await this.waitUntil(build.startedAt + durationMs, build, signal);
  }

  /** Sleeps until `at`; false if the build was cancelled or the reader went away meanwhile. */
  private async waitUntil(at: number, build: StubBuild, signal: AbortSignal): Promise<boolean> {
    while (!signal.aborted && build.cancelledAt === undefined && this.now() < at) {
      try {
        await sleep(Math.min(50, at - this.now()), undefined, { signal });
      } catch {
        return false;
      }
    }
    return !signal.aborted && build.cancelledAt === undefined;
  }

  private get(buildId: string): StubBuild {
    const build = this.builds.get(buildId);
    if (!build)
      throw new NotFoundError(`stub build ${buildId} is unknown (stub builds do not survive a restart)`);
    return build;
  }
}

function runningAfter(script: StubScript): number {
  return Math.min(200, Math.floor(script.durationMs / 5));
}

function outcomeError(script: StubScript): string {
  if (script.outcome === 'timed_out') return 'workflow timed out';
  if (script.outcome === 'cancelled') return 'cancelled';
  return `exit code ${script.exitCode}`;
}

function stamp(): string {
  return new Date().toISOString();
}

/** `$NAME` and `${NAME}` replaced from `env` (unknown names are left as written). */
export function expandEnv(command: string, env: Record<string, string>): string {
  return command.replace(/\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))/g, (whole, a, b) => {
    const name = (a ?? b) as string;
    return Object.hasOwn(env, name) ? env[name]! : whole;
  });
}
