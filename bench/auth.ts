/**
 * Service-auth benchmark (issue 7), each figure beside a baseline measured in the same run:
 *  (a) verification of a token from an issuer whose key is cached: `ServiceAuth.verify` per
 *      call, ES256K and ES256 (target p99 ≤ 1 ms); baselines: the bare OpenSSL signature check
 *      treadle uses, and `@atproto/crypto`'s pure-JS check that `verifyJwt` uses by default;
 *  (b) `/events` delivery (write → received, 50 clients, 500 status events/s for 4 s) without,
 *      then during, a burst of 1,000 requests with bad tokens sent from another thread:
 *      garbage, expired, forged signatures of a known issuer, and issuers that do not resolve.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { type Keypair, P256Keypair, Secp256k1Keypair, verifySignature } from '@atproto/crypto';
import { createServiceJwt } from '@atproto/xrpc-server';
import { ServiceAuth } from '../src/atproto/service-auth.ts';
import { verifyJwtSignature } from '../src/atproto/signature.ts';
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/logger.ts';
import { Service } from '../src/service.ts';
import { clients, env, feed, seed, statusRecord } from './spindle.ts';
import { fmt, percentile, printTable } from './stats.ts';

const HOST = 'spindle.bench';
const AUD = `did:web:${HOST}`;
const METHOD = 'sh.tangled.repo.addSecret';
const A_TOKENS = Number(process.env.BENCH_AUTH_TOKENS ?? 2000);
const B_CLIENTS = 50;
const B_RATE = 500;
const B_SECONDS = 4;
const B_BAD = 1000;

interface Timing {
  p50: number;
  p99: number;
  max: number;
}

function timing(sample: number[]): Timing {
  return { p50: percentile(sample, 50), p99: percentile(sample, 99), max: Math.max(...sample) };
}

async function timeEach(tokens: string[], check: (token: string) => Promise<unknown>): Promise<Timing> {
  const sample: number[] = [];
  for (const t of tokens) {
    const t0 = performance.now();
    await check(t);
    sample.push(performance.now() - t0);
  }
  return timing(sample);
}

function signatureParts(token: string): [Uint8Array, Uint8Array] {
  const [h, p, s] = token.split('.');
  return [Buffer.from(`${h}.${p}`), Buffer.from(s!, 'base64url')];
}

// ---------------------------------------------------------------------------------------- (a)

async function cachedVerify(kp: Keypair): Promise<Record<string, Timing>> {
  const did = 'did:plc:benchissuer';
  const auth = new ServiceAuth({
    hostname: HOST,
    identity: { plcUrl: 'http://127.0.0.1:9', dev: true },
    log: createLogger('silent'),
    resolveKey: async () => kp.did(),
  });
  const tokens: string[] = [];
  for (let i = 0; i < A_TOKENS; i++)
    tokens.push(await createServiceJwt({ iss: did, aud: AUD, lxm: METHOD, keypair: kp }));
  await auth.verify(`Bearer ${tokens[0]}`, METHOD); // fills the key cache
  // Warm both paths before measuring.
  for (const t of tokens.slice(0, 100)) await auth.verify(`Bearer ${t}`, METHOD);
  const key = kp.did();
  return {
    'treadle ServiceAuth.verify': await timeEach(tokens, (t) => auth.verify(`Bearer ${t}`, METHOD)),
    'baseline: OpenSSL signature only': await timeEach(tokens, (t) =>
      verifyJwtSignature(key, ...signatureParts(t), kp.jwtAlg),
    ),
    'baseline: @atproto/crypto signature only': await timeEach(tokens, (t) =>
      verifySignature(key, ...signatureParts(t), { jwtAlg: kp.jwtAlg, allowMalleableSig: true }),
    ),
  };
}

// ---------------------------------------------------------------------------------------- (b)

/** The fake PLC on a worker thread: its URL, and a way to publish a DID's signing key. */
async function plcWorker(): Promise<{
  url: string;
  publish: (did: string, didKey: string) => Promise<void>;
  close: () => void;
}> {
  const worker = new Worker(new URL('./plc-worker.ts', import.meta.url));
  const next = () => new Promise<{ url?: string }>((resolve) => worker.once('message', resolve));
  const { url } = await next();
  return {
    url: url!,
    publish: async (did, didKey) => {
      const reply = next();
      worker.postMessage({ did, didKey });
      await reply;
    },
    close: () => worker.postMessage('close'),
  };
}

/**
 * A bare HTTP server in another process that answers every request 403 at once: the burst sent
 * there instead shows what the machine's load alone does to /events delivery.
 */
function bareRejecter(): Promise<{ url: string; close: () => void }> {
  const child = spawn(
    process.execPath,
    [
      '-e',
      `require('node:http').createServer((q,s)=>{q.resume();q.on('end',()=>{s.writeHead(403,{'content-type':'application/json'});s.end('{"error":"Auth"}')})}).listen(0,'127.0.0.1',function(){console.log(this.address().port)})`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  return new Promise((resolve) => {
    child.stdout!.once('data', (d: Buffer) =>
      resolve({ url: `http://127.0.0.1:${d.toString().trim()}/xrpc/${METHOD}`, close: () => child.kill() }),
    );
  });
}

async function badTokens(publish: (did: string, didKey: string) => Promise<void>): Promise<string[]> {
  const known = 'did:plc:benchknown';
  const real = await Secp256k1Keypair.create();
  await publish(known, real.did());
  const forger = await Secp256k1Keypair.create();
  const now = Math.floor(Date.now() / 1000);
  const tokens: string[] = [];
  const kinds = (process.env.BENCH_AUTH_KINDS ?? '0,1,2,3').split(',').map(Number);
  for (let i = 0; i < B_BAD; i++) {
    switch (kinds[i % kinds.length]) {
      case 0:
        tokens.push(`garbage.${Buffer.from(String(i)).toString('base64url')}.x`);
        break;
      case 1:
        tokens.push(
          await createServiceJwt({ iss: known, aud: AUD, lxm: METHOD, keypair: real, exp: now - 3600 }),
        );
        break;
      case 2:
        tokens.push(await createServiceJwt({ iss: known, aud: AUD, lxm: METHOD, keypair: forger }));
        break;
      default:
        tokens.push(
          await createServiceJwt({ iss: `did:plc:nobody${i}`, aud: AUD, lxm: METHOD, keypair: forger }),
        );
    }
  }
  return tokens;
}

function burst(url: string, tokens: string[]): Promise<{ statuses: Record<string, number>; ms: number }> {
  const worker = new Worker(new URL('./bad-tokens.ts', import.meta.url), {
    workerData: { url, tokens, concurrency: 50 },
  });
  return new Promise((resolve, reject) => {
    worker.once('message', (m) => {
      resolve(m);
      void worker.terminate();
    });
    worker.once('error', reject);
  });
}

type BurstResult = { statuses: Record<string, number>; ms: number };

async function eventsUnderBurst(): Promise<{
  quiet: Timing;
  elsewhere: Timing;
  trivial: Timing;
  trivialBurst: BurstResult;
  loud: Timing;
  burst: BurstResult;
}> {
  const dir = mkdtempSync(join(tmpdir(), 'treadle-bench-auth-'));
  const plc = await plcWorker();
  const bare = await bareRejecter();
  try {
    const e = env(dir, { TREADLE_PLC_URL: plc.url, TREADLE_HOSTNAME: HOST });
    seed(e.TREADLE_DB!, ['knot.example.com'], 0);
    const service = Service.create(loadConfig(e).config, createLogger('silent'));
    await service.start();
    const tokens = await badTokens(plc.publish);
    const events = service.ctx.events;
    let n = 0;
    const write = (_i: number, dueAt: number) => {
      events.append(
        'sh.tangled.pipeline.status',
        `3kc${String(n).padStart(10, '0')}`,
        statusRecord(n, dueAt),
      );
      n++;
    };
    const measure = async (during?: () => Promise<BurstResult>) => {
      const c = await clients(`ws://127.0.0.1:${service.port}/events`, B_CLIENTS, B_RATE * B_SECONDS);
      await c.ready;
      const started = during?.();
      await feed(B_RATE * B_SECONDS, B_RATE, write);
      const latencies = (await c.done).latencies;
      return { latencies, result: await started };
    };
    // Each burst starts once delivery is under way, so it falls inside the measured window.
    const after = (ms: number, url: string) =>
      new Promise((r) => setTimeout(r, ms)).then(() => burst(url, tokens));
    const quiet = await measure();
    const elsewhere = await measure(() => after(500, bare.url));
    const trivial = await measure(() => after(500, `http://127.0.0.1:${service.port}/xrpc/sh.tangled.owner`));
    const loud = await measure(() => after(500, `http://127.0.0.1:${service.port}/xrpc/${METHOD}`));
    await service.stop();
    return {
      quiet: timing(quiet.latencies),
      elsewhere: timing(elsewhere.latencies),
      trivial: timing(trivial.latencies),
      trivialBurst: trivial.result as BurstResult,
      loud: timing(loud.latencies),
      burst: loud.result as BurstResult,
    };
  } finally {
    plc.close();
    bare.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function authBench(): Promise<void> {
  console.log(`\n(a) verification with the issuer's key cached, ${fmt(A_TOKENS)} distinct tokens (ms)`);
  for (const kp of [await Secp256k1Keypair.create(), await P256Keypair.create()]) {
    const rows = await cachedVerify(kp);
    printTable(
      [kp.jwtAlg, 'p50', 'p99', 'max'],
      Object.entries(rows).map(([name, t]) => [name, fmt(t.p50, 3), fmt(t.p99, 3), fmt(t.max, 3)]),
    );
  }
  const b = await eventsUnderBurst();
  console.log(
    `\n(b) /events write → received (ms), ${B_CLIENTS} clients, ${B_RATE} events/s for ${B_SECONDS} s; ` +
      `burst of ${fmt(B_BAD)} bad-token requests (50 at a time, from another thread)`,
  );
  printTable(
    ['', 'p50', 'p99', 'max'],
    [
      ['baseline: no burst', fmt(b.quiet.p50, 2), fmt(b.quiet.p99, 2), fmt(b.quiet.max, 2)],
      [
        'baseline: burst to a bare 403 server',
        fmt(b.elsewhere.p50, 2),
        fmt(b.elsewhere.p99, 2),
        fmt(b.elsewhere.max, 2),
      ],
      [
        'baseline: same burst to a treadle route without auth (405)',
        fmt(b.trivial.p50, 2),
        fmt(b.trivial.p99, 2),
        fmt(b.trivial.max, 2),
      ],
      ['bad tokens to treadle (403)', fmt(b.loud.p50, 2), fmt(b.loud.p99, 2), fmt(b.loud.max, 2)],
    ],
  );
  const answered = Object.entries(b.burst.statuses)
    .map(([code, count]) => `${count}× ${code}`)
    .join(', ');
  console.log(
    `bad-token burst: ${answered} in ${fmt(b.burst.ms)} ms (${fmt((B_BAD / b.burst.ms) * 1000)} requests/s); ` +
      `the same burst without auth: ${fmt(b.trivialBurst.ms)} ms`,
  );
}
