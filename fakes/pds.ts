/**
 * A fake PLC directory and PDS in one HTTP server: `GET /<did:plc>` answers a DID document
 * whose `#atproto_pds` service points back at this server, and
 * `GET /xrpc/com.atproto.repo.listRecords?repo&collection&limit&cursor&reverse` pages through
 * the records stored here newest (highest record key) first, with a cursor on every non-empty
 * page, as a PDS does;
 * `GET /xrpc/com.atproto.repo.getRecord?repo&collection&rkey` answers one record (400
 * `RecordNotFound` when absent) and `GET /xrpc/com.atproto.sync.getBlob?did&cid` a stored blob's
 * bytes (400 `BlobNotFound`), blobs being addressed by their real raw-sha256 CID.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cidForRawHash } from '@atproto/lex-data';

/** The `verificationMethod` entries of a DID document holding `didKey` as `#atproto`. */
export function didDocumentKeys(did: string, didKey: string | undefined) {
  if (!didKey) return [];
  return [
    {
      id: `${did}#atproto`,
      type: 'Multikey',
      controller: did,
      publicKeyMultibase: didKey.slice('did:key:'.length),
    },
  ];
}

/** A blob reference as it appears in a record's JSON. */
export interface BlobJson {
  $type: 'blob';
  ref: { $link: string };
  mimeType: string;
  size: number;
}

export class FakePds {
  /** Paths (with query) of every request, in order. */
  readonly requests: string[] = [];
  /** did → collection → rkey → record */
  private readonly repos = new Map<string, Map<string, Map<string, unknown>>>();
  /** did → cid → blob */
  private readonly blobs = new Map<string, Map<string, { bytes: Buffer; mimeType: string }>>();
  /** did → its `#atproto` key as a did:key */
  private readonly keys = new Map<string, string>();
  private readonly server: Server;
  private failures = 0;
  /**
   * Called with each `listRecords` page after it is read and before it is answered: a test can
   * change records meanwhile, as a real PDS's answer can be older than commits made while it
   * was in flight.
   */
  beforeListAnswer: ((repo: string, collection: string) => void | Promise<void>) | undefined;

  private constructor(server: Server) {
    this.server = server;
    server.on('request', (req, res) => this.route(req, res));
  }

  static async start(): Promise<FakePds> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return new FakePds(server);
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Makes `did` resolvable (its PDS is this server). */
  addIdentity(did: string): void {
    if (!this.repos.has(did)) this.repos.set(did, new Map());
  }

  /** Publishes `didKey` (a `did:key:z…`) as `did`'s `#atproto` Multikey, as PLC does. */
  setSigningKey(did: string, didKey: string): void {
    this.addIdentity(did);
    this.keys.set(did, didKey);
  }

  putRecord(did: string, collection: string, rkey: string, value: unknown): void {
    this.addIdentity(did);
    const repo = this.repos.get(did)!;
    if (!repo.has(collection)) repo.set(collection, new Map());
    repo.get(collection)!.set(rkey, value);
  }

  deleteRecord(did: string, collection: string, rkey: string): void {
    this.repos.get(did)?.get(collection)?.delete(rkey);
  }

  /** Stores a blob in `did`'s repo; returns the reference a record would hold. */
  putBlob(did: string, bytes: Buffer, mimeType = 'application/gzip'): BlobJson {
    this.addIdentity(did);
    const cid = cidForRawHash(createHash('sha256').update(bytes).digest()).toString();
    if (!this.blobs.has(did)) this.blobs.set(did, new Map());
    this.blobs.get(did)!.set(cid, { bytes, mimeType });
    return { $type: 'blob', ref: { $link: cid }, mimeType, size: bytes.length };
  }

  /** The next `n` requests fail with 503. */
  failNext(n: number): void {
    this.failures = n;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private route(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', this.url);
    this.requests.push(url.pathname + url.search);
    if (this.failures > 0) {
      this.failures--;
      json(res, 503, { error: 'Unavailable', message: 'try later' });
      return;
    }
    const did = decodeURIComponent(url.pathname.slice(1));
    if (req.method === 'GET' && did.startsWith('did:plc:')) {
      if (!this.repos.has(did)) {
        json(res, 404, { message: 'DID not registered' });
        return;
      }
      json(res, 200, {
        '@context': ['https://www.w3.org/ns/did/v1'],
        id: did,
        alsoKnownAs: [],
        verificationMethod: didDocumentKeys(did, this.keys.get(did)),
        service: [{ id: '#atproto_pds', type: 'AtprotoPersonalDataServer', serviceEndpoint: this.url }],
      });
      return;
    }
    if (req.method === 'GET' && url.pathname === '/xrpc/com.atproto.repo.listRecords') {
      void this.listRecords(url.searchParams, res);
      return;
    }
    if (req.method === 'GET' && url.pathname === '/xrpc/com.atproto.repo.getRecord') {
      const q = url.searchParams;
      const [repo, collection, rkey] = [q.get('repo') ?? '', q.get('collection') ?? '', q.get('rkey') ?? ''];
      const value = this.repos.get(repo)?.get(collection)?.get(rkey);
      if (value === undefined) {
        json(res, 400, {
          error: 'RecordNotFound',
          message: `Could not locate record: at://${repo}/${collection}/${rkey}`,
        });
        return;
      }
      json(res, 200, { uri: `at://${repo}/${collection}/${rkey}`, cid: `bafy${rkey}`, value });
      return;
    }
    if (req.method === 'GET' && url.pathname === '/xrpc/com.atproto.sync.getBlob') {
      const blob = this.blobs.get(url.searchParams.get('did') ?? '')?.get(url.searchParams.get('cid') ?? '');
      if (!blob) {
        json(res, 400, { error: 'BlobNotFound', message: 'Blob not found' });
        return;
      }
      res
        .writeHead(200, { 'content-type': blob.mimeType, 'content-length': blob.bytes.length })
        .end(blob.bytes);
      return;
    }
    json(res, 404, { error: 'MethodNotImplemented', message: 'not here' });
  }

  private async listRecords(q: URLSearchParams, res: ServerResponse): Promise<void> {
    const repo = q.get('repo') ?? '';
    const collection = q.get('collection') ?? '';
    const limit = Math.min(100, Math.max(1, Number(q.get('limit') ?? 50)));
    const cursor = q.get('cursor');
    const records = this.repos.get(repo);
    if (!records) {
      json(res, 400, { error: 'RepoNotFound', message: `Could not find repo: ${repo}` });
      return;
    }
    // As the PDS does: newest (highest rkey) first unless `reverse=true`; the cursor is the last
    // rkey of any non-empty page, and the next page continues past it.
    const ascending = q.get('reverse') === 'true';
    const rows = [...(records.get(collection) ?? new Map()).entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0) * (ascending ? 1 : -1))
      .filter(([rkey]) => cursor === null || (ascending ? rkey > cursor : rkey < cursor))
      .slice(0, limit);
    const body: Record<string, unknown> = {
      records: rows.map(([rkey, value]) => ({
        uri: `at://${repo}/${collection}/${rkey}`,
        cid: `bafy${rkey}`,
        value,
      })),
    };
    if (rows.length > 0) body.cursor = rows.at(-1)![0];
    await this.beforeListAnswer?.(repo, collection);
    json(res, 200, body);
  }
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}
