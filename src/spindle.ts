/**
 * The composition root: the capabilities of the daemon, as a list of modules in start order.
 * Discovery decides which repos are served and so which knots to follow; knot frames and pull
 * records go through the durable queue to intake, dispatch and the status writer; every status
 * reaches `/events` and the `workflow.status` topic in one transaction; runners' logs go to the
 * log store; `/events`, `/logs` and `sh.tangled.ci.*` serve the appview; greenness records which
 * commits are green and landing pushes to configured targets.
 */
import type { BuildRunner } from '../providers/runner.ts';
import { createCi } from './ci/module.ts';
import type { AppContext } from './context.ts';
import { createDiscovery } from './discovery/module.ts';
import { createEvents } from './events/module.ts';
import { createGreenness } from './greenness/module.ts';
import { createKnots } from './knots/module.ts';
import { createLanding } from './landing/module.ts';
import { createLogs } from './logs/module.ts';
import { createMetricsModule } from './metrics/module.ts';
import type { Module } from './module.ts';
import { createPipelines } from './pipelines/module.ts';
import { createRunnerSet } from './pipelines/runners.ts';
import { createRetention } from './retention/module.ts';
import { createRuns } from './runs/module.ts';
import { createSecrets } from './secrets/module.ts';
import { createUi } from './ui/module.ts';

export interface SpindleOptions {
  /** Replaces the configured runners (tests, the benchmark). */
  runners?: Map<string, BuildRunner>;
  knotBackoffMs?: { min: number; max: number };
  jetstreamBackoffMs?: { min: number; max: number };
  pingIntervalMs?: number;
}

/** Builds every capability; throws ConfigError when the engine map names an unknown runner. */
export function createSpindle(ctx: AppContext, options: SpindleOptions = {}): Module[] {
  const pingIntervalMs = options.pingIntervalMs ?? ctx.config.pingIntervalMs;
  const runners = createRunnerSet(ctx, options.runners);
  const secrets = createSecrets(ctx);
  const logs = createLogs(ctx, { runners: runners.runners, secrets: secrets.runSecrets, pingIntervalMs });
  const pipelines = createPipelines(ctx, { runners, logs: logs.collector, secrets: secrets.runSecrets });
  const runs = createRuns(ctx, { builder: pipelines.builder, starter: pipelines.starter });
  const ci = createCi(ctx, { fetcher: pipelines.fetcher, collector: logs.collector, pingIntervalMs });
  const events = createEvents(ctx, { pingIntervalMs });
  const greenness = createGreenness(ctx);
  const landing = createLanding(ctx);
  const knots = createKnots(ctx, { backoffMs: options.knotBackoffMs });
  const discovery = createDiscovery(ctx, {
    knots,
    pulls: pipelines.pulls,
    backoffMs: options.jetstreamBackoffMs,
  });
  // Started in this order (log collection resumes before knots and Jetstream bring new work),
  // stopped in reverse (network inputs first, then the servers, then the runners).
  const metrics = createMetricsModule(ctx);
  const retention = createRetention(ctx, { runners: runners.runners });
  const ui = createUi(ctx, { greenness, knots, landing, runners: runners.runners });
  return [
    runners.module,
    secrets,
    pipelines,
    greenness,
    landing,
    runs,
    ci,
    events,
    logs,
    metrics,
    retention,
    ui,
    knots,
    discovery,
  ];
}
