/**
 * atproto inter-service auth for the spindle's authenticated XRPCs (spindle protocol §10.2,
 * 2026 spec §3.9): `Authorization: Bearer <jwt>`, ES256K or ES256 only, signed by the `#atproto`
 * key of the issuer's DID document; `aud` is this service's `did:web` (a port's colon raw or as
 * `%3A`); `exp` required and in the future, `iat` not in the future (30 s leeway each); `lxm`,
 * when present, names the method called. JWT parsing and the signature flow are
 * `@atproto/xrpc-server`'s `verifyJwt`, with the signature itself checked by OpenSSL
 * (signature.ts); this file adds the claims stock leaves out and the key cache: a day on
 * success, two minutes on failure, and a forced refresh on a signature mismatch (the issuer may
 * have rotated its key), at most one per issuer per 30 s so a flood of forged tokens cannot
 * turn into a flood of DID lookups; lookups of issuers not cached are bounded too (a burst of
 * 50, then 10 a second), so tokens naming random DIDs cannot either, and at most
 * four run at once.
 */
import { verifyJwt } from '@atproto/xrpc-server';
import { XrpcError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics/metrics.ts';
import { type IdentityOptions, resolveSigningKey } from './identity.ts';
import { verifyJwtSignature } from './signature.ts';

const ALGS = new Set(['ES256K', 'ES256']);
const LEEWAY_S = 30;
const HIT_MS = 24 * 60 * 60 * 1000;
const MISS_MS = 2 * 60 * 1000;
const FORCED_REFRESH_MS = 30 * 1000;
/** Lookups of issuers not in the cache: a burst of this many, then this many a second. */
const LOOKUP_BURST = 50;
const LOOKUPS_PER_S = 10;
/** Lookups running at once; more wait their turn (keep-alive connections, no spikes of work). */
const LOOKUPS_IN_FLIGHT = 4;
const MAX_CACHED = 10_000;

export interface ServiceAuthOptions {
  /** `TREADLE_HOSTNAME`, possibly with a port. */
  hostname: string;
  identity: IdentityOptions;
  log: Logger;
  /** Overrides the resolver (tests count resolutions with it). */
  resolveKey?: (did: string) => Promise<string>;
  /** Counts refusals by reason. */
  metrics?: Pick<Metrics, 'authRefusals'>;
}

interface CachedKey {
  key?: string;
  error?: string;
  until: number;
  /** When a signature mismatch last forced a fresh lookup. */
  forcedAt?: number;
}

/** The caller a valid token names. */
export interface Caller {
  did: string;
}

export class ServiceAuth {
  /** The audiences accepted: `did:web:host:port` and `did:web:host%3Aport`. */
  readonly audiences: ReadonlySet<string>;
  private readonly cache = new Map<string, CachedKey>();
  private readonly inflight = new Map<string, Promise<string>>();
  private readonly o: ServiceAuthOptions;
  private lookupTokens = LOOKUP_BURST;
  private running = 0;
  private readonly waiting: Array<() => void> = [];
  private lookupsAt = Date.now();

  constructor(o: ServiceAuthOptions) {
    this.o = o;
    const raw = `did:web:${o.hostname}`;
    this.audiences = new Set([raw, `did:web:${o.hostname.replace(/:/g, '%3A')}`]);
  }

  /**
   * The verified caller of `method`; otherwise a 403 `Auth` XRPC error, as stock answers
   * (`signature verification failed: <why>`).
   */
  async verify(authorization: string | undefined, method: string): Promise<Caller> {
    const token = (authorization ?? '').replace(/^Bearer\s+/i, '').trim();
    const fail = (why: string, reason: string): never => {
      this.o.metrics?.authRefusals.inc({ reason });
      throw new XrpcError(403, 'Auth', `signature verification failed: ${why}`);
    };
    if (!token) fail('missing bearer token', 'missing');
    const header = decodeSegment(token.split('.')[0]);
    const payload = decodeSegment(token.split('.')[1]);
    if (!header || !payload || token.split('.').length !== 3) fail('malformed token', 'malformed');
    if (typeof header!.alg !== 'string' || !ALGS.has(header!.alg))
      fail(`algorithm ${JSON.stringify(header!.alg)} is not allowed (ES256K or ES256 only)`, 'algorithm');
    const now = Date.now() / 1000;
    if (typeof payload!.aud !== 'string' || !this.audiences.has(payload!.aud))
      fail(`audience ${JSON.stringify(payload!.aud)} is not ${[...this.audiences][0]}`, 'audience');
    if (typeof payload!.exp !== 'number') fail('token has no exp', 'malformed');
    if ((payload!.exp as number) + LEEWAY_S < now) fail('token expired', 'expired');
    if (payload!.iat !== undefined && (typeof payload!.iat !== 'number' || payload!.iat > now + LEEWAY_S))
      fail('token issued in the future', 'not_yet_valid');
    if (payload!.lxm !== undefined && payload!.lxm !== method)
      fail(`token is for ${JSON.stringify(payload!.lxm)}, not ${method}`, 'method');
    try {
      // aud and lxm are checked above (two aud forms; lxm only when present); exp again here.
      const verified = await verifyJwt(
        token,
        null,
        null,
        (iss, refresh) => this.signingKey(iss.split('#')[0]!, refresh),
        verifyJwtSignature,
      );
      return { did: verified.iss.split('#')[0]! };
    } catch (err) {
      if (err instanceof XrpcError) throw err;
      return fail((err as Error).message, 'signature');
    }
  }

  /** The issuer's key: cached, or resolved once however many requests ask at the same time. */
  private async signingKey(did: string, refresh: boolean): Promise<string> {
    const hit = this.cache.get(did);
    const now = Date.now();
    if (!refresh && hit && hit.until > now) {
      if (hit.key) return hit.key;
      throw new Error(`issuer ${did} did not resolve: ${hit.error}`);
    }
    // The same key again makes verifyJwt reject the token without a lookup.
    if (refresh && hit?.key && hit.forcedAt !== undefined && now - hit.forcedAt < FORCED_REFRESH_MS)
      return hit.key;
    let pending = this.inflight.get(did);
    if (!pending && !hit?.key && !this.takeLookup(now))
      throw new Error('too many unknown issuers to look up right now; try again in a few seconds');
    if (!pending) {
      pending = this.limited(() =>
        (this.o.resolveKey ?? ((d) => resolveSigningKey(d, this.o.identity)))(did),
      );
      this.inflight.set(did, pending);
      pending.finally(() => this.inflight.delete(did)).catch(() => {});
    }
    try {
      const key = await pending;
      this.remember(did, { key, until: Date.now() + HIT_MS, ...(refresh ? { forcedAt: now } : {}) });
      return key;
    } catch (err) {
      const message = (err as Error).message;
      this.remember(did, { error: message, until: Date.now() + MISS_MS });
      this.o.log.debug({ did, err: message }, 'service-auth issuer did not resolve');
      throw new Error(`issuer ${did} did not resolve: ${message}`);
    }
  }

  /** Runs `fn` once fewer than LOOKUPS_IN_FLIGHT lookups are running. */
  private async limited<T>(fn: () => Promise<T>): Promise<T> {
    if (this.running >= LOOKUPS_IN_FLIGHT) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.running++;
    try {
      return await fn();
    } finally {
      this.running--;
      this.waiting.shift()?.();
    }
  }

  /**
   * A token from the bucket that bounds lookups of issuers never seen (or whose lookup failed):
   * forged tokens naming random DIDs must not become a flood of directory requests. Issuers
   * already cached, and their key refreshes, do not draw from it.
   */
  private takeLookup(now: number): boolean {
    this.lookupTokens = Math.min(
      LOOKUP_BURST,
      this.lookupTokens + ((now - this.lookupsAt) / 1000) * LOOKUPS_PER_S,
    );
    this.lookupsAt = now;
    if (this.lookupTokens < 1) return false;
    this.lookupTokens -= 1;
    return true;
  }

  private remember(did: string, entry: CachedKey): void {
    this.cache.delete(did);
    this.cache.set(did, entry);
    if (this.cache.size > MAX_CACHED) this.cache.delete(this.cache.keys().next().value!);
  }
}

function decodeSegment(segment: string | undefined): Record<string, unknown> | undefined {
  if (!segment || !/^[A-Za-z0-9_-]+$/.test(segment)) return undefined;
  try {
    const value = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
    return value && typeof value === 'object' && !Array.isArray(value) ? value : undefined;
  } catch {
    return undefined;
  }
}
