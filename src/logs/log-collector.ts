/**
 * Collects each build's log lines from its runner into the log store, and tells /logs readers
 * when a workflow has new lines or changed state. After a restart, collection resumes for
 * every build whose logs were not finished: the runner's stream starts over and lines already
 * stored are skipped, so each line is stored once.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { BuildRunner, LogLine } from '../../providers/runner.ts';
import type { LogStore } from '../db/log-store.ts';
import type { PipelineStore, WorkflowKey } from '../db/pipeline-store.ts';
import { NotFoundError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { Masker } from '../secrets/masker.ts';
import { encodeLogLine } from './log-line.ts';

const MAX_FAILURES = 5;
/** Lines stored per transaction at most. */
const FLUSH_LINES = 2000;

export function keyOf(k: WorkflowKey): string {
  return `${k.knot}\n${k.rkey}\n${k.name}`;
}

export class LogCollector {
  private readonly store: PipelineStore;
  private readonly lines: LogStore;
  private readonly log: Logger;
  private readonly active = new Map<string, AbortController>();
  private readonly running = new Set<Promise<void>>();
  private readonly listeners = new Map<string, Set<() => void>>();

  private readonly maskerFor: ((key: WorkflowKey) => Masker | undefined) | undefined;

  constructor(options: {
    store: PipelineStore;
    lines: LogStore;
    log: Logger;
    /** The repository's secrets as a masker, taken when collection starts. */
    maskerFor?: (key: WorkflowKey) => Masker | undefined;
  }) {
    this.store = options.store;
    this.lines = options.lines;
    this.log = options.log;
    this.maskerFor = options.maskerFor;
  }

  /** Starts collecting a build's logs unless that is already under way. */
  attach(key: WorkflowKey, runner: BuildRunner, buildId: string): void {
    const id = keyOf(key);
    if (this.active.has(id)) return;
    const controller = new AbortController();
    this.active.set(id, controller);
    const task = this.collect(key, runner, buildId, controller.signal).finally(() => {
      this.active.delete(id);
      this.running.delete(task);
      this.notify(key);
    });
    this.running.add(task);
  }

  /** True while lines of this workflow may still arrive. */
  isCollecting(key: WorkflowKey): boolean {
    return this.active.has(keyOf(key));
  }

  /** Calls `listener` whenever the workflow has new lines or a new status; returns the unsubscribe. */
  watch(key: WorkflowKey, listener: () => void): () => void {
    const id = keyOf(key);
    let set = this.listeners.get(id);
    if (!set) {
      set = new Set();
      this.listeners.set(id, set);
    }
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.listeners.delete(id);
    };
  }

  notify(key: WorkflowKey): void {
    for (const listener of this.listeners.get(keyOf(key)) ?? []) listener();
  }

  async stop(): Promise<void> {
    for (const c of this.active.values()) c.abort();
    await Promise.allSettled([...this.running]);
  }

  private async collect(
    key: WorkflowKey,
    runner: BuildRunner,
    buildId: string,
    signal: AbortSignal,
  ): Promise<void> {
    let masker: Masker | undefined;
    try {
      masker = this.maskerFor?.(key);
    } catch (err) {
      this.log.warn({ ...key, err: (err as Error).message }, 'secrets not loaded for masking');
    }
    if (masker?.empty) masker = undefined;
    for (let failures = 0; !signal.aborted; ) {
      let seq = this.lines.count(key);
      let skip = seq;
      try {
        const watched = () => (this.listeners.get(keyOf(key))?.size ?? 0) > 0;
        // Lines are stored in batches: a burst (a whole log fetched at once) becomes a few
        // transactions and notifications, and a trickle is flushed on the next macrotask.
        let batch: string[] = [];
        let scheduled: NodeJS.Immediate | undefined;
        const flush = () => {
          if (scheduled) clearImmediate(scheduled);
          scheduled = undefined;
          if (batch.length === 0) return;
          this.lines.appendMany(key, seq, batch);
          seq += batch.length;
          batch = [];
          this.notify(key);
        };
        try {
          for await (const line of runner.logs(buildId, signal, { watched })) {
            if (skip > 0) {
              skip--;
              continue;
            }
            batch.push(encodeLogLine(masker ? maskLine(line, masker) : line));
            if (batch.length >= FLUSH_LINES) flush();
            else scheduled ??= setImmediate(flush);
          }
        } finally {
          flush();
        }
        if (signal.aborted) return;
        this.store.setLogsDone(key);
        return;
      } catch (err) {
        if (signal.aborted) return;
        if (err instanceof NotFoundError || ++failures >= MAX_FAILURES) {
          this.log.warn({ ...key, err: (err as Error).message }, 'log collection ended early');
          this.store.setLogsDone(key);
          return;
        }
        this.log.warn({ ...key, err: (err as Error).message, failures }, 'log stream failed; retrying');
        await sleep(1000 * 2 ** failures, undefined, { signal }).catch(() => {});
      }
    }
  }
}

/** Secret values out of every text a line carries, before it is stored or sent. */
function maskLine(line: LogLine, masker: Masker): LogLine {
  const out = { ...line, content: masker.mask(line.content) };
  if (line.step_command !== undefined) out.step_command = masker.mask(line.step_command);
  return out;
}
