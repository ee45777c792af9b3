import { createHash } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '../../test/support/wait.ts';
import { createLogger } from '../logger.ts';
import { StreamClient } from './stream-client.ts';

let server: Server | undefined;
let client: StreamClient | undefined;
const sockets: Socket[] = [];
afterEach(async () => {
  await client?.stop();
  for (const s of sockets.splice(0)) s.destroy();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
});

/**
 * A peer that completes the WebSocket handshake and then goes silent for good, as a half-open
 * connection looks from this side: no frames, no pongs, no close.
 */
async function halfOpenPeer(): Promise<{ url: string; connections: () => number }> {
  let connections = 0;
  server = createServer((socket) => {
    sockets.push(socket);
    socket.once('data', (data) => {
      const key = /sec-websocket-key: (.+)\r\n/i.exec(data.toString())?.[1]?.trim() ?? '';
      const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
      connections++;
      socket.write(
        `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
      );
      socket.pause(); // and never read or write again
    });
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return { url: `ws://127.0.0.1:${port}/events`, connections: () => connections };
}

describe('StreamClient', () => {
  it('notices a half-open connection (no frames, no pong) within twice its idle timeout, and redials', async () => {
    const peer = await halfOpenPeer();
    const opened: number[] = [];
    client = new StreamClient({
      url: () => peer.url,
      onFrame: () => {},
      log: createLogger('silent'),
      idleTimeoutMs: 200,
      minBackoffMs: 10,
      maxBackoffMs: 20,
      onOpen: () => opened.push(Date.now()),
    });
    client.start();
    await waitFor(() => peer.connections() >= 3, 'two redials after silent connections', 10_000);
    expect(opened.length).toBeGreaterThanOrEqual(2);
  });
});
