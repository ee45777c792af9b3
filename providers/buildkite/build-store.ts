/** The `buildkite_builds` table (migration 0006): one row per workflow run sent to Buildkite. */
import type { Db } from '../../src/db/database.ts';
import type { BkBuild } from './state.ts';

export interface BuildRow {
  requestId: string;
  org: string;
  pipeline: string;
  phase: 'creating' | 'created';
  number: number | null;
  buildUuid: string | null;
  webUrl: string | null;
  state: string | null;
  blocked: boolean;
  startedAt: string | null;
  /** When the state was last learnt (ms), from a webhook or a poll. */
  stateAt: number;
  /** When the runner last reported the state to the dispatcher, or polled (ms). */
  checkedAt: number;
  /** The terminal build with its jobs, once known. */
  final: BkBuild | null;
}

const COLUMNS = `request_id AS requestId, org, pipeline, phase, number, build_uuid AS buildUuid, web_url AS webUrl,
  state, blocked, started_at AS startedAt, state_at AS stateAt, checked_at AS checkedAt, final`;

type Raw = Omit<BuildRow, 'blocked' | 'final'> & { blocked: number; final: string | null };

export class BuildStore {
  private readonly db: Db;

  constructor(db: Db) {
    this.db = db;
  }

  get(requestId: string): BuildRow | undefined {
    return row(
      this.db.prepare(`SELECT ${COLUMNS} FROM buildkite_builds WHERE request_id = ?`).get(requestId),
    );
  }

  byNumber(org: string, pipeline: string, number: number): BuildRow | undefined {
    return row(
      this.db
        .prepare(`SELECT ${COLUMNS} FROM buildkite_builds WHERE org = ? AND pipeline = ? AND number = ?`)
        .get(org, pipeline, number),
    );
  }

  byUuid(uuid: string): BuildRow | undefined {
    return row(this.db.prepare(`SELECT ${COLUMNS} FROM buildkite_builds WHERE build_uuid = ?`).get(uuid));
  }

  /** Records the intent to create, before the request is sent. */
  creating(requestId: string, org: string, pipeline: string, now = Date.now()): void {
    this.db
      .prepare(`INSERT INTO buildkite_builds (request_id, org, pipeline, phase, created_at) VALUES (?, ?, ?, 'creating', ?)
                ON CONFLICT (request_id) DO NOTHING`)
      .run(requestId, org, pipeline, now);
  }

  /** The build exists: its number, id and the state it was created (or found) in. */
  created(requestId: string, build: BkBuild, now = Date.now()): void {
    this.db
      .prepare(`UPDATE buildkite_builds SET phase = 'created', number = @number, build_uuid = @uuid, web_url = @webUrl,
                  state = @state, blocked = @blocked, started_at = @startedAt, state_at = @now, checked_at = @now
                WHERE request_id = @requestId`)
      .run({
        requestId,
        number: build.number,
        uuid: build.id,
        webUrl: build.web_url ?? null,
        state: build.state,
        blocked: build.blocked ? 1 : 0,
        startedAt: build.started_at ?? null,
        now,
      });
  }

  /** A newer state (webhook or poll); `checked` when the runner itself fetched it. */
  setState(requestId: string, build: BkBuild, checked: boolean, now = Date.now()): void {
    this.db
      .prepare(`UPDATE buildkite_builds SET state = @state, blocked = @blocked,
                  started_at = COALESCE(@startedAt, started_at), web_url = COALESCE(@webUrl, web_url),
                  state_at = @now, checked_at = CASE WHEN @checked THEN @now ELSE checked_at END
                WHERE request_id = @requestId`)
      .run({
        requestId,
        state: build.state,
        blocked: build.blocked ? 1 : 0,
        startedAt: build.started_at ?? null,
        webUrl: build.web_url ?? null,
        checked: checked ? 1 : 0,
        now,
      });
  }

  checked(requestId: string, now = Date.now()): void {
    this.db.prepare('UPDATE buildkite_builds SET checked_at = ? WHERE request_id = ?').run(now, requestId);
  }

  /**
   * Keeps the finished build: only the fields treadle reads. Buildkite's build JSON also echoes
   * the `env` it was created with, which holds the repository's secrets; that never reaches disk.
   */
  setFinal(requestId: string, build: BkBuild): void {
    this.db
      .prepare('UPDATE buildkite_builds SET final = ? WHERE request_id = ?')
      .run(JSON.stringify(finalSnapshot(build)), requestId);
  }

  /**
   * Forgets up to `limit` finished builds created before `beforeMs`, oldest first (retention,
   * with the runs window); a build not yet finished is never touched. Returns how many.
   */
  pruneFinished(beforeMs: number, limit: number): number {
    return this.db
      .prepare(`DELETE FROM buildkite_builds WHERE request_id IN (
                  SELECT request_id FROM buildkite_builds INDEXED BY buildkite_builds_finished
                  WHERE final IS NOT NULL AND created_at < ? ORDER BY created_at LIMIT ?)`)
      .run(beforeMs, limit).changes;
  }
}

function row(raw: unknown): BuildRow | undefined {
  if (!raw) return undefined;
  const r = raw as Raw;
  return { ...r, blocked: r.blocked === 1, final: r.final ? (JSON.parse(r.final) as BkBuild) : null };
}

function finalSnapshot(b: BkBuild): BkBuild {
  const { id, number, state, blocked, web_url, started_at, finished_at, meta_data } = b;
  return {
    id,
    number,
    state,
    blocked,
    web_url,
    started_at,
    finished_at,
    meta_data,
    jobs: b.jobs?.map((j) => ({
      id: j.id,
      type: j.type,
      name: j.name,
      label: j.label,
      command: j.command,
      state: j.state,
      exit_status: j.exit_status,
      soft_failed: j.soft_failed,
      retried: j.retried,
      started_at: j.started_at,
      finished_at: j.finished_at,
    })),
  };
}
