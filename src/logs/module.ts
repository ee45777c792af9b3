/**
 * Logs: each build's lines collected from its runner into the log store (masked with the
 * repository's secrets), `/logs/{knot}/{rkey}/{workflow}` for appviews, and collection resumed
 * after a restart. Live readers learn that a workflow's status changed by following the event
 * log (the same frames /events carries), so nothing has to call into this module on a write.
 */
import type { BuildRunner } from '../../providers/runner.ts';
import type { AppContext } from '../context.ts';
import type { WorkflowKey } from '../db/pipeline-store.ts';
import { subsystemLogger } from '../logger.ts';
import type { Module } from '../module.ts';
import { PIPELINE_NSID, STATUS_NSID } from '../pipelines/pipeline.ts';
import type { RunSecrets } from '../secrets/module.ts';
import { LogCollector } from './log-collector.ts';
import { LOGS_PREFIX, LogsServer } from './logs-server.ts';

/** What the dispatcher tells the logs capability: a build exists, collect its lines. */
export interface LogCollection {
  attach(key: WorkflowKey, runner: BuildRunner, buildId: string): void;
}

export interface LogsModule extends Module {
  collector: LogCollector;
}

const PIPELINE_URI = new RegExp(`^at://did:web:([^/]+)/${PIPELINE_NSID.replaceAll('.', '\\.')}/([^/]+)$`);

export function createLogs(
  ctx: AppContext,
  deps: { runners: ReadonlyMap<string, BuildRunner>; secrets: RunSecrets; pingIntervalMs: number },
): LogsModule {
  const log = subsystemLogger(ctx.log, 'logs');
  const { pipelines: store, lines } = ctx;
  const collector = new LogCollector({ store, lines, log, maskerFor: (key) => deps.secrets.maskerFor(key) });
  const server = new LogsServer({ store, lines, collector, log }, { pingIntervalMs: deps.pingIntervalMs });
  ctx.metrics.collect(() => ctx.metrics.streamClients.set({ endpoint: 'logs' }, server.connections));
  const unsubscribe = ctx.events.subscribe((e) => {
    if (e.nsid !== STATUS_NSID) return;
    const status = JSON.parse(e.event) as { pipeline?: string; workflow?: string };
    const m = PIPELINE_URI.exec(status.pipeline ?? '');
    if (m && status.workflow) collector.notify({ knot: m[1]!, rkey: m[2]!, name: status.workflow });
  });
  return {
    name: 'logs',
    collector,
    upgrades: { [LOGS_PREFIX]: (req, socket, head) => server.handleUpgrade(req, socket, head) },
    start() {
      for (const w of store.unfinishedLogs()) {
        const runner = w.runner ? deps.runners.get(w.runner) : undefined;
        if (runner && w.buildId) collector.attach(w, runner, w.buildId);
        else store.setLogsDone(w);
      }
    },
    async stop() {
      unsubscribe();
      await Promise.all([server.close(), collector.stop()]);
    },
  };
}
