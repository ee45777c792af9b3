/** SQL behind `sh.tangled.ci.queryPipelines`: a repo's pipelines newest first, filtered, paged by `created`. */
import type { Statement } from 'better-sqlite3';
import type { Db } from './database.ts';

export interface PipelineQuery {
  repoDid: string;
  commits: string[];
  kinds: string[];
  limit: number;
  /** Only pipelines strictly older than this `created`. */
  before?: bigint;
}

export interface PipelinePageRow {
  knot: string;
  rkey: string;
  repoDid: string;
  kind: string;
  commit: string | null;
  created: bigint;
  /** `triggerMetadata` of the pipeline record, JSON. */
  trigger: string;
}

export class CiStore {
  private readonly db: Db;
  /** Statements by filter shape (how many commits and kinds, cursor or not). */
  private readonly statements = new Map<string, { page: Statement; count: Statement }>();

  constructor(db: Db) {
    this.db = db;
  }

  page(q: PipelineQuery): { rows: PipelinePageRow[]; total: number } {
    const { page, count } = this.statementsFor(q.commits.length, q.kinds.length, q.before !== undefined);
    const args = [q.repoDid, ...q.commits, ...q.kinds];
    const rows = page.all(
      ...args,
      ...(q.before !== undefined ? [q.before] : []),
      q.limit,
    ) as PipelinePageRow[];
    const total = Number(
      (count.get(...(q.commits.length > 0 ? args : [q.repoDid, ...q.kinds])) as { n: bigint }).n,
    );
    return { rows, total };
  }

  private statementsFor(
    commits: number,
    kinds: number,
    cursor: boolean,
  ): { page: Statement; count: Statement } {
    const shape = `${commits}/${kinds}/${cursor}`;
    let s = this.statements.get(shape);
    if (!s) {
      const where = ['repo_did = ?'];
      if (commits > 0) where.push(`commit_sha IN (${placeholders(commits)})`);
      if (kinds > 0) where.push(`kind IN (${placeholders(kinds)})`);
      const filter = where.join(' AND ');
      // With commits, the commit index finds the few rows; without, walk the repo's rows newest
      // first. (Left to itself the planner walks the whole repo to avoid a sort of a few rows.)
      const index = commits > 0 ? 'pipelines_commit' : 'pipelines_repo';
      s = {
        page: this.db
          .prepare(
            `SELECT knot, rkey, repo_did AS repoDid, kind, commit_sha AS "commit", created,
                    json_extract(record, '$.triggerMetadata') AS "trigger"
             FROM pipelines INDEXED BY ${index} WHERE ${filter}${cursor ? ' AND created < ?' : ''}
             ORDER BY created DESC LIMIT ?`,
          )
          .safeIntegers(true),
        // Totals without commits come from the trigger-kept pipeline_counts.
        count:
          commits > 0
            ? this.db.prepare(
                `SELECT count(*) AS n FROM pipelines INDEXED BY pipelines_commit WHERE ${filter}`,
              )
            : this.db.prepare(
                `SELECT coalesce(sum(n), 0) AS n FROM pipeline_counts WHERE repo_did = ?${kinds > 0 ? ` AND kind IN (${placeholders(kinds)})` : ''}`,
              ),
      };
      s.count.safeIntegers(true);
      if (this.statements.size > 256) this.statements.clear();
      this.statements.set(shape, s);
    }
    return s;
  }
}

function placeholders(n: number): string {
  return Array.from({ length: n }, () => '?').join(', ');
}
