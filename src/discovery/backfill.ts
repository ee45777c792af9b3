/**
 * Backfill from the PDS (first start, a Jetstream gap, a new member): list an author's
 * member (owner only), repo and collaborator records with `com.atproto.repo.listRecords` and
 * apply them as if Jetstream had delivered them; records stored for that author but no longer
 * listed were deleted meanwhile and are removed. Runs on the durable queue, so a PDS that is
 * down is retried with backoff and a restart does not lose the request.
 *
 * A listing can be older than what Jetstream delivers while it is read: a record Jetstream
 * created, changed or deleted since the backfill began is left as Jetstream left it (the
 * listing's copy of it may predate that change; Jetstream delivers any later one too).
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
  /** Backfills running now; live changes are remembered only while one runs. */
  private running = 0;
  /** A counter that orders live changes against the start of each backfill. */
  private clock = 0;
  /** author|collection|rkey → the clock when Jetstream last changed that record. */
  private readonly live = new Map<string, number>();

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

  /** Jetstream is about to apply `ev`: a backfill running now must not overwrite it. */
  noteLive(ev: { did: string; collection: string; rkey: string }): void {
    if (this.running > 0) this.live.set(liveKey(ev.did, ev.collection, ev.rkey), ++this.clock);
  }

  async handle(message: BackfillMessage): Promise<void> {
    this.running++;
    try {
      await this.backfill(message);
    } finally {
      if (--this.running === 0) this.live.clear();
    }
  }

  private async backfill({ did, reason }: BackfillMessage): Promise<void> {
    // Records Jetstream changes from now on are newer than the listing may be: it neither
    // overwrites them nor, when it lacks them, deletes them.
    const since = this.clock;
    const changedLive = (nsid: string, rkey: string) =>
      (this.live.get(liveKey(did, nsid, rkey)) ?? 0) > since;
    const pds = await resolvePds(did, this.identity);
    const counts: Record<string, number> = {};
    for (const { nsid, kind } of COLLECTIONS) {
      if (kind === 'member' && did !== this.owner) continue;
      const records = await listAllRecords(pds, did, nsid, this.identity);
      const listed = new Set<string>();
      let kept = 0;
      for (const r of records) {
        const rkey = rkeyOf(r.uri, did, nsid);
        if (!rkey) continue;
        listed.add(rkey);
        if (changedLive(nsid, rkey)) {
          kept++;
          continue;
        }
        this.ingester.apply({ did, collection: nsid, rkey, operation: 'create', record: r.value });
      }
      for (const rkey of this.repos.storedRkeys(did, kind)) {
        if (!listed.has(rkey) && !changedLive(nsid, rkey))
          this.ingester.apply({ did, collection: nsid, rkey, operation: 'delete' });
      }
      counts[kind] = records.length;
      if (kept > 0) counts[`${kind}KeptLive`] = kept;
    }
    this.log.info({ did, reason, pds, ...counts }, 'backfill done');
  }
}

function liveKey(did: string, nsid: string, rkey: string): string {
  return `${did}|${nsid}|${rkey}`;
}

/** The record key of `at://<did>/<nsid>/<rkey>`, if the URI is one of did's records of nsid. */
function rkeyOf(uri: string, did: string, nsid: string): string | undefined {
  const prefix = `at://${did}/${nsid}/`;
  if (!uri.startsWith(prefix)) return undefined;
  const rkey = uri.slice(prefix.length);
  return /^[A-Za-z0-9._~:-]{1,512}$/.test(rkey) ? rkey : undefined;
}
