import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FakePds } from '../../fakes/pds.ts';
import { tempDir } from '../../test/support/temp.ts';
import { RecordValidator } from '../atproto/lexicons.ts';
import { type Db, openDatabase } from '../db/database.ts';
import { migrate } from '../db/migrate.ts';
import { QueueStore } from '../db/queue-store.ts';
import { RepoStore } from '../db/repo-store.ts';
import { UnitOfWork } from '../db/unit-of-work.ts';
import { createLogger } from '../logger.ts';
import { Queue } from '../queue/index.ts';
import { Backfiller } from './backfill.ts';
import { REPO_NSID, type RecordEvent, RecordIngester } from './records.ts';

const OWNER = 'did:plc:owner';
const HOST = 'spindle.example.com';

function repoRecord(name: string, knot: string, spindle = HOST) {
  return { $type: REPO_NSID, name, knot, spindle, createdAt: new Date().toISOString() };
}

let db: Db;
let repos: RepoStore;
let pds: FakePds;
let ingester: RecordIngester;
let backfill: Backfiller;
let cleanup = () => {};

beforeEach(async () => {
  const t = tempDir();
  cleanup = t.cleanup;
  db = openDatabase(join(t.dir, 'treadle.db'));
  migrate(db);
  repos = new RepoStore(db, OWNER);
  pds = await FakePds.start();
  const log = createLogger('silent');
  ingester = new RecordIngester({
    repos,
    validator: new RecordValidator(),
    hostname: HOST,
    owner: OWNER,
    log,
    onMemberAdded: () => {},
    onChange: () => {},
  });
  backfill = new Backfiller({
    queue: new Queue(new QueueStore(db), log, {}, new UnitOfWork(db)),
    repos,
    ingester,
    owner: OWNER,
    identity: { plcUrl: pds.url, dev: true },
    log,
  });
});

afterEach(async () => {
  await pds.close();
  db.close();
  cleanup();
});

/** What Jetstream does with a commit: the PDS has it first, then the daemon applies it live. */
function liveCommit(ev: RecordEvent): void {
  if (ev.operation === 'delete') pds.deleteRecord(ev.did, ev.collection, ev.rkey);
  else pds.putRecord(ev.did, ev.collection, ev.rkey, ev.record);
  backfill.noteLive(ev);
  ingester.apply(ev);
}

/** A live create or update of one of the owner's repo records. */
function liveRepo(
  rkey: string,
  record: ReturnType<typeof repoRecord>,
  operation: 'create' | 'update' = 'create',
) {
  liveCommit({ did: OWNER, collection: REPO_NSID, rkey, operation, record });
}

const served = () =>
  repos
    .servedRepos()
    .map((r) => r.name)
    .sort();

describe('Backfiller', () => {
  it('leaves records Jetstream created, changed or deleted while the listing was in flight as Jetstream left them', async () => {
    liveRepo('r1', repoRecord('one', 'k1'));
    liveRepo('r2', repoRecord('two', 'k2'));
    // Only in the PDS: the backfill is what finds it.
    pds.putRecord(OWNER, REPO_NSID, 'r3', repoRecord('three', 'k3'));
    pds.beforeListAnswer = (_repo, collection) => {
      if (collection !== REPO_NSID) return;
      pds.beforeListAnswer = undefined;
      // The listing (r1, r2, r3 as created) is read; Jetstream now delivers a delete, a move and
      // a new repo the listing lacks.
      liveCommit({ did: OWNER, collection: REPO_NSID, rkey: 'r1', operation: 'delete' });
      liveRepo('r4', repoRecord('four', 'k4'));
      liveRepo('r2', repoRecord('two', 'k2', 'other.spindle.example'), 'update');
    };
    await backfill.handle({ did: OWNER, reason: 'first start' });
    expect(served()).toEqual(['four', 'three']);

    // A later backfill reads the PDS as it is now and agrees.
    await backfill.handle({ did: OWNER, reason: 'cursor too old' });
    expect(served()).toEqual(['four', 'three']);
  });

  it('applies a listed record that was not changed live, and removes one no longer listed', async () => {
    liveRepo('r1', repoRecord('one', 'k1'));
    pds.putRecord(OWNER, REPO_NSID, 'r2', repoRecord('two', 'k2'));
    // Deleted from the PDS while Jetstream was away: the backfill is what notices.
    pds.deleteRecord(OWNER, REPO_NSID, 'r1');
    await backfill.handle({ did: OWNER, reason: 'cursor too old' });
    expect(served()).toEqual(['two']);
  });
});
