import type { IncomingMessage, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { createAdaptorServer } from '@hono/node-server';
import type { Hono } from 'hono';
import { StartupError } from '../errors.ts';

export interface HttpServer {
  server: Server;
  port: number;
  /** Stops accepting, waits for open requests up to `timeoutMs`, then cuts what is left. */
  close(timeoutMs: number): Promise<void>;
}

/** WebSocket endpoints by exact path, or by prefix for keys ending in `/`; they take over the HTTP upgrade. */
export type UpgradeRoutes = Record<string, (req: IncomingMessage, socket: Duplex, head: Buffer) => void>;

export async function listen(
  app: Hono,
  host: string,
  port: number,
  upgrades: UpgradeRoutes = {},
  setting = 'TREADLE_LISTEN',
): Promise<HttpServer> {
  const server = createAdaptorServer({ fetch: app.fetch }) as Server;
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    const prefix = Object.keys(upgrades).find((k) => k.endsWith('/') && path.startsWith(k));
    const route = Object.hasOwn(upgrades, path) ? upgrades[path] : prefix ? upgrades[prefix] : undefined;
    if (route) return route(req, socket, head);
    socket.end(
      'HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n404 page not found\n',
    );
  });
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      const why = err.code === 'EADDRINUSE' ? 'address in use' : err.message;
      reject(new StartupError(`cannot listen on ${host}:${port} (${setting}): ${why}`, { cause: err }));
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  const actual = (server.address() as AddressInfo).port;
  return {
    server,
    port: actual,
    close: (timeoutMs) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => server.closeAllConnections(), timeoutMs);
        timer.unref();
        server.close(() => {
          clearTimeout(timer);
          resolve();
        });
        server.closeIdleConnections();
      }),
  };
}
