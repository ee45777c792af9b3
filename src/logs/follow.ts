/**
 * Follows one workflow's log for a WebSocket client, whatever the framing: every stored line in
 * write order, then new lines as the collector stores them, until the workflow is terminal and
 * collection has ended (true), or the socket closes (false). A failure with an error and no
 * output yields the error as one step (spindle protocol §16.9). Idle clients get pings.
 */
import type { WebSocket } from 'ws';
import type { LogStore } from '../db/log-store.ts';
import type { PipelineStore, WorkflowKey } from '../db/pipeline-store.ts';
import { isTerminal } from '../pipelines/pipeline.ts';
import type { LogCollector } from './log-collector.ts';
import { errorOnlyLog } from './log-line.ts';

const BATCH = 2000;

export interface FollowDeps {
  store: PipelineStore;
  lines: LogStore;
  collector: LogCollector;
  pingIntervalMs: number;
}

/** Sends stored LogLine JSON texts; resolves once they are flushed to the socket. */
export type SendLines = (lines: string[]) => Promise<void>;

export async function followLog(
  deps: FollowDeps,
  ws: WebSocket,
  key: WorkflowKey,
  send: SendLines,
): Promise<boolean> {
  const { store, lines, collector } = deps;
  let wake: () => void = () => {};
  let woken = false;
  const unwatch = collector.watch(key, () => {
    woken = true;
    wake();
  });
  try {
    let seq = 0;
    for (;;) {
      if (ws.readyState !== ws.OPEN) return false;
      woken = false;
      const batch = lines.from(key, seq, BATCH);
      if (batch.length > 0) {
        await send(batch.map((l) => l.line));
        seq = batch.at(-1)!.seq + 1;
        if (batch.length === BATCH) continue;
      }
      const row = store.workflow(key);
      if (row && isTerminal(row.status) && !collector.isCollecting(key)) {
        // Lines may have landed between the read and now: read once more before finishing.
        if (lines.count(key) > seq) continue;
        if (seq === 0 && row.status === 'failed' && row.error) {
          const time = new Date((row.statusAt ?? Math.floor(Date.now() / 1000)) * 1000).toISOString();
          await send(errorOnlyLog(row.error, time));
        }
        return true;
      }
      if (woken) continue;
      const idle = await new Promise<boolean>((resolve) => {
        const done = (timedOut: boolean) => {
          clearTimeout(timer);
          ws.off('close', onClose);
          wake = () => {};
          resolve(timedOut);
        };
        const onClose = () => done(false);
        const timer = setTimeout(done, deps.pingIntervalMs, true);
        wake = () => done(false);
        ws.once('close', onClose);
      });
      if (idle && ws.readyState === ws.OPEN) ws.ping();
    }
  } finally {
    unwatch();
  }
}

/**
 * Sends each frame; resolves when the last is flushed. Frames go out in order on one socket,
 * so only the last carries a callback: a write error fails it too.
 */
export function sendAll(ws: WebSocket, frames: Array<string | Uint8Array>): Promise<void> {
  const last = frames.length - 1;
  if (last < 0) return Promise.resolve();
  for (let i = 0; i < last; i++) ws.send(frames[i]!);
  return new Promise<void>((resolve, reject) =>
    ws.send(frames[last]!, (err) => (err ? reject(err) : resolve())),
  );
}
