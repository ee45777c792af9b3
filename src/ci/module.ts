/** The `sh.tangled.ci.*` read API and `subscribePipelineLogs`. */
import type { AppContext } from '../context.ts';
import type { WorkflowFetcher } from '../git/workflow-fetcher.ts';
import { subsystemLogger } from '../logger.ts';
import type { LogCollector } from '../logs/log-collector.ts';
import type { Module } from '../module.ts';
import { CiApi } from './ci-api.ts';
import { PipelineLogSubscriptions, SUBSCRIBE_LOGS_PATH } from './log-subscription.ts';

export function createCi(
  ctx: AppContext,
  deps: { fetcher: WorkflowFetcher; collector: LogCollector; pingIntervalMs: number },
): Module {
  const api = new CiApi({ db: ctx.db, pipelines: ctx.pipelines, repos: ctx.repos, fetcher: deps.fetcher });
  const subscriptions = new PipelineLogSubscriptions({
    store: ctx.pipelines,
    lines: ctx.lines,
    collector: deps.collector,
    log: subsystemLogger(ctx.log, 'logs'),
    pingIntervalMs: deps.pingIntervalMs,
  });
  return {
    name: 'ci',
    xrpc: (app) => api.mount(app),
    upgrades: {
      [SUBSCRIBE_LOGS_PATH]: (req, socket, head) => subscriptions.handleUpgrade(req, socket, head),
    },
    stop: () => subscriptions.close(),
  };
}
