/**
 * Repository secrets at rest: sealed per value under the keyring's current key, bound to their
 * repo and name (the AEAD's associated data), so a database copied without the key, or a value
 * moved to another row, reveals nothing.
 */
import type { Statement } from 'better-sqlite3';
import type { Db } from './database.ts';

/** Seals and opens values bound to associated data (the secrets keyring: AES-256-GCM). */
export interface Sealer {
  seal(value: string, aad: string): { keyId: string; bytes: Buffer };
  open(sealed: { keyId: string; bytes: Buffer }, aad: string): string;
}

export interface SecretMeta {
  repo: string;
  key: string;
  createdAt: string;
  createdBy: string;
}

interface Row {
  repo: string;
  key: string;
  key_id: string;
  sealed: Buffer;
  created_at: string;
  created_by: string;
}

const aad = (repo: string, key: string) => `${repo}\u0000${key}`;

export class SecretStore {
  private readonly db: Db;
  private readonly keyring: Sealer;
  private readonly s: Record<string, Statement>;

  constructor(db: Db, keyring: Sealer) {
    this.db = db;
    this.keyring = keyring;
    const p = (sql: string) => db.prepare(sql);
    this.s = {
      add: p(`INSERT INTO secrets (repo, key, key_id, sealed, created_at, created_by)
              VALUES (@repo, @key, @keyId, @sealed, @createdAt, @createdBy) ON CONFLICT DO NOTHING`),
      remove: p('DELETE FROM secrets WHERE repo = ? AND key = ?'),
      list: p(
        'SELECT repo, key, key_id, sealed, created_at, created_by FROM secrets WHERE repo = ? ORDER BY key',
      ),
      all: p('SELECT repo, key, key_id, sealed, created_at, created_by FROM secrets'),
      reseal: p(
        'UPDATE OR IGNORE secrets SET repo = @to, key_id = @keyId, sealed = @sealed WHERE repo = @from AND key = @key',
      ),
      dropRepo: p('DELETE FROM secrets WHERE repo = ?'),
    };
  }

  /**
   * The key `repo`'s secrets live under: its DID when it has one (2026 spec §3.8), else
   * `<ownerDid>/<name>`. Secrets stored under the legacy key before the repo got its DID (a
   * `didAssign`, or a record update) move on first use.
   */
  keyFor(repo: { owner: string; name: string; repoDid: string | null }): string {
    const legacy = `${repo.owner}/${repo.name}`;
    if (!repo.repoDid) return legacy;
    const moved = this.move(legacy, repo.repoDid);
    if (moved > 0) this.onMoved?.(legacy, repo.repoDid, moved);
    return repo.repoDid;
  }

  /** Told when secrets move to a repo's DID (for the log). */
  onMoved?: (from: string, to: string, count: number) => void;

  /** False when the repo already has a secret of that name. */
  add(repo: string, key: string, value: string, createdBy: string, now = new Date()): boolean {
    const sealed = this.keyring.seal(value, aad(repo, key));
    const createdAt = `${now.toISOString().slice(0, 19)}Z`;
    return (
      this.s.add!.run({ repo, key, keyId: sealed.keyId, sealed: sealed.bytes, createdAt, createdBy })
        .changes === 1
    );
  }

  /** False when there was no such secret. */
  remove(repo: string, key: string): boolean {
    return this.s.remove!.run(repo, key).changes === 1;
  }

  list(repo: string): SecretMeta[] {
    return (this.s.list!.all(repo) as Row[]).map((r) => ({
      repo: r.repo,
      key: r.key,
      createdAt: r.created_at,
      createdBy: r.created_by,
    }));
  }

  /** Name → value, for a run's environment and for masking its logs. */
  values(repo: string): Map<string, string> {
    const out = new Map<string, string>();
    for (const r of this.s.list!.all(repo) as Row[])
      out.set(r.key, this.keyring.open({ keyId: r.key_id, bytes: r.sealed }, aad(r.repo, r.key)));
    return out;
  }

  /** Moves a repo's secrets to a new key (a repo gaining its DID), resealed for their new place. */
  move(from: string, to: string): number {
    if (from === to) return 0;
    return this.db.transaction(() => {
      let n = 0;
      for (const r of this.s.list!.all(from) as Row[]) {
        const value = this.keyring.open({ keyId: r.key_id, bytes: r.sealed }, aad(from, r.key));
        const sealed = this.keyring.seal(value, aad(to, r.key));
        this.s.reseal!.run({ from, to, key: r.key, keyId: sealed.keyId, sealed: sealed.bytes });
        n++;
      }
      // A name the new place already had keeps the newer entry; the old one goes.
      this.s.dropRepo!.run(from);
      return n;
    })();
  }

  /** Reseals every value under the keyring's current key, in one transaction. */
  resealAll(): number {
    return this.db.transaction(() => {
      let n = 0;
      for (const r of this.s.all!.all() as Row[]) {
        const value = this.keyring.open({ keyId: r.key_id, bytes: r.sealed }, aad(r.repo, r.key));
        const sealed = this.keyring.seal(value, aad(r.repo, r.key));
        this.s.reseal!.run({
          from: r.repo,
          to: r.repo,
          key: r.key,
          keyId: sealed.keyId,
          sealed: sealed.bytes,
        });
        n++;
      }
      return n;
    })();
  }
}
