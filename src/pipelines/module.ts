/**
 * Pipelines: intake of knots' pipelines, pushes and pull requests, the one pipeline builder,
 * the starter, dispatch to runners, and the status writer that publishes `pipeline.started`
 * and `workflow.status`.
 */
import { dirname, join } from 'node:path';
import type { AppContext } from '../context.ts';
import { WorkflowFetcher } from '../git/workflow-fetcher.ts';
import { DefaultBranches } from '../knots/default-branch.ts';
import { subsystemLogger } from '../logger.ts';
import type { LogCollection } from '../logs/module.ts';
import { consumer, type Module } from '../module.ts';
import type { RunSecrets } from '../secrets/module.ts';
import { Dispatcher } from './dispatch.ts';
import { INTAKE_TOPIC, Intake, type IntakeMessage } from './intake.ts';
import { PipelineBuilder } from './pipeline-builder.ts';
import { PULL_TOPIC, PullIntake, type PullMessage } from './pull-intake.ts';
import { PUSH_TOPIC, PushIntake, type PushMessage } from './push-intake.ts';
import type { RunnerSet } from './runners.ts';
import { DISPATCH_TOPIC, type DispatchMessage, PipelineStarter } from './starter.ts';
import { StatusWriter } from './status-writer.ts';

/** Deliveries of a message whose handler reads from the network, before it is dead-lettered. */
const REMOTE_ATTEMPTS = 10;

export interface PipelinesModule extends Module {
  builder: PipelineBuilder;
  starter: PipelineStarter;
  fetcher: WorkflowFetcher;
  /** Jetstream's pull records are offered here (a cheap filter before anything is queued). */
  pulls: Pick<PullIntake, 'offer'>;
}

export function createPipelines(
  ctx: AppContext,
  deps: { runners: RunnerSet; logs: LogCollection; secrets: RunSecrets },
): PipelinesModule {
  const { config, log, queue, uow, events, repos, runKeys, validator } = ctx;
  const store = ctx.pipelines;
  const intakeLog = subsystemLogger(log, 'intake');
  const { metrics } = ctx;
  const statuses = new StatusWriter({ store, events, queue, uow, metrics });
  const starter = new PipelineStarter({
    metrics,
    uow,
    store,
    runKeys,
    events,
    queue,
    statuses,
    routing: deps.runners.routing,
  });
  const fetcher = new WorkflowFetcher({
    dir: config.repoDir ?? join(dirname(config.db), 'repos'),
    dev: config.dev,
    log: subsystemLogger(log, 'git'),
  });
  const defaultBranches = new DefaultBranches({ dev: config.dev, log: intakeLog });
  const builder = new PipelineBuilder({
    repos,
    runKeys,
    uow,
    starter,
    fetcher,
    defaultBranches,
    log: intakeLog,
  });
  const intake = new Intake({
    metrics,
    store,
    repos,
    runKeys,
    uow,
    queue,
    starter,
    validator,
    log: intakeLog,
    adoptAfterMs: config.pushHoldMs + 3000,
  });
  const selfBuilt = { repos, runKeys, queue, builder, validator, log: intakeLog, metrics };
  const pushes = new PushIntake({ ...selfBuilt, holdMs: config.pushHoldMs });
  const pulls = new PullIntake({ ...selfBuilt, identity: { plcUrl: config.plcUrl, dev: config.dev } });
  const dispatcher = new Dispatcher({
    store,
    statuses,
    runners: deps.runners.runners,
    log: subsystemLogger(log, 'dispatch'),
    dev: config.dev,
    pollIntervalMs: config.pollIntervalMs,
    maxAttempts: config.queue.maxAttempts,
    secrets: deps.secrets,
    logs: deps.logs,
  });
  const remote = { maxAttempts: Math.max(config.queue.maxAttempts, REMOTE_ATTEMPTS) };
  return {
    name: 'pipelines',
    builder,
    starter,
    fetcher,
    pulls,
    consumers: [
      consumer<IntakeMessage>(INTAKE_TOPIC, 'intake', (m, d) => {
        intake.handle(m.payload, d);
      }),
      // These read from other people's knots and PDSes: ride out an outage of a few minutes
      // (1 s doubling to 30 s) before a message is dead-lettered for `treadle queue dlq replay`.
      consumer<PushMessage>(PUSH_TOPIC, 'intake', (m, d) => pushes.handle(m.payload, d), remote),
      consumer<PullMessage>(PULL_TOPIC, 'intake', (m) => pulls.handle(m.payload), remote),
      consumer<DispatchMessage>(DISPATCH_TOPIC, 'dispatch', (m, d) => dispatcher.handle(m, d)),
    ],
  };
}
