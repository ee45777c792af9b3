/**
 * The configured BuildRunners, built from the runner modules of `providers/index.ts`, and the
 * routing table from them and TREADLE_ENGINES. Each runner gets a narrow context: its own
 * store, a way to wake its runs' dispatch, and its own topics.
 */
import { RUNNER_MODULES, type RunnerContext, type RunnerParts } from '../../providers/index.ts';
import type { BuildRunner } from '../../providers/runner.ts';
import type { Config } from '../config.ts';
import type { AppContext } from '../context.ts';
import { ConfigError, InvalidRequestError } from '../errors.ts';
import type { Module } from '../module.ts';
import type { RoutingTable } from './routing.ts';
import { DISPATCH_TOPIC } from './starter.ts';

export interface RunnerSet {
  runners: ReadonlyMap<string, BuildRunner>;
  routing: RoutingTable;
  module: Module;
}

/**
 * Every configured runner, or `override` (tests and benchmarks hand in their own). Throws a
 * ConfigError when TREADLE_ENGINES names a runner that is not configured.
 */
export function createRunnerSet(ctx: AppContext, override?: ReadonlyMap<string, BuildRunner>): RunnerSet {
  const parts = new Map<string, RunnerParts>();
  if (!override)
    for (const m of RUNNER_MODULES)
      if (m.configured(ctx.config)) parts.set(m.name, m.create(runnerContext(ctx, m.name)));
  const runners = override ?? new Map([...parts].map(([name, p]) => [name, p.runner]));
  const routing = routingTable(ctx.config, runners.keys());
  const log = ctx.log.child({ subsystem: 'runners' });
  const module: Module = {
    name: 'runners',
    consumers: [...parts.values()].flatMap((p) => p.consumers ?? []),
    routes(app) {
      for (const m of RUNNER_MODULES) {
        const p = parts.get(m.name);
        if (p) p.routes?.(app);
        else m.unconfiguredRoutes?.(app, log);
      }
    },
  };
  return { runners, routing, module };
}

function runnerContext(ctx: AppContext, name: string): RunnerContext {
  return {
    config: ctx.config,
    log: ctx.log,
    openStore: (open) => open(ctx.db),
    wake: (requestId) => ctx.queue.wake(DISPATCH_TOPIC, requestId),
    publish(topic, partitionKey, id, payload) {
      if (!topic.startsWith(`${name}.`))
        throw new InvalidRequestError(
          `runner ${name} may only publish on its own topics (${name}.…), not ${topic}`,
        );
      return ctx.queue.publish(topic, partitionKey, id, payload).published;
    },
    observe: {
      apiCall: (outcome) => ctx.metrics.runnerApiCalls.inc({ runner: name, outcome }),
      waited: (seconds) => ctx.metrics.runnerRateLimitWait.inc({ runner: name }, seconds),
    },
  };
}

/** The names of the runners the config enables (without building anything). */
export function configuredRunners(config: Config): string[] {
  return RUNNER_MODULES.filter((m) => m.configured(config)).map((m) => m.name);
}

/** Fails with a ConfigError when TREADLE_ENGINES names a runner that is not configured. */
export function routingTable(config: Config, names: Iterable<string>): RoutingTable {
  const runners = new Set(names);
  const problems = Object.entries(config.engines)
    .filter(([, runner]) => !runners.has(runner))
    .map(
      ([engine, runner]) =>
        `TREADLE_ENGINES: engine ${engine} maps to runner ${runner}, which is not configured (configured: ${[...runners.keys()].join(', ')})`,
    );
  if (problems.length > 0)
    throw new ConfigError(`invalid configuration:\n  ${problems.join('\n  ')}`, { problems });
  return { runners, engines: config.engines };
}
