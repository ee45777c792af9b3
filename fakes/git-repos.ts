/**
 * Real git repositories for the fake knot: bare repositories on disk, written with git's own
 * plumbing, and served over smart HTTP by wrapping `git http-backend` (CGI), as a knot serves
 * `https://<knot>/<repoDid>`. Nothing here is canned: a client fetches real packs.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const GIT_ENV = {
  GIT_AUTHOR_NAME: 'Test Author',
  GIT_AUTHOR_EMAIL: 'author@example.com',
  GIT_COMMITTER_NAME: 'Test Author',
  GIT_COMMITTER_EMAIL: 'author@example.com',
  GIT_CONFIG_NOSYSTEM: '1',
};

/** Files of a commit: path → content; `null` deletes the path. */
/** Path → new content (text or bytes), a symbolic link to a target, or null to remove the path. */
export type FileChanges = Record<string, string | Buffer | { symlink: string } | null>;

export class GitRepos {
  readonly root: string;
  /** Smart-HTTP requests served, as `<method> <path>` (for asserting cache behaviour). */
  readonly requests: string[] = [];

  constructor() {
    this.root = mkdtempSync(join(tmpdir(), 'treadle-knot-git-'));
  }

  path(repoDid: string): string {
    return join(this.root, repoDid);
  }

  /** Creates a bare repository that allows the partial, by-sha fetches a spindle makes. */
  create(repoDid: string): void {
    const dir = this.path(repoDid);
    mkdirSync(dir, { recursive: true });
    this.git(dir, ['init', '--bare', '-q', '-b', 'main']);
    this.git(dir, ['config', 'uploadpack.allowFilter', 'true']);
    this.git(dir, ['config', 'uploadpack.allowAnySHA1InWant', 'true']);
  }

  /**
   * Commits `files` on top of `branch` and returns the new commit's sha; a new branch starts
   * from `from` (a branch or sha), or as a root commit.
   */
  commit(
    repoDid: string,
    files: FileChanges,
    options: { branch?: string; message?: string; from?: string } = {},
  ): string {
    const dir = this.path(repoDid);
    const branch = options.branch ?? 'main';
    const index = join(dir, `index-${process.pid}`);
    const env = { GIT_INDEX_FILE: index };
    let parent: string | undefined;
    try {
      parent = this.git(dir, ['rev-parse', '--verify', '-q', `refs/heads/${branch}`]).trim();
    } catch {
      parent = options.from ? this.git(dir, ['rev-parse', '--verify', options.from]).trim() : undefined;
    }
    rmSync(index, { force: true });
    if (parent) this.git(dir, ['read-tree', parent], env);
    for (const [path, content] of Object.entries(files)) {
      if (content === null) {
        // Mode 0 removes the entry (update-index --force-remove needs a work tree).
        this.git(dir, ['update-index', '--index-info'], env, `0 ${'0'.repeat(40)}\t${path}\n`);
        continue;
      }
      const link = typeof content === 'object' && !Buffer.isBuffer(content) ? content.symlink : undefined;
      const bytes = link ?? (content as string | Buffer);
      const oid = this.git(dir, ['hash-object', '-w', '--stdin'], env, bytes).trim();
      const mode = link === undefined ? '100644' : '120000';
      this.git(dir, ['update-index', '--add', '--cacheinfo', `${mode},${oid},${path}`], env);
    }
    const tree = this.git(dir, ['write-tree'], env).trim();
    rmSync(index, { force: true });
    const args = ['commit-tree', tree, '-m', options.message ?? 'commit'];
    if (parent) args.push('-p', parent);
    const sha = this.git(dir, args).trim();
    this.git(dir, ['update-ref', `refs/heads/${branch}`, sha]);
    return sha;
  }

  /** `git format-patch --stdout base..tip`: the series a pull request round uploads (before gzip). */
  formatPatch(repoDid: string, base: string, tip: string): string {
    return this.git(this.path(repoDid), ['format-patch', '--stdout', `${base}..${tip}`]);
  }

  /** Serves `/<repoDid>/info/refs` and `/<repoDid>/git-upload-pack`; false for other paths. */
  handle(req: IncomingMessage, res: ServerResponse): boolean {
    const url = new URL(req.url ?? '/', 'http://knot');
    if (!/^\/[^/]+\/(info\/refs|git-upload-pack)$/.test(url.pathname)) return false;
    this.requests.push(`${req.method} ${url.pathname}`);
    const child = spawn('git', ['http-backend'], {
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        ...GIT_ENV,
        GIT_PROJECT_ROOT: this.root,
        GIT_HTTP_EXPORT_ALL: '1',
        PATH_INFO: decodeURIComponent(url.pathname),
        REQUEST_METHOD: req.method ?? 'GET',
        QUERY_STRING: url.search.slice(1),
        CONTENT_TYPE: req.headers['content-type'] ?? '',
        HTTP_CONTENT_ENCODING: req.headers['content-encoding'] ?? '',
        GIT_PROTOCOL: String(req.headers['git-protocol'] ?? ''),
        REMOTE_ADDR: req.socket.remoteAddress ?? '',
      },
      stdio: ['pipe', 'pipe', 'ignore'],
    });
    req.pipe(child.stdin);
    let head = Buffer.alloc(0);
    let headersSent = false;
    child.stdout.on('data', (chunk: Buffer) => {
      if (headersSent) {
        res.write(chunk);
        return;
      }
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      let status = 200;
      const headers: Record<string, string> = {};
      for (const line of head.subarray(0, end).toString().split('\r\n')) {
        const colon = line.indexOf(':');
        const name = line.slice(0, colon).trim();
        const value = line.slice(colon + 1).trim();
        if (name.toLowerCase() === 'status') status = Number.parseInt(value, 10);
        else headers[name] = value;
      }
      res.writeHead(status, headers);
      headersSent = true;
      res.write(head.subarray(end + 4));
    });
    child.on('close', () => {
      if (!headersSent) res.writeHead(500);
      res.end();
    });
    return true;
  }

  remove(): void {
    rmSync(this.root, { recursive: true, force: true });
  }

  private git(
    dir: string,
    args: string[],
    env: Record<string, string> = {},
    input?: string | Buffer,
  ): string {
    return execFileSync('git', ['-C', dir, ...args], {
      env: { ...process.env, ...GIT_ENV, ...env },
      input,
      maxBuffer: 64 * 1024 * 1024,
    }).toString();
  }
}
