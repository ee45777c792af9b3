/**
 * Bad input at the daemon's HTTP boundaries costs exactly itself: bodies are bounded before they
 * are read (a declared Content-Length over the bound is refused at once, a chunked body is cut
 * off at the bound), each refusal is a clear error, and the daemon keeps serving the next,
 * valid request.
 */
import { request } from 'node:http';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeBuildkite } from '../fakes/buildkite.ts';
import { buildkiteEnv } from './support/buildkite.ts';
import { OWNER, type Stack, startStack } from './support/stack.ts';
import { Callers } from './support/xrpc-auth.ts';

const TOKEN = 'webhook-token-boundaries';
let s: Stack;
let bk: FakeBuildkite;
const callers = new Callers();

beforeAll(async () => {
  bk = await FakeBuildkite.start();
  s = await startStack(buildkiteEnv(bk, TOKEN, 'token'));
  await callers.register(s.pds, [OWNER]);
}, 30_000);

afterAll(async () => {
  await s?.close();
  await bk?.close();
});

interface Sent {
  status: number;
  body: string;
  /** Whether the server closed the connection after answering. */
  connection: string | undefined;
}

/** A little past every route's 1 MiB bound. */
const PAST_THE_BOUND = 1024 * 1024 + 256 * 1024;

/**
 * POSTs a body that is never finished: `PAST_THE_BOUND` bytes in chunks (1 KiB after a declared
 * `Content-Length`, with `declare`; or `bytes`), then nothing more and no end. A server that waited for the
 * whole body would never answer, so any answer shows it decided on what it had read. The client
 * stops writing rather than sending forever: once the server has answered and closed, a write
 * from a client that was slow to read the answer fails with EPIPE before the answer is parsed.
 */
function unfinished(
  path: string,
  headers: Record<string, string>,
  options: { declare?: number; bytes?: number } = {},
): Promise<Sent> {
  const url = new URL(path, s.daemon.base);
  return new Promise((resolve, reject) => {
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
          resolve({ status: res.statusCode!, body, connection: res.headers.connection });
          req.destroy();
        });
      },
    );
    req.on('error', (err) => {
      if (!answered) reject(err);
    });
    const chunk = Buffer.alloc(64 * 1024, 'a');
    const total = options.bytes ?? (options.declare ? 1024 : PAST_THE_BOUND);
    let written = 0;
    const pump = () => {
      while (!answered && written < total) {
        const part = chunk.subarray(0, Math.min(chunk.length, total - written));
        written += part.length;
        if (!req.write(part)) {
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
    const r = await unfinished('/webhooks/buildkite', {
      'x-buildkite-token': TOKEN,
      'content-type': 'application/json',
    });
    expect(r.status).toBe(413);
    expect(JSON.parse(r.body)).toMatchObject({ error: 'PayloadTooLarge' });
    expect(r.connection).toBe('close');
    expect(await webhookPing()).toBe(200);
  });

  it('refuses a declared Content-Length over the bound at once, before any verification', async () => {
    const r = await unfinished(
      '/webhooks/buildkite',
      { 'x-buildkite-token': 'wrong' },
      { declare: 50 * 1024 * 1024 },
    );
    expect(r.status).toBe(413);
    expect(await webhookPing()).toBe(200);
  });

  it('bounds XRPC procedure bodies the same way, for an authenticated caller', async () => {
    const nsid = 'sh.tangled.ci.triggerPipeline';
    const auth = {
      authorization: `Bearer ${await callers.token(OWNER, nsid)}`,
      'content-type': 'application/json',
    };
    const chunked = await unfinished(`/xrpc/${nsid}`, auth);
    expect(chunked.status).toBe(413);
    expect(JSON.parse(chunked.body)).toMatchObject({ error: 'PayloadTooLarge' });
    const declared = await unfinished(`/xrpc/${nsid}`, auth, { declare: 10 * 1024 * 1024 });
    expect(declared.status).toBe(413);
    // The daemon still answers the same method with a clear error for a small, wrong body.
    const bad = await callers.call(s.daemon.base, nsid, OWNER, { repo: 'not-a-did' });
    expect(bad.status).toBe(400);
    expect(bad.json).toMatchObject({ error: 'InvalidRequest' });
  });

  it('never reads the body of a caller it cannot authenticate', async () => {
    // 64 KiB, sent at once: the answer comes before any of it is read, and a client that kept
    // writing after it would only meet a closed connection.
    const r = await unfinished(
      '/xrpc/sh.tangled.repo.addSecret',
      { 'content-type': 'application/json' },
      { bytes: 64 * 1024 },
    );
    expect(r.status).toBe(403);
  });
});

async function webhook(
  body: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; json: unknown }> {
  const res = await fetch(`${s.daemon.base}/webhooks/buildkite`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-buildkite-token': TOKEN, ...headers },
    body,
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined };
}

function storedWebhooks(): number {
  const db = new Database(s.db, { readonly: true });
  try {
    return (
      db.prepare(`SELECT count(*) AS n FROM queue_messages WHERE topic = 'buildkite.webhook'`).get() as {
        n: number;
      }
    ).n;
  } finally {
    db.close();
  }
}

describe('Buildkite webhooks with a valid credential and bad content', () => {
  it('refuses non-JSON, non-object and malformed build events with the reason, ignores other events, stores none of them', async () => {
    const before = storedWebhooks();
    expect(await webhook('{"event": "build.finished", ')).toMatchObject({
      status: 400,
      json: { message: 'body is not JSON' },
    });
    expect(await webhook('null')).toMatchObject({
      status: 400,
      json: { message: 'body is not a JSON object' },
    });
    expect(await webhook('[1,2]')).toMatchObject({ status: 400 });
    const malformed: Array<[Record<string, unknown>, string]> = [
      [{ event: 'build.finished' }, 'no build object'],
      [{ event: 'build.finished', build: { number: 1, state: 'passed' } }, 'no build.id'],
      [{ event: 'build.running', build: { id: 'b1', number: 1 } }, 'no build.state'],
      [{ event: 'build.running', build: { id: 'b1', state: 'running' } }, 'no build.number'],
    ];
    for (const [body, reason] of malformed) {
      const r = await webhook(JSON.stringify(body), { 'x-buildkite-event': body.event as string });
      expect(r, reason).toMatchObject({ status: 400, json: { message: expect.stringContaining(reason) } });
    }
    for (const event of ['ping', 'job.finished', 'agent.connected'])
      expect(
        await webhook(JSON.stringify({ event, build: { id: 'b' } }), { 'x-buildkite-event': event }),
      ).toMatchObject({
        status: 200,
        json: { ignored: event },
      });
    expect(storedWebhooks()).toBe(before);
    // A well-formed build event right after is taken.
    const ok = await webhook(
      JSON.stringify({
        event: 'build.running',
        build: { id: 'b-ok', number: 7, state: 'running', meta_data: {} },
      }),
      { 'x-buildkite-event': 'build.running' },
    );
    expect(ok).toMatchObject({ status: 200 });
    expect(storedWebhooks()).toBe(before + 1);
    expect(s.daemon.logs()).toContain('"msg":"Buildkite webhook refused: malformed build"');
  });

  it('answers 503, naming the setting, where Buildkite is not configured', async () => {
    const plain = await startStack();
    try {
      const res = await fetch(`${plain.daemon.base}/webhooks/buildkite`, { method: 'POST', body: '{}' });
      expect(res.status).toBe(503);
      expect(await res.text()).toContain('TREADLE_BUILDKITE_WEBHOOK_SECRET');
      expect((await fetch(`${plain.daemon.base}/healthz`)).status).toBe(200);
    } finally {
      await plain.close();
    }
  });
});

describe('XRPC procedure bodies', () => {
  it('answers 400 naming what is wrong for a body that is not JSON, empty, of the wrong type or shape, and keeps serving', async () => {
    const nsid = 'sh.tangled.ci.triggerPipeline';
    const post = async (body: string, type = 'application/json') => {
      const res = await fetch(`${s.daemon.base}/xrpc/${nsid}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${await callers.token(OWNER, nsid)}`, 'content-type': type },
        body,
      });
      return { status: res.status, json: (await res.json()) as { error: string; message: string } };
    };
    expect(await post('{"repo":')).toMatchObject({
      status: 400,
      json: { error: 'InvalidRequest', message: expect.stringContaining('invalid JSON') },
    });
    expect(await post('')).toMatchObject({
      status: 400,
      json: { message: expect.stringContaining('empty body') },
    });
    expect(await post('[]')).toMatchObject({ status: 400, json: { error: 'InvalidRequest' } });
    expect(await post('{"repo":"did:plc:x"}', 'text/plain')).toMatchObject({
      status: 400,
      json: { message: expect.stringContaining('wrong Content-Type') },
    });
    const typed = await post(
      JSON.stringify({ repo: 42, trigger: { $type: 'sh.tangled.ci.trigger#manual', sha: 'a'.repeat(40) } }),
    );
    expect(typed).toMatchObject({
      status: 400,
      json: { error: 'InvalidRequest', message: expect.stringMatching(/repo/) },
    });
    // The daemon keeps serving: a well-formed call for a repo it does not serve gets its own answer.
    const unknown = await post(
      JSON.stringify({
        repo: 'did:plc:notservedhere',
        trigger: { $type: 'sh.tangled.ci.trigger#manual', sha: 'a'.repeat(40) },
      }),
    );
    expect(unknown).toMatchObject({ status: 400, json: { error: 'RepoNotFound' } });
  });
});
