/**
 * Retention: `/events` rows, workflow log lines and finished pipelines older than their windows
 * are deleted in batches of 200 rows, each its own short transaction (about a millisecond), and
 * paced: after each batch the pruner rests four times as long as the batch took (at least 5 ms),
 * so it holds the event loop and the write lock a fifth of the time at most and serving never
 * waits behind more than one batch. A first prune of a million rows takes about half a minute
 * instead of six seconds; steady-state passes delete a few minutes' worth. Runners that keep
 * their own records of builds (Buildkite's) forget finished ones with the runs window, in the
 * same paced batches. Greenness facts, the queue (its own garbage collection) and anything a
 * window of 0 names are kept.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { BuildRunner } from '../../providers/runner.ts';
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
  /** Runners' own build records (by runner name). */
  builds: Record<string, number>;
}

export class Pruner {
  private readonly store: RetentionStore;
  private readonly windows: RetentionWindows;
  private readonly runners: ReadonlyMap<string, Pick<BuildRunner, 'prune'>>;
  private readonly log: Logger;
  private readonly batch: number;
  private readonly clock: () => number;
  private readonly rest: (busyMs: number) => Promise<unknown>;

  constructor(o: {
    store: RetentionStore;
    windows: RetentionWindows;
    /** Runners whose own build records are pruned with the runs window. */
    runners?: ReadonlyMap<string, Pick<BuildRunner, 'prune'>>;
    log: Logger;
    batch?: number;
    clock?: () => number;
    /** How to rest after a batch that took `busyMs` (tests pass one that does not wait). */
    rest?: (busyMs: number) => Promise<unknown>;
  }) {
    this.store = o.store;
    this.windows = o.windows;
    this.runners = o.runners ?? new Map();
    this.log = o.log;
    this.batch = o.batch ?? 200;
    this.clock = o.clock ?? Date.now;
    this.rest = o.rest ?? ((busyMs) => sleep(Math.max(5, 4 * busyMs)));
  }

  /** One pass over every window; stops early when `signal` aborts. */
  async prune(signal?: AbortSignal): Promise<PruneCounts> {
    const now = this.clock();
    const counts: PruneCounts = { events: 0, logWorkflows: 0, logLines: 0, runs: 0, builds: {} };
    const { eventsMs, logsMs, runsMs } = this.windows;
    const loop = async (step: () => number): Promise<void> => {
      while (!signal?.aborted) {
        const started = performance.now();
        if (step() < this.batch) return;
        await this.rest(performance.now() - started);
      }
    };
    if (runsMs > 0)
      await loop(() => {
        const n = this.store.pruneRuns(now - runsMs, this.batch);
        counts.runs += n;
        return n;
      });
    if (runsMs > 0)
      for (const [name, runner] of this.runners) {
        if (!runner.prune) continue;
        const prune = runner.prune.bind(runner);
        await loop(() => {
          const n = prune(now - runsMs, this.batch);
          if (n > 0) counts.builds[name] = (counts.builds[name] ?? 0) + n;
          return n;
        });
      }
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
    const builds = Object.values(counts.builds).reduce((a, b) => a + b, 0);
    if (counts.events + counts.logWorkflows + counts.runs + builds > 0)
      this.log.info(counts, 'pruned past retention');
    return counts;
  }
}
