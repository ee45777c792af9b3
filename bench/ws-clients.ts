/**
 * WebSocket clients for the spindle benchmark, run in a worker thread (or as a child process
 * with `--rss`), so that reading does not compete with the server on its event loop.
 *
 * Worker mode (workerData {url, clients, expect}): connects `clients` sockets, posts
 * 'ready', counts text frames until each client has `expect`, and posts the write→receive
 * latencies of frames that carry `"t":<ms since timeOrigin-epoch>` plus the elapsed time.
 * Child mode (`--rss <url>...`): opens one socket per URL and prints its own RSS once open.
 */
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { WebSocket } from 'ws';

function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

if (!isMainThread) {
  const { url, clients, expect } = workerData as { url: string; clients: number; expect: number };
  const latencies: number[] = [];
  let done = 0;
  let firstAt = 0;
  let open = 0;
  const sockets: WebSocket[] = [];
  for (let i = 0; i < clients; i++) {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    sockets.push(ws);
    let count = 0;
    ws.on('open', () => {
      if (++open === clients) parentPort!.postMessage({ type: 'ready' });
    });
    ws.on('message', (data: Buffer) => {
      const now = nowMs();
      firstAt ||= now;
      const at = data.indexOf('"t":');
      if (at >= 0) latencies.push(now - Number.parseFloat(data.toString('latin1', at + 4, at + 40)));
      if (++count === expect && ++done === clients) {
        const elu = performance.eventLoopUtilization().utilization;
        parentPort!.postMessage({ type: 'done', latencies, firstAt, lastAt: now, elu });
        for (const s of sockets) s.terminate();
      }
    });
  }
} else if (process.argv[2] === '--rss') {
  const urls = process.argv.slice(3);
  let open = 0;
  const keep: WebSocket[] = [];
  for (const u of urls) {
    const ws = new WebSocket(u);
    keep.push(ws);
    ws.on('open', () => {
      if (++open === urls.length) {
        setTimeout(() => {
          process.stdout.write(`${process.memoryUsage().rss}\n`);
          process.exit(0);
        }, 1000);
      }
    });
  }
}
