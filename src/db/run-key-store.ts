/**
 * Push and pull-request dedup across the two ways a run can arrive (2026 spec §4.5), and what
 * each knot has shown it sends (§4.3). Keys are kept a week (the spec asks for at least 24 h).
 */
import type { Statement } from 'better-sqlite3';
import type { Db } from './database.ts';

export const RUN_KEY_RETENTION_MS = 7 * 24 * 3600_000;

export type RunKeyState = 'run' | 'lent';

export interface RunKey {
  state: RunKeyState;
  knot: string;
  rkey: string;
}

export type KnotMode = 'legacy' | 'new';

export interface KnotModeRow {
  mode: KnotMode;
  /** null: not known yet; whether the knot also sends `sh.tangled.pipeline` for its pushes. */
  sendsPipelines: boolean | null;
}

export class RunKeyStore {
  private readonly s: Record<string, Statement>;

  constructor(db: Db) {
    const p = (sql: string) => db.prepare(sql);
    this.s = {
      get: p('SELECT state, knot, rkey FROM run_keys WHERE key = ?'),
      put: p(`INSERT INTO run_keys (key, state, knot, rkey, created_at) VALUES (@key, @state, @knot, @rkey, @now)
              ON CONFLICT (key) DO UPDATE SET state = excluded.state, knot = excluded.knot, rkey = excluded.rkey`),
      expire: p('DELETE FROM run_keys WHERE created_at < ?'),
      mode: p('SELECT mode, sends_pipelines AS sends FROM knot_modes WHERE knot = ?'),
      setNew: p(`INSERT INTO knot_modes (knot, mode, sends_pipelines, updated_at) VALUES (?, 'new', NULL, ?)
                 ON CONFLICT (knot) DO UPDATE SET mode = 'new', updated_at = excluded.updated_at`),
      setSends:
        p(`INSERT INTO knot_modes (knot, mode, sends_pipelines, updated_at) VALUES (@knot, 'legacy', @sends, @now)
                   ON CONFLICT (knot) DO UPDATE SET sends_pipelines = @sends, updated_at = @now`),
    };
  }

  get(key: string): RunKey | undefined {
    return this.s.get!.get(key) as RunKey | undefined;
  }

  put(key: string, value: RunKey, now = Date.now()): void {
    this.s.put!.run({ key, ...value, now });
  }

  /** Forgets keys older than the retention; returns how many. */
  expire(now = Date.now()): number {
    return this.s.expire!.run(now - RUN_KEY_RETENTION_MS).changes;
  }

  knotMode(knot: string): KnotModeRow {
    const row = this.s.mode!.get(knot) as { mode: KnotMode; sends: number | null } | undefined;
    if (!row) return { mode: 'legacy', sendsPipelines: null };
    return { mode: row.mode, sendsPipelines: row.sends === null ? null : row.sends === 1 };
  }

  /** The knot sent a new-shape refUpdate; returns true when that is news. */
  markNew(knot: string, now = Date.now()): boolean {
    if (this.knotMode(knot).mode === 'new') return false;
    this.s.setNew!.run(knot, now);
    return true;
  }

  setSendsPipelines(knot: string, sends: boolean, now = Date.now()): void {
    this.s.setSends!.run({ knot, sends: sends ? 1 : 0, now });
  }
}
