/**
 * Request bodies read with a bound that holds before anything is buffered: a declared
 * `Content-Length` over the bound is refused at once, and a body without one (chunked) is read
 * only until it passes the bound, then the rest is abandoned and the connection closed. Every
 * route that reads a body reads it here.
 */
import type { Context } from 'hono';
import { InvalidRequestError, PayloadTooLargeError } from '../errors.ts';

/** The body as bytes; throws PayloadTooLargeError (413) past `maxBytes`. */
export async function readBody(c: Context, maxBytes: number): Promise<Buffer> {
  const tooLarge = () => {
    // The sender may still be sending: do not keep the connection for another request.
    c.header('Connection', 'close');
    return new PayloadTooLargeError(`body is larger than ${maxBytes} bytes`);
  };
  const declared = c.req.header('content-length');
  if (declared !== undefined && Number(declared) > maxBytes) throw tooLarge();
  const stream = c.req.raw.body;
  if (!stream) return Buffer.alloc(0);
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel().catch(() => {});
      throw tooLarge();
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks, size);
}

/**
 * A JSON object body, bounded as `readBody`; anything else is an InvalidRequestError, or what
 * `fail` makes of the message (methods whose errors have their own names).
 */
export async function jsonObjectBody(
  c: Context,
  maxBytes: number,
  fail: (message: string) => Error = (m) => new InvalidRequestError(m),
): Promise<Record<string, unknown>> {
  const type = c.req.header('content-type');
  if (type !== undefined && !/^application\/json\s*(;|$)/i.test(type))
    throw fail(`wrong Content-Type ${JSON.stringify(type.slice(0, 100))}: the body must be application/json`);
  const text = (await readBody(c, maxBytes)).toString('utf8');
  try {
    const v = JSON.parse(text);
    if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    // below
  }
  throw fail(
    text.trim() === ''
      ? 'empty body: a JSON object is required'
      : 'invalid JSON body: a JSON object is required',
  );
}
