/**
 * HTTP fetches to hosts named by other people's records (a pull author's PDS, its blobs, a
 * did:web document): outside dev mode they may reach only public addresses. A host name is
 * refused when any address it resolves to is private, loopback, link-local or otherwise
 * special-purpose (checked in the connection's DNS lookup, so the address used is the address
 * checked); an IP literal is checked before connecting; redirects are followed by hand (at
 * most three) so each hop is checked too. Bodies are read up to a byte bound, and the whole
 * exchange is bounded in time.
 */
import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { BlockList, isIP } from 'node:net';
import { Agent, fetch as undiciFetch } from 'undici';
import { PermanentError, RetryableError } from '../errors.ts';

const MAX_REDIRECTS = 3;

/** A fetch refused because it would reach a non-public address, or a body over its bound. */
export class FetchRefused extends PermanentError {}

const blocked = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24],
  ['192.88.99.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const)
  blocked.addSubnet(net, prefix, 'ipv4');
for (const [net, prefix] of [
  ['::', 128],
  ['::1', 128],
  ['64:ff9b::', 96],
  ['64:ff9b:1::', 48],
  ['100::', 64],
  ['2001::', 23],
  ['2001:db8::', 32],
  ['2002::', 16],
  ['fc00::', 7],
  ['fe80::', 10],
  ['fec0::', 10],
  ['ff00::', 8],
] as const)
  blocked.addSubnet(net, prefix, 'ipv6');

/** Whether `address` (an IPv4 or IPv6 literal) is a public unicast address. */
export function isPublicAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return !blocked.check(address, 'ipv4');
  if (family !== 6) return false;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return isPublicAddress(mapped[1]!);
  return !blocked.check(address, 'ipv6');
}

type LookupCallback = (
  err: NodeJS.ErrnoException | null,
  address: string | LookupAddress[],
  family?: number,
) => void;

function guardedLookup(hostname: string, options: LookupOptions, cb: LookupCallback): void {
  dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
    if (err) return cb(err, []);
    const bad = addresses.find((a) => !isPublicAddress(a.address));
    if (bad) return cb(new FetchRefused(`${hostname} resolves to a non-public address (${bad.address})`), []);
    if (options.all) return cb(null, addresses);
    const first = addresses[0]!;
    cb(null, first.address, first.family);
  });
}

let publicAgent: Agent | undefined;

/** One connection pool for every public fetch, its DNS lookups guarded. */
function publicDispatcher(): Agent {
  if (!publicAgent) publicAgent = new Agent({ connect: { lookup: guardedLookup } });
  return publicAgent;
}

export interface PublicFetchOptions {
  /** Dev mode: any address (fakes on loopback), plain http allowed. */
  dev: boolean;
  timeoutMs?: number;
  maxBytes: number;
  /** What is being fetched, for error messages. */
  what: string;
  accept?: string;
}

export interface FetchedBody {
  status: number;
  contentType: string;
  body: Buffer;
}

/**
 * GETs `url` and reads its body (any status; callers interpret it). Throws FetchRefused for a
 * non-public address, a disallowed scheme or a body over `maxBytes`, RetryableError when the
 * host cannot be reached or the time bound passes.
 */
export async function fetchPublic(url: string, o: PublicFetchOptions): Promise<FetchedBody> {
  const signal = AbortSignal.timeout(o.timeoutMs ?? 10_000);
  let target = new URL(url);
  for (let hop = 0; ; hop++) {
    checkTarget(target, o);
    let res: Awaited<ReturnType<typeof undiciFetch>>;
    try {
      res = await undiciFetch(target, {
        headers: { accept: o.accept ?? '*/*' },
        redirect: 'manual',
        signal,
        dispatcher: o.dev ? undefined : publicDispatcher(),
      });
    } catch (err) {
      const cause = (err as { cause?: unknown }).cause;
      if (cause instanceof FetchRefused) throw cause;
      throw new RetryableError(`fetching ${o.what} from ${target.origin} failed: ${describe(err)}`, {
        cause: err,
      });
    }
    const location = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && location) {
      await res.body?.cancel();
      if (hop >= MAX_REDIRECTS)
        throw new FetchRefused(`fetching ${o.what}: more than ${MAX_REDIRECTS} redirects`);
      target = new URL(location, target);
      continue;
    }
    const declared = Number(res.headers.get('content-length') ?? Number.NaN);
    if (declared > o.maxBytes) {
      await res.body?.cancel();
      throw new FetchRefused(`${o.what} is ${declared} bytes, over the ${o.maxBytes}-byte bound`);
    }
    const body = await readBounded(res.body, o, signal);
    return { status: res.status, contentType: res.headers.get('content-type') ?? '', body };
  }
}

function checkTarget(url: URL, o: PublicFetchOptions): void {
  if (url.protocol !== 'https:' && !(o.dev && url.protocol === 'http:'))
    throw new FetchRefused(
      `fetching ${o.what}: ${url.protocol}// is not allowed (https only outside dev mode)`,
    );
  if (o.dev) return;
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (isIP(host) && !isPublicAddress(host))
    throw new FetchRefused(`fetching ${o.what}: ${host} is not a public address`);
}

async function readBounded(
  body: ReadableStream<Uint8Array> | null,
  o: PublicFetchOptions,
  signal: AbortSignal,
): Promise<Buffer> {
  if (!body) return Buffer.alloc(0);
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for await (const chunk of body) {
      size += chunk.byteLength;
      if (size > o.maxBytes) {
        await body.cancel().catch(() => {});
        throw new FetchRefused(`${o.what} is over the ${o.maxBytes}-byte bound`);
      }
      chunks.push(chunk);
    }
  } catch (err) {
    if (err instanceof FetchRefused) throw err;
    const why = signal.aborted ? 'timed out' : describe(err);
    throw new RetryableError(`reading ${o.what} failed: ${why}`, { cause: err });
  }
  return Buffer.concat(chunks);
}

function describe(err: unknown): string {
  const cause = (err as { cause?: { message?: string } }).cause;
  const message = err instanceof Error ? err.message : String(err);
  return cause?.message ? `${message} (${cause.message})` : message;
}

/**
 * POSTs `body` to a URL from configuration or someone's record under the same rules as
 * `fetchPublic` (public addresses only outside dev mode, https only, bounded in time). No
 * redirect is followed: a hook sink that moved must be reconfigured. Returns the status; the
 * response body is discarded.
 */
export async function postPublic(
  url: string,
  body: string,
  headers: Record<string, string>,
  o: Pick<PublicFetchOptions, 'dev' | 'what' | 'timeoutMs'>,
): Promise<number> {
  const target = new URL(url);
  checkTarget(target, { ...o, maxBytes: 0 });
  let res: Awaited<ReturnType<typeof undiciFetch>>;
  try {
    res = await undiciFetch(target, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body,
      redirect: 'manual',
      signal: AbortSignal.timeout(o.timeoutMs ?? 10_000),
      dispatcher: o.dev ? undefined : publicDispatcher(),
    });
  } catch (err) {
    throw new RetryableError(`posting ${o.what}: ${describe(err)}`);
  }
  await res.body?.cancel();
  return res.status;
}
