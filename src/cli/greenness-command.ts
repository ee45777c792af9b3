/**
 * `treadle greenness …`: which commits of a branch are green, for people and deploy scripts.
 * Reads the database beside a running daemon (WAL: it never blocks it). `gate` exits 0 when the
 * commit is green and 1 otherwise, with the reason on stderr.
 */
import { parseArgs } from 'node:util';
import { loadAdminConfig } from '../config.ts';
import { openExistingDatabase } from '../db/database.ts';
import { GreennessStore } from '../db/greenness-store.ts';
import { InvalidRequestError, XrpcError } from '../errors.ts';
import { type CommitStatus, checkCommit, GreennessApi, reasonOf } from '../greenness/api.ts';
import { EXIT } from './exit-codes.ts';
import { type Output, table } from './output.ts';

export const GREENNESS_USAGE = `usage:
  treadle greenness status <repo> <ref> <commit> [--json]   the commit's verdict and its workflows
  treadle greenness history <repo> <ref> [--limit N] [--json] newest commits first
  treadle greenness last-green <repo> <ref> [--json]         the newest green commit
  treadle greenness gate <repo> <ref> <commit>               exit 0 if green, 1 if not (reason on stderr)
<repo> is a repo DID or <ownerDid>/<name>; <ref> is refs/heads/<branch> or <branch>
options: --db <file> (default: TREADLE_DB)`;

export function greennessCommand(args: string[], env: NodeJS.ProcessEnv, io: Output): number {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      json: { type: 'boolean' },
      limit: { type: 'string' },
      db: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    io.out(GREENNESS_USAGE);
    return EXIT.ok;
  }
  const [sub, repo, ref, commit, ...extra] = positionals;
  const needsCommit = sub === 'status' || sub === 'gate';
  const known = ['status', 'history', 'last-green', 'gate'].includes(sub ?? '');
  const limit = values.limit === undefined ? 20 : Number(values.limit);
  if (
    !known ||
    !repo ||
    !ref ||
    (needsCommit ? !commit : commit !== undefined) ||
    extra.length > 0 ||
    !(limit >= 1 && limit <= 200)
  ) {
    io.err(GREENNESS_USAGE);
    return EXIT.usage;
  }
  const db = openExistingDatabase(values.db ?? loadAdminConfig(env).config.db);
  try {
    const store = new GreennessStore(db);
    const api = new GreennessApi(store);
    let q: ReturnType<GreennessApi['queue']>;
    try {
      q = api.queue(repo, ref);
    } catch (err) {
      if (err instanceof XrpcError || err instanceof InvalidRequestError) {
        io.err(`treadle: ${err.message}`);
        return err instanceof InvalidRequestError ? EXIT.usage : EXIT.failure;
      }
      throw err;
    }
    const json = values.json ?? false;
    if (sub === 'last-green') {
      if (q.lastGreenSeq === null) {
        io.err(`treadle: ${q.ref} of ${q.repo} has no green commit yet`);
        return EXIT.failure;
      }
      const out = {
        commit: q.lastGreenCommit,
        seq: q.lastGreenSeq,
        at: new Date(q.lastGreenAt!).toISOString(),
      };
      io.out(json ? JSON.stringify(out) : `${out.commit}  seq ${out.seq}  green since ${out.at}`);
      return EXIT.ok;
    }
    if (sub === 'history') {
      const items = store
        .history(q.key, Number.MAX_SAFE_INTEGER, limit)
        .map((v) => api.status(q, v.commit, v));
      if (json) io.out(JSON.stringify({ items }));
      else
        for (const line of table(['SEQ', 'COMMIT', 'STATUS', 'DEGREE', 'WHY'], items.map(row))) io.out(line);
      return EXIT.ok;
    }
    let sha: string;
    try {
      sha = checkCommit(commit);
    } catch (err) {
      io.err(`treadle: ${(err as Error).message}`);
      return EXIT.usage;
    }
    const status = api.status(q, sha);
    if (sub === 'gate') {
      if (status.status === 'green') {
        io.out(`green: ${sha}`);
        return EXIT.ok;
      }
      io.err(`not green: ${reasonOf(status)}`);
      return EXIT.failure;
    }
    if (json) io.out(JSON.stringify(status));
    else {
      io.out(
        `${status.commit}  ${status.status}${status.degree !== undefined ? ` (degree ${status.degree})` : ''}  ${reasonOf(status)}`,
      );
      for (const line of table(
        ['WORKFLOW', 'STATUS', 'DEGREE'],
        status.workflows.map((w) => [w.name, w.status, w.degree ?? '']),
      ))
        io.out(line);
    }
    return EXIT.ok;
  } finally {
    db.close();
  }
}

function row(s: CommitStatus): Array<string | number> {
  return [s.seq ?? '', s.commit.slice(0, 12), s.status, s.degree ?? '', reasonOf(s)];
}
