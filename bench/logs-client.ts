/**
 * A `/logs` reader on its own thread, as the appview is its own process: counts text frames
 * from the first to the close and posts `{ lines, seconds }` back to the parent.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { WebSocket } from 'ws';

const ws = new WebSocket(workerData.url as string);
let lines = 0;
let first = 0;
ws.on('message', () => {
  if (lines++ === 0) first = performance.now();
});
ws.on('close', () => {
  parentPort?.postMessage({ lines, seconds: (performance.now() - first) / 1000 });
});
