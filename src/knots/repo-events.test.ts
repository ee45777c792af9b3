import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { tempDir } from '../../test/support/temp.ts';
import { RecordValidator } from '../atproto/lexicons.ts';
import { type Db, openDatabase } from '../db/database.ts';
import { migrate } from '../db/migrate.ts';
import { PipelineStore } from '../db/pipeline-store.ts';
import { RepoStore } from '../db/repo-store.ts';
import { createLogger } from '../logger.ts';
import { RepoEvents } from './repo-events.ts';

const OWNER = 'did:plc:owner';
const KNOT = 'knot.example.com';
const REPO = { owner: OWNER, rkey: 'r1', name: 'app', knot: KNOT, repoDid: 'did:plc:app' };
let db: Db;
let repos: RepoStore;
let events: RepoEvents;
let cleanup = () => {};

beforeEach(() => {
  const t = tempDir();
  cleanup = t.cleanup;
  db = openDatabase(join(t.dir, 'treadle.db'));
  migrate(db);
  repos = new RepoStore(db, OWNER);
  repos.putRepo(REPO);
  events = new RepoEvents({
    repos,
    pipelines: new PipelineStore(db),
    validator: new RecordValidator(),
    log: createLogger('silent'),
  });
});

afterEach(() => {
  db.close();
  cleanup();
});

describe('sh.tangled.repo.collaboratorUpdate (2026 §3.6)', () => {
  it('adds and removes push rights when it comes from the repo’s own knot', () => {
    const alice = 'did:plc:alice';
    expect(repos.hasPushRights(REPO, alice)).toBe(false);
    events.apply(KNOT, 'sh.tangled.repo.collaboratorUpdate', {
      op: 'add',
      subject: alice,
      repo: REPO.repoDid,
    });
    expect(repos.hasPushRights(REPO, alice)).toBe(true);
    expect(repos.collaborators(REPO)).toEqual([alice]);
    events.apply(KNOT, 'sh.tangled.repo.collaboratorUpdate', {
      op: 'remove',
      subject: alice,
      repo: REPO.repoDid,
    });
    expect(repos.hasPushRights(REPO, alice)).toBe(false);
  });

  it('ignores one from another knot, for an unknown repo, or malformed', () => {
    const mallory = 'did:plc:mallory';
    events.apply('evil.example.com', 'sh.tangled.repo.collaboratorUpdate', {
      op: 'add',
      subject: mallory,
      repo: REPO.repoDid,
    });
    events.apply(KNOT, 'sh.tangled.repo.collaboratorUpdate', {
      op: 'add',
      subject: mallory,
      repo: 'did:plc:other',
    });
    events.apply(KNOT, 'sh.tangled.repo.collaboratorUpdate', {
      op: 'grant',
      subject: mallory,
      repo: REPO.repoDid,
    });
    events.apply(KNOT, 'sh.tangled.repo.collaboratorUpdate', { op: 'add', subject: 42, repo: REPO.repoDid });
    expect(repos.hasPushRights(REPO, mallory)).toBe(false);
    expect(repos.collaborators(REPO)).toEqual([]);
  });
});

describe('sh.tangled.repo.didAssign', () => {
  it('gives a repo known by owner and name its DID, once, and never one another repo holds', () => {
    repos.putRepo({ owner: OWNER, rkey: 'r2', name: 'legacy', knot: KNOT, repoDid: null });
    events.apply(KNOT, 'sh.tangled.repo.didAssign', {
      ownerDid: OWNER,
      repoName: 'legacy',
      repoDid: 'did:plc:legacy',
    });
    expect(repos.servedRepoByDid('did:plc:legacy')?.name).toBe('legacy');
    events.apply(KNOT, 'sh.tangled.repo.didAssign', {
      ownerDid: OWNER,
      repoName: 'legacy',
      repoDid: REPO.repoDid,
    });
    expect(repos.servedRepoByDid(REPO.repoDid)?.name).toBe('app');
    expect(repos.servedRepoByDid('did:plc:legacy')?.name).toBe('legacy');
    // From another knot the owner and name do not match a repo hosted there.
    events.apply('other.example.com', 'sh.tangled.repo.didAssign', {
      ownerDid: OWNER,
      repoName: 'app',
      repoDid: 'did:plc:x',
    });
    expect(repos.servedRepoByDid('did:plc:x')).toBeUndefined();
  });
});
