/** Runs on request: sh.tangled.ci.triggerPipeline, both cancel methods, and retries from `treadle runs`. */
import type { AppContext } from '../context.ts';
import { subsystemLogger } from '../logger.ts';
import { consumer, type Module } from '../module.ts';
import type { PipelineBuilder } from '../pipelines/pipeline-builder.ts';
import type { PipelineStarter } from '../pipelines/starter.ts';
import { ManualTriggers } from './manual-trigger.ts';
import { RunApi } from './run-api.ts';
import { RETRY_GROUP, RETRY_TOPIC, Retrier, type RetryMessage } from './run-control.ts';

export function createRuns(
  ctx: AppContext,
  deps: { builder: PipelineBuilder; starter: PipelineStarter },
): Module {
  const log = subsystemLogger(ctx.log, 'runs');
  const { repos, pipelines, queue, uow } = ctx;
  const api = new RunApi({
    auth: ctx.auth,
    validator: ctx.validator,
    repos,
    pipelines,
    queue,
    triggers: new ManualTriggers({ repos, builder: deps.builder, log }),
    owner: ctx.config.owner,
    log,
  });
  const retrier = new Retrier({ store: pipelines, repos, uow, starter: deps.starter, log });
  return {
    name: 'runs',
    xrpc: (app) => api.mount(app),
    consumers: [consumer<RetryMessage>(RETRY_TOPIC, RETRY_GROUP, (m) => retrier.handle(m.payload))],
  };
}
