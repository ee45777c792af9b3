/** The configured BuildRunners by name, and the routing table built from them and TREADLE_ENGINES. */
import { BuildkiteRunner } from '../../providers/buildkite/buildkite-runner.ts';
import { BuildkiteClient } from '../../providers/buildkite/client.ts';
import type { BuildRunner } from '../../providers/runner.ts';
import { StubRunner } from '../../providers/stub/stub-runner.ts';
import type { Config } from '../config.ts';
import type { Db } from '../db/database.ts';
import { ConfigError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { RoutingTable } from './routing.ts';

export interface RunnerDeps {
  db: Db;
  log: Logger;
  /** A runner learnt (e.g. from a webhook) that the run with this request id changed. */
  onProgress: (requestId: string) => void;
}

/** The stub runner always; the Buildkite runner when TREADLE_BUILDKITE_TOKEN is set. */
export function createRunners(config: Config, deps: RunnerDeps): Map<string, BuildRunner> {
  const runners = new Map<string, BuildRunner>();
  const stub = new StubRunner();
  runners.set(stub.name, stub);
  const bk = config.buildkite;
  if (bk.token) {
    const log = deps.log.child({ runner: 'buildkite' });
    const client = new BuildkiteClient({
      apiUrl: bk.apiUrl,
      token: bk.token,
      requestsPerMinute: bk.requestsPerMinute,
      log,
    });
    const runner = new BuildkiteRunner({
      client,
      db: deps.db,
      log,
      org: bk.org,
      pollIntervalMs: bk.pollIntervalMs,
      onProgress: deps.onProgress,
    });
    runners.set(runner.name, runner);
  }
  return runners;
}

/** The names createRunners would configure (without building anything). */
export function configuredRunners(config: Config): string[] {
  return config.buildkite.token ? ['stub', 'buildkite'] : ['stub'];
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
