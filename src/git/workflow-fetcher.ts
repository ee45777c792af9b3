/**
 * Reads `.tangled/workflows/` at an exact commit from a knot's git smart-HTTP endpoint
 * (2026 spec §3.3), without checking anything out. One bare, partial repository per repo DID
 * under `dir`: the commit is fetched with `--depth=1 --filter=tree:0` (git 2.39 has no
 * `clone --revision`), the few trees on the path are fetched lazily by `ls-tree`, and the
 * workflow blobs in one request. A commit already present is read without touching the network.
 * Only regular files directly inside the directory count; a missing directory is no workflows.
 */
import { mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { PermanentError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { git } from './git.ts';

export interface WorkflowFile {
  /** The file name, e.g. `build.yml` (stock uses it as the workflow's name and id). */
  name: string;
  raw: string;
  /** Set when the file cannot be a workflow at all (e.g. not UTF-8); `raw` is then empty. */
  unreadable?: string;
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/** A file's text, or why it has none: a workflow that is not UTF-8 is refused, not garbled. */
function decode(name: string, bytes: Buffer): WorkflowFile {
  try {
    return { name, raw: UTF8.decode(bytes) };
  } catch {
    return { name, raw: '', unreadable: 'workflow file is not valid UTF-8' };
  }
}

export interface WorkflowFetcherOptions {
  /** Where the per-repo caches live. */
  dir: string;
  /** `http://` instead of `https://` for knots. */
  dev: boolean;
  log: Logger;
  /** A workflow file larger than this refuses the whole fetch (default 1 MiB). */
  maxFileBytes?: number;
  /** More files than this refuses the fetch (stock's pipeline lexicon allows 50 workflows). */
  maxFiles?: number;
  /** Bound on each git command (default 60 s). */
  timeoutMs?: number;
}

/** The commit has workflow files treadle refuses to read; retrying will not help. */
export class WorkflowFilesRefused extends PermanentError {}

const SHA = /^([0-9a-f]{40}|[0-9a-f]{64})$/;
const DIR = '.tangled/workflows';

export class WorkflowFetcher {
  private readonly o: Required<WorkflowFetcherOptions>;
  /** One git operation per repo at a time; callers for other repos run in parallel. */
  private readonly locks = new Map<string, Promise<unknown>>();

  constructor(options: WorkflowFetcherOptions) {
    this.o = { maxFileBytes: 1024 * 1024, maxFiles: 50, timeoutMs: 60_000, ...options };
  }

  /** The knot's clone URL for a repo: `https://<knot>/<repoDid>`. */
  remoteUrl(knot: string, repoDid: string): string {
    return `${this.o.dev ? 'http' : 'https'}://${knot}/${repoDid}`;
  }

  /** The workflow files at `sha`, sorted by name; [] when the commit has no workflow directory. */
  fetch(knot: string, repoDid: string, sha: string): Promise<WorkflowFile[]> {
    if (!SHA.test(sha)) return Promise.reject(new PermanentError(`not a commit id: ${JSON.stringify(sha)}`));
    if (!/^did:[a-z]+:[A-Za-z0-9._:%-]+$/.test(repoDid))
      return Promise.reject(new PermanentError(`not a repo DID: ${JSON.stringify(repoDid)}`));
    const previous = this.locks.get(repoDid) ?? Promise.resolve();
    const run = previous.catch(() => undefined).then(() => this.read(knot, repoDid, sha));
    this.locks.set(repoDid, run);
    void run
      .catch(() => undefined)
      .then(() => {
        if (this.locks.get(repoDid) === run) this.locks.delete(repoDid);
      });
    return run;
  }

  private async read(knot: string, repoDid: string, sha: string): Promise<WorkflowFile[]> {
    const cwd = await this.repository(knot, repoDid);
    const run = (args: string[], input?: string) => git(args, { cwd, timeoutMs: this.o.timeoutMs, input });
    const started = performance.now();
    const cached = await run(['cat-file', '-e', `${sha}^{commit}`]).then(
      () => true,
      () => false,
    );
    if (!cached) {
      await run([
        'fetch',
        '--quiet',
        '--depth=1',
        '--filter=tree:0',
        '--no-tags',
        '--no-write-fetch-head',
        'origin',
        sha,
      ]);
    }
    // Lazily fetches the root, .tangled and workflows trees when they are not here yet.
    const listing = (await run(['ls-tree', '-z', sha, `${DIR}/`])).toString();
    const files: Array<{ oid: string; name: string }> = [];
    for (const entry of listing.split('\0')) {
      const match = /^(\d{6}) (\w+) ([0-9a-f]+)\t(.+)$/s.exec(entry);
      if (!match) continue;
      const [, mode, type, oid, path] = match;
      // Regular files only: no subdirectories, symlinks or submodules.
      if (type !== 'blob' || (mode !== '100644' && mode !== '100755')) continue;
      files.push({ oid: oid!, name: path!.slice(DIR.length + 1) });
    }
    if (files.length === 0) return [];
    if (files.length > this.o.maxFiles)
      throw new WorkflowFilesRefused(
        `${files.length} workflow files at ${sha}; at most ${this.o.maxFiles} are read`,
      );
    const oids = files.map((f) => f.oid);
    if (!cached) {
      await run([
        'fetch',
        '--quiet',
        '--no-tags',
        '--no-write-fetch-head',
        '--filter=blob:none',
        'origin',
        ...oids,
      ]);
    }
    const sizes = (
      await run(['cat-file', '--batch-check=%(objectname) %(objectsize)'], `${oids.join('\n')}\n`)
    )
      .toString()
      .trim()
      .split('\n')
      .map((line) => Number(line.split(' ')[1]));
    files.forEach((f, i) => {
      if (!(sizes[i]! <= this.o.maxFileBytes))
        throw new WorkflowFilesRefused(
          `workflow file ${f.name} is ${sizes[i]} bytes; the limit is ${this.o.maxFileBytes}`,
        );
    });
    const contents = await Promise.all(files.map((f) => run(['cat-file', 'blob', f.oid])));
    this.o.log.debug(
      { repoDid, sha, files: files.length, cached, ms: Math.round(performance.now() - started) },
      'workflows read',
    );
    return files
      .map((f, i) => decode(f.name, contents[i]!))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** The bare partial repository for a repo DID, created on first use; its remote follows the knot. */
  private async repository(knot: string, repoDid: string): Promise<string> {
    const cwd = join(this.o.dir, encodeURIComponent(repoDid));
    const url = this.remoteUrl(knot, repoDid);
    const run = (args: string[]) => git(args, { cwd, timeoutMs: this.o.timeoutMs });
    const exists = await stat(join(cwd, 'HEAD')).then(
      () => true,
      () => false,
    );
    if (!exists) {
      await mkdir(cwd, { recursive: true });
      await run(['init', '--bare', '--quiet']);
      await run(['config', 'core.repositoryformatversion', '1']);
      await run(['config', 'extensions.partialClone', 'origin']);
      await run(['config', 'remote.origin.promisor', 'true']);
      await run(['config', 'remote.origin.partialclonefilter', 'tree:0']);
      await run(['config', 'remote.origin.url', url]);
      await run(['config', 'protocol.version', '2']);
      await run(['config', 'gc.auto', '0']);
    } else {
      const current = (await run(['config', 'remote.origin.url'])).toString().trim();
      if (current !== url) await run(['config', 'remote.origin.url', url]);
    }
    return cwd;
  }
}
