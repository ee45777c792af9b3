/**
 * Local git fixtures for landing (spec §10): a bare `remote.git` (`git init --bare -b main`)
 * and an author's clone that commits and pushes change branches. Contention is a pre-receive
 * hook that moves `main` and rejects the first N pushes; pushes are counted by a post-receive hook.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

const ENV = {
  PATH: process.env.PATH ?? '/usr/bin:/bin',
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_TERMINAL_PROMPT: '0',
  LC_ALL: 'C',
};

export interface Author {
  name: string;
  email: string;
}

export const ALICE: Author = { name: 'Alice Author', email: 'alice@example.com' };

export class GitRemote {
  readonly dir: string;
  readonly bare: string;
  readonly clone: string;
  private n = 0;

  constructor(dir: string) {
    this.dir = dir;
    this.bare = join(dir, 'remote.git');
    this.clone = join(dir, 'author');
    mkdirSync(dir, { recursive: true });
    gitIn(dir, ['init', '-q', '--bare', '-b', 'main', this.bare]);
    gitIn(dir, ['clone', '-q', this.bare, this.clone]);
    this.git(['checkout', '-q', '-b', 'main']);
    this.commit({ 'README.md': 'hello\n' }, 'initial');
    this.git(['push', '-q', 'origin', 'main']);
    writeFileSync(join(dir, 'pushes.log'), '');
    this.hook(
      'post-receive',
      `#!/bin/sh\nwhile read old new ref; do echo "$ref $new" >> "${join(dir, 'pushes.log')}"; done\n`,
    );
  }

  /** git in the author's clone, as the author. */
  git(args: string[], author: Author = ALICE): string {
    return gitIn(this.clone, ['-c', `user.name=${author.name}`, '-c', `user.email=${author.email}`, ...args]);
  }

  /** Commits files (content, or null to delete) on the current branch; returns the sha. */
  commit(files: Record<string, string | null>, message?: string, author: Author = ALICE): string {
    for (const [path, content] of Object.entries(files)) {
      const full = join(this.clone, path);
      if (content === null) this.git(['rm', '-q', path]);
      else {
        mkdirSync(dirname(full), { recursive: true });
        writeFileSync(full, content);
        this.git(['add', path]);
      }
    }
    this.git(['commit', '-q', '--allow-empty', '-m', message ?? `change ${++this.n}`], author);
    return this.git(['rev-parse', 'HEAD']);
  }

  /** A branch off `from` (default main on the remote) with the given commits pushed; returns their shas. */
  branch(name: string, commits: Array<Record<string, string | null>>, from = 'origin/main'): string[] {
    this.git(['fetch', '-q', 'origin']);
    this.git(['checkout', '-q', '-B', name, from]);
    const shas = commits.map((files) => this.commit(files));
    this.git(['push', '-q', '-f', 'origin', name]);
    return shas;
  }

  /** Advances the remote's main by one commit touching `files`; returns the sha. */
  advanceMain(files: Record<string, string | null>): string {
    const [sha] = this.branch('main', [files]);
    return sha!;
  }

  /** The remote's tip of a branch, or undefined. */
  tip(branch: string): string | undefined {
    try {
      return gitIn(this.bare, ['rev-parse', '-q', '--verify', `refs/heads/${branch}`]);
    } catch {
      return undefined;
    }
  }

  /** Text of the file at a commit of the remote. */
  show(rev: string, path: string): string {
    return gitIn(this.bare, ['show', `${rev}:${path}`]);
  }

  /** `git log -1 --format=<format> <rev>` on the remote. */
  format(rev: string, format: string): string {
    return gitIn(this.bare, ['log', '-1', `--format=${format}`, rev]);
  }

  /** Updates that reached the remote, as "<ref> <sha>" lines. */
  pushes(): string[] {
    return readFileSync(join(this.dir, 'pushes.log'), 'utf8').split('\n').filter(Boolean);
  }

  hook(name: string, script: string): void {
    const path = join(this.bare, 'hooks', name);
    writeFileSync(path, script);
    chmodSync(path, 0o755);
  }

  /**
   * Contention: each of the first `n` pushes to main is rejected after main was moved by
   * another commit (as if someone else pushed first).
   */
  contend(n: number): void {
    const counter = join(this.dir, 'contention');
    writeFileSync(counter, String(n));
    this.hook(
      'pre-receive',
      `#!/bin/sh
left=$(cat "${counter}")
[ "$left" -gt 0 ] || exit 0
echo $((left - 1)) > "${counter}"
unset GIT_QUARANTINE_PATH GIT_OBJECT_DIRECTORY GIT_ALTERNATE_OBJECT_DIRECTORIES
export GIT_DIR="${this.bare}"
parent=$(git rev-parse refs/heads/main)
blob=$(echo "other $left" | git hash-object -w --stdin)
tree=$( (git ls-tree "$parent"; printf '100644 blob %s\tother-%s.txt\n' "$blob" "$left") | git mktree)
commit=$(GIT_AUTHOR_NAME=Other GIT_AUTHOR_EMAIL=other@example.com GIT_COMMITTER_NAME=Other \
  GIT_COMMITTER_EMAIL=other@example.com git commit-tree "$tree" -p "$parent" -m "other $left")
git update-ref refs/heads/main "$commit" "$parent"
echo "main moved under you" >&2
exit 1
`,
    );
  }
}

export function gitIn(cwd: string, args: string[]): string {
  return execFileSync('git', args, {
    cwd,
    env: ENV,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  }).trim();
}
