/**
 * Retention as a module: a prune pass shortly after start and then every
 * `TREADLE_RETENTION_INTERVAL`, one at a time, stopped with the daemon.
 */
import type { BuildRunner } from '../../providers/runner.ts';
import type { AppContext } from '../context.ts';
import { RetentionStore } from '../db/retention-store.ts';
import { subsystemLogger } from '../logger.ts';
import type { Module } from '../module.ts';
import { Pruner } from './pruner.ts';

const FIRST_PASS_MS = 10_000;

export function createRetention(
  ctx: AppContext,
  deps: { runners: ReadonlyMap<string, BuildRunner> },
): Module {
  const { retention } = ctx.config;
  const log = subsystemLogger(ctx.log, 'retention');
  const pruner = new Pruner({
    store: new RetentionStore(ctx.db),
    windows: retention,
    runners: deps.runners,
    log,
  });
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> = Promise.resolve();
  const schedule = (ms: number) => {
    timer = setTimeout(() => {
      running = pruner
        .prune(ctx.signal)
        .catch((err: unknown) => log.error({ err }, 'prune failed; trying again next interval'))
        .finally(() => {
          if (!ctx.signal.aborted) schedule(retention.intervalMs);
        });
    }, ms);
    timer.unref();
  };
  return {
    name: 'retention',
    start: () => schedule(Math.min(FIRST_PASS_MS, retention.intervalMs)),
    async stop() {
      clearTimeout(timer);
      await running;
    },
  };
}
