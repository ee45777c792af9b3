/** The configured BuildRunners by name, and the routing table built from them and BOBBIN_ENGINES. */
import type { BuildRunner } from '../../providers/runner.ts';
import { StubRunner } from '../../providers/stub/stub-runner.ts';
import type { Config } from '../config.ts';
import { ConfigError } from '../errors.ts';
import type { RoutingTable } from './routing.ts';

export function createRunners(_config: Config): Map<string, BuildRunner> {
  const runners = new Map<string, BuildRunner>();
  const stub = new StubRunner();
  runners.set(stub.name, stub);
  return runners;
}

/** Fails with a ConfigError when BOBBIN_ENGINES names a runner that is not configured. */
export function routingTable(config: Config, runners: ReadonlyMap<string, BuildRunner>): RoutingTable {
  const problems = Object.entries(config.engines)
    .filter(([, runner]) => !runners.has(runner))
    .map(
      ([engine, runner]) =>
        `BOBBIN_ENGINES: engine ${engine} maps to runner ${runner}, which is not configured (configured: ${[...runners.keys()].join(', ')})`,
    );
  if (problems.length > 0)
    throw new ConfigError(`invalid configuration:\n  ${problems.join('\n  ')}`, { problems });
  return { runners: new Set(runners.keys()), engines: config.engines };
}
