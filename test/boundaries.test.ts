/**
 * Bad input at the daemon's HTTP boundaries costs exactly itself: bodies are bounded before they
 * are read (a declared Content-Length over the bound is refused at once, a chunked body is cut
 * off at the bound), each refusal is a clear error, and the daemon keeps serving the next,
 * valid request.
 */
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeBuildkite } from '../fakes/buildkite.ts';
import { OWNER, type Stack, startStack } from './support/stack.ts';
import { Callers } from './support/xrpc-auth.ts';

const TOKEN = 'webhook-token-boundaries';
let s: Stack;
let bk: FakeBuildkite;
const callers = new Callers();

beforeAll(async () => {
  bk = await FakeBuildkite.start();
  s = await startStack({
    TREADLE_BUILDKITE_TOKEN: bk.token,
    TREADLE_BUILDKITE_ORG: 'acme',
    TREADLE_BUILDKITE_API_URL: bk.apiUrl,
    TREADLE_BUILDKITE_WEBHOOK_SECRET: TOKEN,
    TREADLE_BUILDKITE_WEBHOOK_MODE: 'token',
  });
  await callers.register(s.pds, [OWNER]);
}, 30_000);

afterAll(async () => {
  await s?.close();
  await bk?.close();
});

interface Sent {
  status: number;
  body: string;
  /** Bytes written before the answer came. */
  written: number;
  /** Whether the server closed the connection after answering. */
  connection: string | undefined;
}

/**
 * POSTs a body that never ends: chunks are written until the server answers (or `cap` bytes,
 * after which the request would hang forever if the server waited for the end). With
 * `declare`, a Content-Length is sent instead and only a little of the body.
 */
function endless(
  path: string,
  headers: Record<string, string>,
  options: { declare?: number; cap?: number } = {},
): Promise<Sent> {
  const url = new URL(path, s.daemon.base);
  const cap = options.cap ?? 8 * 1024 * 1024;
  return new Promise((resolve, reject) => {
    let written = 0;
    let answered = false;
    const req = request(
      url,
      {
        method: 'POST',
        headers: { ...headers, ...(options.declare ? { 'content-length': String(options.declare) } : {}) },
      },
      (res) => {
        answered = true;
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => {
          resolve({ status: res.statusCode!, body, written, connection: res.headers.connection });
          req.destroy();
        });
      },
    );
    req.on('error', (err) => {
      if (!answered) reject(err);
    });
    const chunk = Buffer.alloc(64 * 1024, 'a');
    const pump = () => {
      while (!answered && written < (options.declare ? 1024 : cap)) {
        written += chunk.length;
        if (!req.write(chunk)) {
          req.once('drain', pump);
          return;
        }
      }
    };
    pump();
  });
}

async function webhookPing(token = TOKEN): Promise<number> {
  const res = await fetch(`${s.daemon.base}/webhooks/buildkite`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-buildkite-token': token, 'x-buildkite-event': 'ping' },
    body: JSON.stringify({ event: 'ping' }),
  });
  return res.status;
}

describe('request bodies are bounded before they are read', () => {
  it('answers 413 to a chunked webhook body past 1 MiB while it is still being sent, and keeps serving', async () => {
    const r = await endless('/webhooks/buildkite', {
      'x-buildkite-token': TOKEN,
      'content-type': 'application/json',
    });
    expect(r.status).toBe(413);
    expect(JSON.parse(r.body)).toMatchObject({ error: 'PayloadTooLarge' });
    expect(r.written).toBeLessThan(8 * 1024 * 1024);
    expect(r.connection).toBe('close');
    expect(await webhookPing()).toBe(200);
  });

  it('refuses a declared Content-Length over the bound at once, before any verification', async () => {
    const r = await endless(
      '/webhooks/buildkite',
      { 'x-buildkite-token': 'wrong' },
      { declare: 50 * 1024 * 1024 },
    );
    expect(r.status).toBe(413);
    expect(r.written).toBeLessThanOrEqual(1024 * 1024);
    expect(await webhookPing()).toBe(200);
  });

  it('bounds XRPC procedure bodies the same way, for an authenticated caller', async () => {
    const nsid = 'sh.tangled.ci.triggerPipeline';
    const auth = {
      authorization: `Bearer ${await callers.token(OWNER, nsid)}`,
      'content-type': 'application/json',
    };
    const chunked = await endless(`/xrpc/${nsid}`, auth);
    expect(chunked.status).toBe(413);
    expect(JSON.parse(chunked.body)).toMatchObject({ error: 'PayloadTooLarge' });
    expect(chunked.written).toBeLessThan(8 * 1024 * 1024);
    const declared = await endless(`/xrpc/${nsid}`, auth, { declare: 10 * 1024 * 1024 });
    expect(declared.status).toBe(413);
    // The daemon still answers the same method with a clear error for a small, wrong body.
    const bad = await callers.call(s.daemon.base, nsid, OWNER, { repo: 'not-a-did' });
    expect(bad.status).toBe(400);
    expect(bad.json).toMatchObject({ error: 'InvalidRequest' });
  });

  it('never reads the body of a caller it cannot authenticate', async () => {
    const r = await endless('/xrpc/sh.tangled.repo.addSecret', { 'content-type': 'application/json' });
    expect(r.status).toBe(403);
    expect(r.written).toBeLessThan(8 * 1024 * 1024);
  });
});
