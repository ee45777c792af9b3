import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from '../../test/support/temp.ts';
import { type Db, openDatabase } from './database.ts';
import { RepoStore } from './repo-store.ts';

const OWNER = 'did:plc:owner';
let db: Db;
let cleanup = () => {};
afterEach(() => {
  db?.close();
  cleanup();
});

function store(): RepoStore {
  const t = tempDir();
  cleanup = t.cleanup;
  db = openDatabase(join(t.dir, 'treadle.db'));
  return new RepoStore(db, OWNER);
}

const repo = (owner: string, rkey: string, repoDid: string | null = null) => ({
  owner,
  rkey,
  name: `app-${rkey}`,
  knot: 'knot.example',
  repoDid,
});

describe('RepoStore', () => {
  it('pages the served repos by name, filtered by owner/name, with the total of every match', () => {
    const s = store();
    for (const [owner, rkey, name] of [
      [OWNER, 'a', 'zeta'],
      [OWNER, 'b', 'Alpha'],
      ['did:plc:bob', 'c', 'beta'],
      ['did:plc:bob', 'd', 'alpha'],
      ['did:plc:eve', 'e', 'alpha-not-served'],
    ] as const)
      s.putRepo({ owner, rkey, name, knot: 'knot.example', repoDid: null });
    s.addMember('m1', 'did:plc:bob');
    const names = (filter: string, offset: number, limit: number) => {
      const page = s.servedReposPage(filter, offset, limit);
      return [page.total, page.rows.map((r) => `${r.owner.slice(8)}/${r.name}`)];
    };
    expect(names('', 0, 10)).toEqual([4, ['owner/Alpha', 'bob/alpha', 'bob/beta', 'owner/zeta']]);
    expect(names('', 1, 2)).toEqual([4, ['bob/alpha', 'bob/beta']]);
    expect(names('', 8, 2)).toEqual([4, []]);
    expect(names('ALPHA', 0, 10)).toEqual([2, ['owner/Alpha', 'bob/alpha']]);
    expect(names('plc:bob/', 0, 10)).toEqual([2, ['bob/alpha', 'bob/beta']]);
    expect(names('not-served', 0, 10)).toEqual([0, []]);
  });

  it("serves the owner's repos and members' repos, and stops when the member goes", () => {
    const s = store();
    s.putRepo(repo(OWNER, 'r1'));
    s.putRepo(repo('did:plc:bob', 'r2'));
    expect(s.servedRepos().map((r) => r.rkey)).toEqual(['r1']);
    s.addMember('m1', 'did:plc:bob');
    expect(s.mayServe('did:plc:bob')).toBe(true);
    expect(
      s
        .servedRepos()
        .map((r) => r.rkey)
        .sort(),
    ).toEqual(['r1', 'r2']);
    expect(s.servedRepoByName('knot.example', 'did:plc:bob', 'app-r2')?.rkey).toBe('r2');
    expect(s.removeMember('m1')).toBe('did:plc:bob');
    expect(s.mayServe('did:plc:bob')).toBe(false);
    expect(s.servedRepos().map((r) => r.rkey)).toEqual(['r1']);
    expect(s.servedRepoByName('knot.example', 'did:plc:bob', 'app-r2')).toBeUndefined();
  });

  it('refuses a repo DID already registered by another owner, and forgets a removed repo', () => {
    const s = store();
    expect(s.putRepo(repo(OWNER, 'r1', 'did:plc:repo1'))).toBe(true);
    expect(s.putRepo(repo(OWNER, 'r1', 'did:plc:repo1'))).toBe(true); // an update of the same record
    s.addMember('m1', 'did:plc:mallory');
    expect(s.putRepo(repo('did:plc:mallory', 'x', 'did:plc:repo1'))).toBe(false);
    expect(s.servedRepoByDid('did:plc:repo1')?.owner).toBe(OWNER);
    expect(s.removeRepo(OWNER, 'r1')).toBe(true);
    expect(s.servedRepoByDid('did:plc:repo1')).toBeUndefined();
  });

  it("counts only collaborators that the repo's owner recorded for that repo", () => {
    const s = store();
    const r = repo(OWNER, 'r1', 'did:plc:repo1');
    s.putRepo(r);
    s.putCollaborator(OWNER, 'c1', 'did:plc:carol', `at://${OWNER}/sh.tangled.repo/r1`);
    s.putCollaborator(OWNER, 'c2', 'did:plc:dave', 'did:plc:repo1');
    s.putCollaborator(OWNER, 'c3', 'did:plc:erin', 'did:plc:other-repo');
    s.putCollaborator('did:plc:mallory', 'c4', 'did:plc:mallory', 'did:plc:repo1');
    expect(s.collaborators(r).sort()).toEqual(['did:plc:carol', 'did:plc:dave']);
    s.removeCollaborator(OWNER, 'c1');
    expect(s.collaborators(r)).toEqual(['did:plc:dave']);
  });
});
