/**
 * Backfill from the PDS (first start, a Jetstream gap, a new member): list an author's
 * member (owner only), repo and collaborator records with `com.atproto.repo.listRecords` and
 * apply them as if Jetstream had delivered them; records stored for that author but no longer
 * listed were deleted meanwhile and are removed. Runs on the durable queue, so a PDS that is
 * down is retried with backoff and a restart does not lose the request.
 */
import { type IdentityOptions, listAllRecords, resolvePds } from '../atproto/identity.ts';
import type { RepoStore } from '../db/repo-store.ts';
import type { Logger } from '../logger.ts';
import type { Queue } from '../queue/index.ts';
import { COLLABORATOR_NSID, MEMBER_NSID, REPO_NSID, type RecordIngester } from './records.ts';

export const BACKFILL_TOPIC = 'discovery.backfill';

export interface BackfillMessage {
  did: string;
  reason: string;
}

const COLLECTIONS = [
  { nsid: MEMBER_NSID, kind: 'member' },
  { nsid: REPO_NSID, kind: 'repo' },
  { nsid: COLLABORATOR_NSID, kind: 'collaborator' },
] as const;

export class Backfiller {
  private readonly queue: Queue;
  private readonly repos: RepoStore;
  private readonly ingester: RecordIngester;
  private readonly owner: string;
  private readonly identity: IdentityOptions;
  private readonly log: Logger;

  constructor(deps: {
    queue: Queue;
    repos: RepoStore;
    ingester: RecordIngester;
    owner: string;
    identity: IdentityOptions;
    log: Logger;
  }) {
    this.queue = deps.queue;
    this.repos = deps.repos;
    this.ingester = deps.ingester;
    this.owner = deps.owner;
    this.identity = deps.identity;
    this.log = deps.log;
  }

  /** Asks for `did`'s records to be backfilled (members the owner's records add follow by themselves). */
  request(did: string, reason: string): void {
    this.log.debug({ did, reason }, 'backfill requested');
    this.queue.publish<BackfillMessage>(BACKFILL_TOPIC, did, `${did}@${Date.now()}`, { did, reason });
  }

  async handle({ did, reason }: BackfillMessage): Promise<void> {
    // Rows written from now on came live (Jetstream): a listing that lacks them does not delete them.
    const startedAt = Date.now();
    const pds = await resolvePds(did, this.identity);
    const counts: Record<string, number> = {};
    for (const { nsid, kind } of COLLECTIONS) {
      if (kind === 'member' && did !== this.owner) continue;
      const records = await listAllRecords(pds, did, nsid, this.identity);
      const listed = new Set<string>();
      for (const r of records) {
        const rkey = rkeyOf(r.uri, did, nsid);
        if (!rkey) continue;
        listed.add(rkey);
        this.ingester.apply({ did, collection: nsid, rkey, operation: 'create', record: r.value });
      }
      for (const rkey of this.repos.storedRkeys(did, kind, startedAt)) {
        if (!listed.has(rkey)) this.ingester.apply({ did, collection: nsid, rkey, operation: 'delete' });
      }
      counts[kind] = records.length;
    }
    this.log.info({ did, reason, pds, ...counts }, 'backfill done');
  }
}

/** The record key of `at://<did>/<nsid>/<rkey>`, if the URI is one of did's records of nsid. */
function rkeyOf(uri: string, did: string, nsid: string): string | undefined {
  const prefix = `at://${did}/${nsid}/`;
  if (!uri.startsWith(prefix)) return undefined;
  const rkey = uri.slice(prefix.length);
  return /^[A-Za-z0-9._~:-]{1,512}$/.test(rkey) ? rkey : undefined;
}
