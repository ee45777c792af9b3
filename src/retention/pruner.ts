/**
 * Retention: `/events` rows, workflow log lines and finished pipelines older than their windows
 * are deleted in batches of a few hundred rows, each its own short transaction, with the event
 * loop let go between batches, so serving (and the daemon's own writes) never waits behind a
 * prune for more than one batch. Greenness facts, the queue (its own garbage collection) and
 * anything a window of 0 names are kept.
 */
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { RetentionStore } from '../db/retention-store.ts';
import type { Logger } from '../logger.ts';

export interface RetentionWindows {
  /** Milliseconds; 0 keeps forever. */
  eventsMs: number;
  logsMs: number;
  runsMs: number;
}

export interface PruneCounts {
  events: number;
  logWorkflows: number;
  logLines: number;
  runs: number;
}

export class Pruner {
  private readonly store: RetentionStore;
  private readonly windows: RetentionWindows;
  private readonly log: Logger;
  private readonly batch: number;
  private readonly clock: () => number;

  constructor(o: {
    store: RetentionStore;
    windows: RetentionWindows;
    log: Logger;
    batch?: number;
    clock?: () => number;
  }) {
    this.store = o.store;
    this.windows = o.windows;
    this.log = o.log;
    this.batch = o.batch ?? 500;
    this.clock = o.clock ?? Date.now;
  }

  /** One pass over every window; stops early when `signal` aborts. */
  async prune(signal?: AbortSignal): Promise<PruneCounts> {
    const now = this.clock();
    const counts: PruneCounts = { events: 0, logWorkflows: 0, logLines: 0, runs: 0 };
    const { eventsMs, logsMs, runsMs } = this.windows;
    const loop = async (step: () => number): Promise<void> => {
      while (!signal?.aborted) {
        if (step() < this.batch) return;
        await yieldToLoop();
      }
    };
    if (runsMs > 0)
      await loop(() => {
        const n = this.store.pruneRuns(now - runsMs, this.batch);
        counts.runs += n;
        return n;
      });
    if (logsMs > 0)
      await loop(() => {
        const r = this.store.pruneLogs(now - logsMs, this.batch);
        counts.logWorkflows += r.workflows;
        counts.logLines += r.lines;
        return r.workflows;
      });
    if (eventsMs > 0)
      await loop(() => {
        const n = this.store.pruneEvents(BigInt(now - eventsMs) * 1_000_000n, this.batch);
        counts.events += n;
        return n;
      });
    if (counts.events + counts.logWorkflows + counts.runs > 0) this.log.info(counts, 'pruned past retention');
    return counts;
  }
}
