/**
 * DID → PDS endpoint: did:plc through the PLC directory (BOBBIN_PLC_URL), did:web through the
 * host's `/.well-known/did.json` (http:// in dev mode). Fetches are bounded by a timeout.
 */
import { z } from 'zod';
import { NotFoundError, PermanentError, RetryableError } from '../errors.ts';

export interface IdentityOptions {
  plcUrl: string;
  dev: boolean;
  timeoutMs?: number;
  fetch?: typeof fetch;
}

const didDoc = z.object({
  id: z.string(),
  service: z.array(z.object({ id: z.string(), type: z.string(), serviceEndpoint: z.unknown() })).optional(),
});

export function didDocumentUrl(did: string, o: IdentityOptions): string {
  if (/^did:plc:[a-z2-7]{1,64}$/.test(did)) return `${o.plcUrl.replace(/\/$/, '')}/${did}`;
  const web = /^did:web:([A-Za-z0-9.%-]+)$/.exec(did);
  if (web) return `${o.dev ? 'http' : 'https'}://${decodeURIComponent(web[1]!)}/.well-known/did.json`;
  throw new PermanentError(
    `cannot resolve ${JSON.stringify(did)}: only did:plc and did:web (no path) are supported`,
  );
}

/** The `#atproto_pds` service endpoint of `did`. */
export async function resolvePds(did: string, o: IdentityOptions): Promise<string> {
  const url = didDocumentUrl(did, o);
  const body = await getJson(url, o, `DID document of ${did}`);
  const doc = didDoc.safeParse(body);
  if (!doc.success || doc.data.id !== did) {
    throw new PermanentError(`DID document of ${did} at ${url} is malformed or names another DID`);
  }
  const pds = doc.data.service?.find(
    (s) =>
      (s.id === '#atproto_pds' || s.id === `${did}#atproto_pds`) && s.type === 'AtprotoPersonalDataServer',
  );
  if (!pds || typeof pds.serviceEndpoint !== 'string' || !/^https?:\/\//.test(pds.serviceEndpoint)) {
    throw new PermanentError(`DID document of ${did} names no atproto PDS`);
  }
  return pds.serviceEndpoint.replace(/\/$/, '');
}

export interface ListedRecord {
  uri: string;
  value: unknown;
}

const listPage = z.object({
  records: z.array(z.object({ uri: z.string(), value: z.unknown() })),
  cursor: z.string().optional(),
});

/** Every record of `collection` in `did`'s repo, following `com.atproto.repo.listRecords` pages. */
export async function listAllRecords(
  pds: string,
  did: string,
  collection: string,
  o: IdentityOptions,
  maxPages = 1000,
): Promise<ListedRecord[]> {
  const out: ListedRecord[] = [];
  let cursor: string | undefined;
  for (let page = 0; page < maxPages; page++) {
    const q = new URLSearchParams({ repo: did, collection, limit: '100' });
    if (cursor) q.set('cursor', cursor);
    const body = await getJson(
      `${pds}/xrpc/com.atproto.repo.listRecords?${q}`,
      o,
      `${collection} records of ${did}`,
    );
    const parsed = listPage.safeParse(body);
    if (!parsed.success)
      throw new PermanentError(`listRecords of ${collection} for ${did} returned a malformed page`);
    out.push(...parsed.data.records);
    if (!parsed.data.cursor || parsed.data.records.length === 0 || parsed.data.cursor === cursor) return out;
    cursor = parsed.data.cursor;
  }
  return out;
}

async function getJson(url: string, o: IdentityOptions, what: string): Promise<unknown> {
  let res: Response;
  try {
    res = await (o.fetch ?? fetch)(url, {
      headers: { accept: 'application/json' },
      signal: AbortSignal.timeout(o.timeoutMs ?? 10_000),
    });
  } catch (err) {
    throw new RetryableError(`fetching ${what} from ${url} failed: ${(err as Error).message}`, {
      cause: err,
    });
  }
  if (res.status === 404) throw new NotFoundError(`${what} not found at ${url}`);
  if (!res.ok) {
    const permanent = res.status >= 400 && res.status < 500 && res.status !== 429;
    const message = `fetching ${what} from ${url} failed: HTTP ${res.status}`;
    throw permanent ? new PermanentError(message) : new RetryableError(message);
  }
  try {
    return await res.json();
  } catch (err) {
    throw new PermanentError(`${what} from ${url} is not JSON`, { cause: err });
  }
}
