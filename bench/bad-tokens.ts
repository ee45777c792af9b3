/**
 * The burst of bad-token requests for the auth benchmark, on a worker thread so that sending
 * does not compete with the daemon on its event loop (a real attacker is elsewhere too).
 * workerData {url, tokens, concurrency}: POSTs each token to `url`, `concurrency` at a time, and
 * posts back the status codes seen and the time taken.
 */
import { parentPort, workerData } from 'node:worker_threads';

const { url, tokens, concurrency } = workerData as { url: string; tokens: string[]; concurrency: number };
const statuses: Record<string, number> = {};
const started = performance.now();
let next = 0;
async function lane(): Promise<void> {
  while (next < tokens.length) {
    const token = tokens[next++]!;
    const res = await fetch(url, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: '{"repo":"at://did:plc:x/sh.tangled.repo/r","key":"K","value":"v"}',
    });
    await res.arrayBuffer();
    statuses[res.status] = (statuses[res.status] ?? 0) + 1;
  }
}
await Promise.all(Array.from({ length: concurrency }, lane));
parentPort!.postMessage({ statuses, ms: performance.now() - started });
