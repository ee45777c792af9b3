/**
 * The runners treadle can hand workflows to, as modules. Adding a runner touches only its
 * folder, its migration, its config rows and this list: the daemon builds each configured one
 * through a narrow `RunnerContext` (no access to the app's queue or database beyond its own
 * store and topics), mounts its routes, subscribes its consumers, and `treadle doctor` runs its
 * checks.
 */
import type { Hono } from 'hono';
import type { Config } from '../src/config.ts';
import type { Db } from '../src/db/database.ts';
import type { Logger } from '../src/logger.ts';
import type { ConsumerSpec } from '../src/module.ts';
import { buildkiteModule } from './buildkite/index.ts';
import type { BuildRunner } from './runner.ts';
import { stubModule } from './stub/index.ts';

export interface RunnerContext {
  config: Config;
  log: Logger;
  /**
   * Opens the runner's own store on the daemon's database. Its tables come from its migration,
   * and its SQL stays in its `*-store.ts`: nothing else in treadle reads them.
   */
  openStore<T>(open: (db: Db) => T): T;
  /** The run with this request id changed (e.g. a webhook said so): poll it now. */
  wake(requestId: string): void;
  /** Publishes on one of the runner's own topics, which must start with `<name>.`. */
  publish<T>(topic: string, partitionKey: string, id: string, payload: T): boolean;
  /** The runner's API use, for `/metrics` (labelled with the runner's name). */
  observe: RunnerObserver;
}

export interface RunnerObserver {
  /** One HTTP call to the runner's API and how it ended. */
  apiCall(outcome: 'ok' | 'error' | 'rate_limited'): void;
  /** Time spent waiting for the API budget before a call. */
  waited(seconds: number): void;
}

export interface RunnerParts {
  runner: BuildRunner;
  routes?(app: Hono): void;
  consumers?: ConsumerSpec[];
}

export type DoctorLine = ['ok' | 'warn' | 'FAIL', string];

export interface RunnerModule {
  readonly name: string;
  configured(config: Config): boolean;
  create(ctx: RunnerContext): RunnerParts;
  /** Routes answered even when the runner is not configured, to say so (e.g. webhooks: 503). */
  unconfiguredRoutes?(app: Hono, log: Logger): void;
  /** `treadle doctor`'s checks of this runner's settings and reachability. */
  doctor?(config: Config): Promise<DoctorLine[]>;
}

export const RUNNER_MODULES: readonly RunnerModule[] = [stubModule, buildkiteModule];
