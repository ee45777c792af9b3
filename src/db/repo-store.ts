/** Members, repos and collaborators as discovery records them; which repos treadle serves. */
import type { Statement } from 'better-sqlite3';
import type { Db } from './database.ts';

export interface RepoRow {
  owner: string;
  rkey: string;
  name: string;
  knot: string;
  repoDid: string | null;
}

/** A repo is served when its author is the owner or a current member. */
const SERVED = '(owner = @owner OR owner IN (SELECT subject FROM members))';
/** A repo whose `<owner>/<name>` contains `@needle` (lowercase), or any repo when it is empty. */
const MATCHES = "(@needle = '' OR instr(lower(owner || '/' || name), @needle) > 0)";

/** Collaborator rows a knot announced are authored by `knot:<host>`, never a DID. */
function knotAuthor(knot: string): string {
  return `knot:${knot}`;
}

export class RepoStore {
  private readonly s: Record<string, Statement>;
  private readonly owner: string;

  /** `owner`: the spindle owner's DID, who serves without a member record. */
  constructor(db: Db, owner: string) {
    this.owner = owner;
    const p = (sql: string) => db.prepare(sql);
    this.s = {
      addMember: p(`INSERT INTO members (rkey, subject, created_at) VALUES (?, ?, ?)
                    ON CONFLICT (rkey) DO UPDATE SET subject = excluded.subject, created_at = excluded.created_at`),
      memberByRkey: p('SELECT subject FROM members WHERE rkey = ?'),
      removeMember: p('DELETE FROM members WHERE rkey = ?'),
      isMember: p('SELECT 1 FROM members WHERE subject = ? LIMIT 1'),
      members: p('SELECT DISTINCT subject FROM members ORDER BY subject'),
      repoByDid: p('SELECT owner, rkey FROM repos WHERE repo_did = ?'),
      putRepo: p(`INSERT INTO repos (owner, rkey, name, knot, repo_did, updated_at) VALUES (?, ?, ?, ?, ?, ?)
                  ON CONFLICT (owner, rkey) DO UPDATE SET name = excluded.name, knot = excluded.knot,
                    repo_did = excluded.repo_did, updated_at = excluded.updated_at`),
      removeRepo: p('DELETE FROM repos WHERE owner = ? AND rkey = ?'),
      served: p(`SELECT owner, rkey, name, knot, repo_did AS repoDid FROM repos
                 WHERE ${SERVED}`),
      servedCount: p(`SELECT COUNT(*) FROM repos WHERE ${SERVED} AND ${MATCHES}`).pluck(),
      servedPage: p(`SELECT owner, rkey, name, knot, repo_did AS repoDid FROM repos
                      WHERE ${SERVED} AND ${MATCHES}
                      ORDER BY name COLLATE NOCASE, name, owner LIMIT @limit OFFSET @offset`),
      servedByName: p(`SELECT owner, rkey, name, knot, repo_did AS repoDid FROM repos
                       WHERE knot = @knot AND owner = @did AND name = @name
                         AND ${SERVED} LIMIT 1`),
      servedByKey: p(`SELECT owner, rkey, name, knot, repo_did AS repoDid FROM repos
                      WHERE owner = @did AND rkey = @rkey AND ${SERVED}`),
      servedByDid: p(`SELECT owner, rkey, name, knot, repo_did AS repoDid FROM repos
                      WHERE repo_did = @repoDid AND ${SERVED}`),
      putCollaborator:
        p(`INSERT INTO collaborators (author, rkey, subject, repo, updated_at) VALUES (?, ?, ?, ?, ?)
                          ON CONFLICT (author, rkey) DO UPDATE SET subject = excluded.subject, repo = excluded.repo,
                            updated_at = excluded.updated_at`),
      removeCollaborator: p('DELETE FROM collaborators WHERE author = ? AND rkey = ?'),
      memberRkeys: p('SELECT rkey FROM members'),
      repoRkeysOf: p('SELECT rkey FROM repos WHERE owner = ?'),
      collaboratorRkeysOf: p('SELECT rkey FROM collaborators WHERE author = ?'),
      collaboratorsOf: p(`SELECT DISTINCT subject FROM collaborators
                          WHERE (author = @owner AND repo IN (@uri, @did)) OR (author = @knotAuthor AND repo = @did)`),
      maybePusher: p(`SELECT 1 WHERE @did = @owner OR EXISTS (SELECT 1 FROM members WHERE subject = @did)
                         OR EXISTS (SELECT 1 FROM collaborators WHERE subject = @did)`),
      repoByName: p(`SELECT owner, rkey, name, knot, repo_did AS repoDid FROM repos
                     WHERE knot = @knot AND owner = @did AND name = @name LIMIT 1`),
      setRepoDid: p(
        'UPDATE repos SET repo_did = @repoDid, updated_at = @now WHERE owner = @owner AND rkey = @rkey',
      ),
    };
  }

  addMember(rkey: string, subject: string, now = Date.now()): void {
    this.s.addMember!.run(rkey, subject, now);
  }

  /** Removes the member record; returns the subject it named, if any. */
  removeMember(rkey: string): string | undefined {
    const row = this.s.memberByRkey!.get(rkey) as { subject: string } | undefined;
    if (row) this.s.removeMember!.run(rkey);
    return row?.subject;
  }

  /** The owner, or a DID some member record names. */
  mayServe(did: string): boolean {
    return did === this.owner || this.s.isMember!.get(did) !== undefined;
  }

  members(): string[] {
    return (this.s.members!.all() as { subject: string }[]).map((r) => r.subject);
  }

  /**
   * Records a repo naming this spindle. Refused (false) when its repo DID is already registered
   * by another owner.
   */
  putRepo(repo: RepoRow, now = Date.now()): boolean {
    if (repo.repoDid) {
      const holder = this.s.repoByDid!.get(repo.repoDid) as { owner: string; rkey: string } | undefined;
      if (holder && (holder.owner !== repo.owner || holder.rkey !== repo.rkey)) return false;
    }
    this.s.putRepo!.run(repo.owner, repo.rkey, repo.name, repo.knot, repo.repoDid, now);
    return true;
  }

  removeRepo(owner: string, rkey: string): boolean {
    return this.s.removeRepo!.run(owner, rkey).changes > 0;
  }

  /** Repos whose author is the owner or a current member. */
  servedRepos(): RepoRow[] {
    return this.s.served!.all({ owner: this.owner }) as RepoRow[];
  }

  /**
   * One page of the served repos whose `<owner>/<name>` contains `filter` (ASCII letters in any
   * case), by name then owner, and how many match in all.
   */
  servedReposPage(filter: string, offset: number, limit: number): { total: number; rows: RepoRow[] } {
    const needle = filter.toLowerCase();
    const total = this.s.servedCount!.get({ owner: this.owner, needle }) as number;
    const rows = this.s.servedPage!.all({ owner: this.owner, needle, limit, offset }) as RepoRow[];
    return { total, rows };
  }

  /** A served repo by the legacy key a knot's pipeline carries: knot, owner DID and name. */
  servedRepoByName(knot: string, did: string, name: string): RepoRow | undefined {
    return this.s.servedByName!.get({ knot, did, name, owner: this.owner }) as RepoRow | undefined;
  }

  /** A served repo by its record: the owner DID and the record key. */
  servedRepo(did: string, rkey: string): RepoRow | undefined {
    return this.s.servedByKey!.get({ did, rkey, owner: this.owner }) as RepoRow | undefined;
  }

  servedRepoByDid(repoDid: string): RepoRow | undefined {
    return this.s.servedByDid!.get({ repoDid, owner: this.owner }) as RepoRow | undefined;
  }

  putCollaborator(author: string, rkey: string, subject: string, repo: string, now = Date.now()): void {
    this.s.putCollaborator!.run(author, rkey, subject, repo, now);
  }

  removeCollaborator(author: string, rkey: string): void {
    this.s.removeCollaborator!.run(author, rkey);
  }

  /**
   * Collaborators of a repo: records authored by its owner naming it by AT-URI or repo DID, and
   * those its own knot announced (`sh.tangled.repo.collaboratorUpdate`).
   */
  collaborators(repo: RepoRow): string[] {
    const uri = `at://${repo.owner}/sh.tangled.repo/${repo.rkey}`;
    const rows = this.s.collaboratorsOf!.all({
      owner: repo.owner,
      uri,
      did: repo.repoDid ?? uri,
      knotAuthor: knotAuthor(repo.knot),
    }) as { subject: string }[];
    return rows.map((r) => r.subject);
  }

  /** The owner or a collaborator: who may push, and so trigger runs by pull request. */
  hasPushRights(repo: RepoRow, did: string): boolean {
    return did === repo.owner || this.collaborators(repo).includes(did);
  }

  /**
   * Whether `did` could have push rights on some served repo: the owner, a member, or someone
   * named as a collaborator. A cheap first filter for records any account may author.
   */
  mayPushSomewhere(did: string): boolean {
    return this.s.maybePusher!.get({ did, owner: this.owner }) !== undefined;
  }

  /** Any recorded repo (served or not) by the legacy key: knot, owner DID and name. */
  repoByName(knot: string, did: string, name: string): RepoRow | undefined {
    return this.s.repoByName!.get({ knot, did, name }) as RepoRow | undefined;
  }

  /** Gives a repo its DID (`didAssign`); false when another repo already holds that DID. */
  assignRepoDid(repo: RepoRow, repoDid: string, now = Date.now()): boolean {
    const holder = this.s.repoByDid!.get(repoDid) as { owner: string; rkey: string } | undefined;
    if (holder && (holder.owner !== repo.owner || holder.rkey !== repo.rkey)) return false;
    this.s.setRepoDid!.run({ owner: repo.owner, rkey: repo.rkey, repoDid, now });
    return true;
  }

  /** Records or removes a collaborator a knot announced for a repo it hosts. */
  knotCollaborator(knot: string, op: 'add' | 'remove', repoDid: string, subject: string): void {
    const rkey = `${repoDid} ${subject}`;
    if (op === 'add') this.putCollaborator(knotAuthor(knot), rkey, subject, repoDid);
    else this.removeCollaborator(knotAuthor(knot), rkey);
  }

  /** Record keys stored per collection for one author: what a backfill may find deleted. */
  storedRkeys(author: string, collection: 'member' | 'repo' | 'collaborator'): string[] {
    const rows =
      collection === 'member'
        ? author === this.owner
          ? this.s.memberRkeys!.all()
          : []
        : collection === 'repo'
          ? this.s.repoRkeysOf!.all(author)
          : this.s.collaboratorRkeysOf!.all(author);
    return (rows as { rkey: string }[]).map((r) => r.rkey);
  }
}
