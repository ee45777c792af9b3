import { Hono } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import {
  AuthError,
  InvalidRequestError,
  MethodNotImplementedError,
  NotFoundError,
  PayloadTooLargeError,
  TreadleError,
  XrpcError,
} from '../errors.ts';
import type { Logger } from '../logger.ts';
import { VERSION } from '../version.ts';
import { mountXrpc } from './xrpc.ts';

export type Health = 'starting' | 'ready' | 'draining';

export interface HttpDeps {
  log: Logger;
  hostname: string;
  owner: string;
  health: () => Health;
  /** What is not ready, by check; empty when ready (`/readyz`). */
  readiness?: () => Record<string, string>;
  /** Further XRPC methods (see XrpcDeps.methods). */
  xrpcMethods?: (app: Hono) => void;
  /** Further plain routes (webhooks). */
  routes?: (app: Hono) => void;
}

/** The HTTP surface. Errors become responses here, and only here. */
export function createHttpApp(deps: HttpDeps): Hono {
  const app = new Hono();

  app.get('/healthz', (c) => {
    const health = deps.health();
    return c.json({ status: health, version: VERSION }, health === 'ready' ? 200 : 503);
  });

  // Readiness: can this process do its work now (database writable, queue workers running,
  // Jetstream connected or reconnecting within its backoff)? /healthz stays the liveness check.
  app.get('/readyz', (c) => {
    const notReady = deps.readiness?.() ?? {};
    const ready = Object.keys(notReady).length === 0;
    return c.json({ ready, ...(ready ? {} : { notReady }) }, ready ? 200 : 503);
  });

  mountXrpc(app, { owner: deps.owner, methods: deps.xrpcMethods });
  deps.routes?.(app);

  // Reached only without a WebSocket upgrade (upgrades are taken over by the node server).
  app.all('/events', (c) => c.text('Bad Request: /events is a WebSocket endpoint\n', 400));
  app.all('/logs/*', (c) =>
    c.text('Bad Request: /logs/{knot}/{rkey}/{workflow} is a WebSocket endpoint\n', 400),
  );

  // Go's http.NotFound body, as the stock spindle answers.
  app.notFound((c) => c.text('404 page not found\n', 404));

  app.onError((err, c) => {
    const [status, body] = errorResponse(err);
    if (status >= 500) deps.log.error({ err, path: c.req.path }, 'request failed');
    return c.json(body, status);
  });

  return app;
}

export function errorResponse(err: unknown): [ContentfulStatusCode, { error: string; message: string }] {
  if (err instanceof XrpcError) return [err.status, { error: err.error, message: err.message }];
  if (err instanceof InvalidRequestError) return [400, { error: 'InvalidRequest', message: err.message }];
  if (err instanceof PayloadTooLargeError) return [413, { error: 'PayloadTooLarge', message: err.message }];
  if (err instanceof AuthError) return [401, { error: 'AuthRequired', message: err.message }];
  if (err instanceof NotFoundError) return [404, { error: 'NotFound', message: err.message }];
  if (err instanceof MethodNotImplementedError) return [404, { error: err.code, message: err.message }];
  const code = err instanceof TreadleError ? err.code : 'InternalServerError';
  return [500, { error: code === 'InternalError' ? 'InternalServerError' : code, message: 'internal error' }];
}
