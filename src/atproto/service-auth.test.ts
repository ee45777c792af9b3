/**
 * Service auth with real keys: secp256k1 and P-256 keypairs from `@atproto/crypto`, tokens
 * signed as a PDS signs them (`createServiceJwt`), DID documents served by the fake PLC and by a
 * local did:web server.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Keypair, P256Keypair, Secp256k1Keypair } from '@atproto/crypto';
import { createServiceJwt } from '@atproto/xrpc-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { didDocumentKeys, FakePds } from '../../fakes/pds.ts';
import { XrpcError } from '../errors.ts';
import { createLogger } from '../logger.ts';
import { ServiceAuth } from './service-auth.ts';

const HOST = 'spindle.example.test:8443';
const AUD = `did:web:${HOST}`;
const METHOD = 'sh.tangled.repo.addSecret';
const ALICE = 'did:plc:alice2222222222222222222';

let pds: FakePds;
let web: Server;
let webDid: string;
let webKey: Keypair;
let alice: Secp256k1Keypair;
let resolutions = 0;

function auth(): ServiceAuth {
  const identity = { plcUrl: pds.url, dev: true };
  return new ServiceAuth({ hostname: HOST, identity, log: createLogger('silent') });
}

async function token(over: Partial<Parameters<typeof createServiceJwt>[0]> = {}): Promise<string> {
  return createServiceJwt({ iss: ALICE, aud: AUD, lxm: METHOD, keypair: alice, ...over });
}

/** A JWT with any header and payload, signed by `key` (or with `signature` as given). */
async function handmade(header: object, payload: object, key: Keypair = alice, signature?: string) {
  const enc = (v: object) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const input = `${enc(header)}.${enc(payload)}`;
  const sig = signature ?? Buffer.from(await key.sign(Buffer.from(input))).toString('base64url');
  return `${input}.${sig}`;
}

async function rejected(ts: ServiceAuth, jwt: string | undefined, method = METHOD): Promise<string> {
  try {
    await ts.verify(jwt === undefined ? undefined : `Bearer ${jwt}`, method);
  } catch (err) {
    expect(err).toBeInstanceOf(XrpcError);
    expect((err as XrpcError).status).toBe(403);
    expect((err as XrpcError).error).toBe('Auth');
    return (err as Error).message;
  }
  throw new Error('accepted');
}

beforeAll(async () => {
  pds = await FakePds.start();
  alice = await Secp256k1Keypair.create({ exportable: true });
  pds.setSigningKey(ALICE, alice.did());
  webKey = await P256Keypair.create();
  web = createServer((req, res) => {
    resolutions++;
    if (req.url !== '/.well-known/did.json') return void res.writeHead(404).end();
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ id: webDid, verificationMethod: didDocumentKeys(webDid, webKey.did()) }));
  });
  await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
  webDid = `did:web:127.0.0.1%3A${(web.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await pds.close();
  web.close();
});

describe('service auth', () => {
  it('accepts an ES256K token from a did:plc issuer and an ES256 token from a did:web issuer', async () => {
    const ts = auth();
    expect(await ts.verify(`Bearer ${await token()}`, METHOD)).toEqual({ did: ALICE });
    const fromWeb = await createServiceJwt({ iss: webDid, aud: AUD, lxm: null, keypair: webKey });
    expect(await ts.verify(`Bearer ${fromWeb}`, METHOD)).toEqual({ did: webDid });
  });

  it('accepts the audience with the port raw or percent-encoded', async () => {
    const ts = auth();
    await ts.verify(`Bearer ${await token({ aud: 'did:web:spindle.example.test%3A8443' })}`, METHOD);
    await ts.verify(`Bearer ${await token({ aud: 'did:web:spindle.example.test:8443' })}`, METHOD);
  });

  it('rejects every bad token with 403 Auth', async () => {
    const ts = auth();
    const now = Math.floor(Date.now() / 1000);
    const claims = { iss: ALICE, aud: AUD, exp: now + 60, iat: now, lxm: METHOD };
    expect(await rejected(ts, undefined)).toMatch(/missing/);
    expect(await rejected(ts, 'garbage')).toMatch(/malformed/);
    expect(await rejected(ts, await handmade({ alg: 'none' }, claims, alice, ''))).toMatch(
      /"none" is not allowed/,
    );
    expect(await rejected(ts, await handmade({ alg: 'HS256', typ: 'JWT' }, claims))).toMatch(/"HS256"/);
    expect(await rejected(ts, await token({ aud: 'did:web:other.example' }))).toMatch(/audience/);
    expect(await rejected(ts, await token({ iat: now - 600, exp: now - 120 }))).toMatch(/expired/);
    expect(
      await rejected(ts, await handmade({ alg: 'ES256K', typ: 'JWT' }, { ...claims, exp: undefined })),
    ).toMatch(/no exp/);
    expect(await rejected(ts, await token({ iat: now + 3600, exp: now + 3660 }))).toMatch(/future/);
    const stranger = await Secp256k1Keypair.create();
    expect(await rejected(ts, await token({ keypair: stranger }))).toMatch(/signature/);
    expect(await rejected(ts, await token({ iss: 'did:plc:nobody22222222222222222' }))).toMatch(
      /did not resolve/,
    );
    expect(await rejected(ts, await token({ lxm: 'sh.tangled.repo.removeSecret' }))).toMatch(
      /not sh\.tangled/,
    );
    // The signature covers the payload: a changed claim fails.
    const [h, , s] = (await token()).split('.');
    const forged = Buffer.from(
      JSON.stringify({ ...claims, iss: ALICE, lxm: METHOD, exp: now + 999 }),
    ).toString('base64url');
    expect(await rejected(ts, `${h}.${forged}.${s}`)).toMatch(/signature/);
  });

  it('caches the issuer’s key, and refreshes it once when a token is signed by a rotated key', async () => {
    const ts = auth();
    const before = resolutions;
    const fromWeb = () => createServiceJwt({ iss: webDid, aud: AUD, lxm: METHOD, keypair: webKey });
    await ts.verify(`Bearer ${await fromWeb()}`, METHOD);
    await ts.verify(`Bearer ${await fromWeb()}`, METHOD);
    expect(resolutions - before).toBe(1);
    webKey = await P256Keypair.create(); // the issuer rotates; the cached document is stale
    expect(await ts.verify(`Bearer ${await fromWeb()}`, METHOD)).toEqual({ did: webDid });
    expect(resolutions - before).toBe(2);
  });

  it('bounds lookups of issuers it has never seen, and still serves the ones it knows', async () => {
    const looked: string[] = [];
    const ts = new ServiceAuth({
      hostname: HOST,
      identity: { plcUrl: pds.url, dev: true },
      log: createLogger('silent'),
      resolveKey: async (did) => {
        looked.push(did);
        if (did === ALICE) return alice.did();
        throw new Error('not found');
      },
    });
    await ts.verify(`Bearer ${await token()}`, METHOD);
    const reasons: string[] = [];
    for (let i = 0; i < 80; i++) reasons.push(await rejected(ts, await token({ iss: `did:plc:random${i}` })));
    expect(looked.length).toBeGreaterThanOrEqual(50);
    expect(looked.length).toBeLessThan(60);
    expect(reasons.filter((r) => r.includes('too many unknown issuers')).length).toBe(81 - looked.length);
    // Alice's key is cached: her tokens still pass while the bucket is empty.
    expect(await ts.verify(`Bearer ${await token()}`, METHOD)).toEqual({ did: ALICE });
  });

  it('turns a flood of forged tokens from a known issuer into at most one lookup', async () => {
    const ts = auth();
    const fromWeb = () => createServiceJwt({ iss: webDid, aud: AUD, lxm: METHOD, keypair: webKey });
    await ts.verify(`Bearer ${await fromWeb()}`, METHOD);
    const before = resolutions;
    const forger = await P256Keypair.create();
    for (let i = 0; i < 20; i++) {
      const forged = await createServiceJwt({ iss: webDid, aud: AUD, lxm: METHOD, keypair: forger });
      expect(await rejected(ts, forged)).toMatch(/signature does not match/);
    }
    expect(resolutions - before).toBe(1);
    expect(await ts.verify(`Bearer ${await fromWeb()}`, METHOD)).toEqual({ did: webDid });
  });
});
