/**
 * Callers of the daemon's service-auth methods: each DID gets a real secp256k1 key published
 * through the fake PLC, and calls carry a token signed as a PDS signs one (aud = the spindle's
 * did:web, lxm = the method).
 */
import { Secp256k1Keypair } from '@atproto/crypto';
import { createServiceJwt } from '@atproto/xrpc-server';
import type { FakePds } from '../../fakes/pds.ts';
import { HOSTNAME } from './stack.ts';

export interface XrpcReply {
  status: number;
  type: string | null;
  text: string;
  // biome-ignore lint/suspicious/noExplicitAny: test replies are checked field by field
  json: any;
}

export class Callers {
  private readonly keys = new Map<string, Secp256k1Keypair>();

  /** Gives each DID a signing key and publishes it in its DID document. */
  async register(pds: FakePds, dids: readonly string[]): Promise<void> {
    for (const did of dids) {
      const kp = await Secp256k1Keypair.create();
      this.keys.set(did, kp);
      pds.setSigningKey(did, kp.did());
    }
  }

  token(did: string, lxm: string, over: { aud?: string } = {}): Promise<string> {
    const keypair = this.keys.get(did);
    if (!keypair) throw new Error(`no key registered for ${did}`);
    return createServiceJwt({ iss: did, aud: over.aud ?? `did:web:${HOSTNAME}`, lxm, keypair });
  }

  /** POSTs `body` (or GETs with `query`) to `/xrpc/<nsid>` as `as` (no token when null). */
  async call(base: string, nsid: string, as: string | null, body?: object, query = ''): Promise<XrpcReply> {
    const headers: Record<string, string> = {};
    if (as) headers.authorization = `Bearer ${await this.token(as, nsid)}`;
    if (body) headers['content-type'] = 'application/json';
    const res = await fetch(`${base}/xrpc/${nsid}${query}`, {
      method: body ? 'POST' : 'GET',
      headers,
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    return {
      status: res.status,
      type: res.headers.get('content-type'),
      text,
      json: text ? JSON.parse(text) : undefined,
    };
  }
}
