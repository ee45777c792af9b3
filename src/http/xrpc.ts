/**
 * The XRPC surface under /xrpc/. Bodies of errors are `{"error","message"}` JSON, as the
 * appview expects; only the methods below exist so far.
 */
import type { Hono } from 'hono';
import { MethodNotImplementedError } from '../errors.ts';

export interface XrpcDeps {
  owner: string;
}

export function mountXrpc(app: Hono, deps: XrpcDeps): void {
  // Stock writes the body with Go's json.Encoder, which ends it with a newline.
  const ownerBody = `${JSON.stringify({ owner: deps.owner })}\n`;
  app.get('/xrpc/sh.tangled.owner', (c) => c.body(ownerBody, 200, { 'Content-Type': 'application/json' }));
  // A known method with the wrong HTTP method: 405 with an empty body, as stock answers.
  app.all('/xrpc/sh.tangled.owner', (c) => c.body(null, 405, { Allow: 'GET, HEAD' }));
  app.all('/xrpc/*', (c) => {
    const method = c.req.path.slice('/xrpc/'.length);
    throw new MethodNotImplementedError(`method ${method || '(none)'} is not implemented here`);
  });
}
