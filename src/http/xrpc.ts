/**
 * The XRPC surface under /xrpc/. Bodies of errors are `{"error","message"}` JSON, as the
 * appview expects. `sh.tangled.owner` is here; the ci API mounts itself through `methods`.
 */
import type { Hono } from 'hono';
import { MethodNotImplementedError } from '../errors.ts';

export interface XrpcDeps {
  owner: string;
  /** Mounts further methods (the sh.tangled.ci API) before the catch-all. */
  methods?: (app: Hono) => void;
}

export function mountXrpc(app: Hono, deps: XrpcDeps): void {
  // Stock writes the body with Go's json.Encoder, which ends it with a newline.
  const ownerBody = `${JSON.stringify({ owner: deps.owner })}\n`;
  app.get('/xrpc/sh.tangled.owner', (c) => c.body(ownerBody, 200, { 'Content-Type': 'application/json' }));
  // A known method with the wrong HTTP method: 405 with an empty body, as stock answers.
  app.all('/xrpc/sh.tangled.owner', (c) => c.body(null, 405, { Allow: 'GET, HEAD' }));
  deps.methods?.(app);
  app.all('/xrpc/*', (c) => {
    const method = c.req.path.slice('/xrpc/'.length);
    throw new MethodNotImplementedError(`method ${method || '(none)'} is not implemented here`);
  });
}

/**
 * A procedure's JSON object body, at most `maxBytes`. Anything else is refused with `fail`'s
 * error (400 `InvalidRequest` unless the method's stock form answers otherwise).
 */
