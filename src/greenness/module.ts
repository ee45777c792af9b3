/**
 * Greenness: which commits of each branch are green. Follows `pipeline.started` and
 * `workflow.status` (both written in the transactions that start a pipeline and write a
 * status, so nothing the spindle does can be missed), records validations and facts, and
 * serves the read API under /greenness/v1/.
 */
import type { AppContext } from '../context.ts';
import { GreennessStore } from '../db/greenness-store.ts';
import { type LandResult, MERGE_TOPIC, RESULT_SUFFIX } from '../landing/contract.ts';
import { subsystemLogger } from '../logger.ts';
import { consumer, type Module } from '../module.ts';
import {
  PIPELINE_STARTED_TOPIC,
  type PipelineStarted,
  WORKFLOW_STATUS_TOPIC,
  type WorkflowStatusChanged,
} from '../pipelines/pipeline.ts';
import { GreennessApi } from './api.ts';
import { DELIVER_TOPIC, type DeliverMessage, HookDelivery } from './hooks.ts';
import {
  DEADLINE_TOPIC,
  type DeadlineMessage,
  HOOK_TOPIC,
  type HookEvent,
  RECORD_TOPIC,
  Recorder,
  type RecordMessage,
} from './recorder.ts';

export interface GreennessModule extends Module {
  /** The read side, for the dashboard: queues, a commit's status, history. */
  readonly api: GreennessApi;
  readonly store: GreennessStore;
}

export function createGreenness(ctx: AppContext): GreennessModule {
  const store = new GreennessStore(ctx.db);
  const log = subsystemLogger(ctx.log, 'greenness');
  const recorder = new Recorder({
    store,
    uow: ctx.uow,
    queue: ctx.queue,
    config: ctx.config.greenness,
    landing: ctx.config.landing.targets,
    log,
    metrics: ctx.metrics,
  });
  const api = new GreennessApi(store);
  const hooks = new HookDelivery({
    sinks: ctx.config.greenness.hooks,
    queue: ctx.queue,
    log: subsystemLogger(ctx.log, 'hooks'),
    dev: ctx.config.dev,
  });
  return {
    name: 'greenness',
    api,
    store,
    consumers: [
      consumer<PipelineStarted>(PIPELINE_STARTED_TOPIC, 'greenness-ingest', (m) =>
        recorder.onPipeline(m.payload),
      ),
      consumer<WorkflowStatusChanged>(WORKFLOW_STATUS_TOPIC, 'greenness-ingest', (m) =>
        recorder.onStatus(m.payload),
      ),
      consumer<DeadlineMessage>(DEADLINE_TOPIC, 'greenness-deadline', (m, d) =>
        recorder.deadline(m.payload, d),
      ),
      consumer<RecordMessage>(RECORD_TOPIC, 'greenness-record', (m) => recorder.record(m.payload)),
      consumer<LandResult>(`${MERGE_TOPIC}${RESULT_SUFFIX}`, 'greenness-promotion', (m) =>
        recorder.promotionResult(m.payload),
      ),
      consumer<LandResult>(`${MERGE_TOPIC}${RESULT_SUFFIX}_dlq`, 'greenness-promotion-dlq', (m) => {
        log.error(
          { id: m.id, result: m.payload, lastError: m.metadata['dlq.last_error'] },
          'promotion result dead-lettered',
        );
      }),
      consumer<HookEvent>(HOOK_TOPIC, 'hook-dispatch', (m) => hooks.fanOut(m.payload)),
      consumer<DeliverMessage>(DELIVER_TOPIC, 'hook-deliver', (m) => hooks.deliver(m.payload)),
      consumer<DeliverMessage>(`${DELIVER_TOPIC}_dlq`, 'hook-deliver-dlq', (m) =>
        hooks.deadLetter(m.payload, m.metadata['dlq.last_error'] ?? ''),
      ),
    ],
    routes: (app) => api.mount(app),
  };
}
