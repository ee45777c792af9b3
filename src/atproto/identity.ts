/**
 * DID → PDS endpoint: did:plc through the PLC directory (TREADLE_PLC_URL), did:web through the
 * host's `/.well-known/did.json` (http:// in dev mode); records and blobs from a PDS. Every host
 * but the configured PLC directory comes from someone's record, so outside dev mode those
 * fetches reach only public addresses (net/public-fetch.ts), bounded in size and time.
 */
import { isCidForBytes, parseCidSafe } from '@atproto/lex-data';
import { z } from 'zod';
import { NotFoundError, PermanentError, RetryableError } from '../errors.ts';
import { fetchPublic } from '../net/public-fetch.ts';

export interface IdentityOptions {
  plcUrl: string;
  dev: boolean;
  timeoutMs?: number;
  /** Bound on a JSON response (DID document, record page); 4 MiB by default. */
  maxJsonBytes?: number;
}

const didDoc = z.object({
  id: z.string(),
  verificationMethod: z
    .array(
      z.object({
        id: z.string(),
        type: z.string(),
        controller: z.string().optional(),
        publicKeyMultibase: z.string().optional(),
      }),
    )
    .optional(),
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

/**
 * The `#atproto` signing key of `did` as a `did:key` (the form `@atproto/crypto` verifies with);
 * only `Multikey` entries, the form PLC and current PDSes publish.
 */
export async function resolveSigningKey(did: string, o: IdentityOptions): Promise<string> {
  const url = didDocumentUrl(did, o);
  const doc = didDoc.safeParse(await getJson(url, o, `DID document of ${did}`));
  if (!doc.success || doc.data.id !== did) {
    throw new PermanentError(`DID document of ${did} at ${url} is malformed or names another DID`);
  }
  const key = doc.data.verificationMethod?.find((m) => m.id === '#atproto' || m.id === `${did}#atproto`);
  if (key?.type !== 'Multikey' || !key.publicKeyMultibase?.startsWith('z')) {
    throw new PermanentError(`DID document of ${did} has no #atproto Multikey`);
  }
  return `did:key:${key.publicKeyMultibase}`;
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

/** The JSON body of a GET; 404 (or an XRPC `RecordNotFound`/`BlobNotFound`) is NotFoundError. */
async function getJson(url: string, o: IdentityOptions, what: string): Promise<unknown> {
  const res = await get(url, o, what, o.maxJsonBytes ?? 4 * 1024 * 1024, 'application/json');
  try {
    return JSON.parse(res.body.toString('utf8'));
  } catch (err) {
    throw new PermanentError(`${what} from ${url} is not JSON`, { cause: err });
  }
}

async function get(url: string, o: IdentityOptions, what: string, maxBytes: number, accept: string) {
  // The PLC directory is the operator's choice; every other host comes from someone's record.
  const trusted = url.startsWith(`${o.plcUrl.replace(/\/$/, '')}/`);
  const res = await fetchPublic(url, {
    dev: o.dev || trusted,
    timeoutMs: o.timeoutMs,
    maxBytes,
    what,
    accept,
  });
  if (res.status >= 200 && res.status < 300) return res;
  if (
    res.status === 404 ||
    xrpcError(res.body) === 'RecordNotFound' ||
    xrpcError(res.body) === 'BlobNotFound'
  )
    throw new NotFoundError(`${what} not found at ${url}`);
  const permanent = res.status >= 400 && res.status < 500 && res.status !== 429;
  const message = `fetching ${what} from ${url} failed: HTTP ${res.status}`;
  throw permanent ? new PermanentError(message) : new RetryableError(message);
}

function xrpcError(body: Buffer): string | undefined {
  try {
    const v = JSON.parse(body.toString('utf8')) as { error?: unknown };
    return typeof v.error === 'string' ? v.error : undefined;
  } catch {
    return undefined;
  }
}

const recordBody = z.object({ uri: z.string(), value: z.unknown() });

/** One record from `did`'s PDS (`com.atproto.repo.getRecord`); NotFoundError when it is gone. */
export async function getRecord(
  pds: string,
  did: string,
  collection: string,
  rkey: string,
  o: IdentityOptions,
): Promise<unknown> {
  const q = new URLSearchParams({ repo: did, collection, rkey });
  const what = `record at://${did}/${collection}/${rkey}`;
  const parsed = recordBody.safeParse(await getJson(`${pds}/xrpc/com.atproto.repo.getRecord?${q}`, o, what));
  if (!parsed.success) throw new PermanentError(`getRecord of ${what} returned a malformed body`);
  return parsed.data.value;
}

/**
 * A blob from `did`'s PDS (`com.atproto.sync.getBlob`), at most `maxBytes`; its bytes must hash
 * to `cid`, so a PDS cannot substitute other content.
 */
export async function getBlob(
  pds: string,
  did: string,
  cid: string,
  maxBytes: number,
  o: IdentityOptions,
): Promise<Buffer> {
  const q = new URLSearchParams({ did, cid });
  const what = `blob ${cid} of ${did}`;
  const res = await get(`${pds}/xrpc/com.atproto.sync.getBlob?${q}`, o, what, maxBytes, '*/*');
  const parsed = parseCidSafe(cid);
  if (!parsed || !(await isCidForBytes(parsed, res.body)))
    throw new PermanentError(`${what}: the PDS returned bytes that do not match the CID`);
  return res.body;
}
