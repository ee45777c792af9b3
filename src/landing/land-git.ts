/**
 * git for landing (spec §7.4): one executable, arguments as an array (never a shell), an
 * environment built from scratch so no user or system config, pager, editor, prompt or hook
 * path of the machine can reach it, and the committer identity on every invocation. A value
 * that would be read as an option is refused before git runs.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { InvalidRequestError, PermanentError, RetryableError } from '../errors.ts';

export interface GitResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface LandGitOptions {
  /** The checkout (working tree) every command runs in. */
  cwd: string;
  committer: { name: string; email: string };
  timeoutMs: number;
  /** What may be inherited from the daemon's environment (`inheritedGitEnv()`). */
  inherited: Record<string, string>;
  executable?: string;
}

/** Refuses a value that git could read as an option. */
export function notAnOption(value: string, what: string): string {
  if (value.startsWith('-'))
    throw new InvalidRequestError(`${what} ${JSON.stringify(value)} begins with "-"`);
  return value;
}

export class LandGit {
  private readonly o: LandGitOptions;
  private readonly env: Record<string, string>;
  private readonly prefix: string[];

  constructor(options: LandGitOptions) {
    this.o = options;
    const home = join(options.cwd, '.git', 'treadle-home');
    this.env = {
      ...options.inherited,
      GIT_CONFIG_NOSYSTEM: '1',
      GIT_CONFIG_GLOBAL: '/dev/null',
      GIT_ATTR_NOSYSTEM: '1',
      GIT_TERMINAL_PROMPT: '0',
      GIT_PAGER: 'cat',
      GIT_EDITOR: ':',
      HOME: home,
      XDG_CONFIG_HOME: join(home, 'xdg'),
      LC_ALL: 'C',
      LANG: 'C',
    };
    this.prefix = [
      '-c',
      `user.name=${options.committer.name}`,
      '-c',
      `user.email=${options.committer.email}`,
      '-c',
      'commit.gpgsign=false',
    ];
  }

  /** Runs `git <args>`; any exit code is returned. A timeout or a missing git throws. */
  run(args: string[], extraEnv: Record<string, string> = {}): Promise<GitResult> {
    return new Promise((resolve, reject) => {
      execFile(
        this.o.executable ?? 'git',
        [...this.prefix, ...args],
        {
          cwd: this.o.cwd,
          env: { ...this.env, ...extraEnv },
          timeout: this.o.timeoutMs,
          killSignal: 'SIGKILL',
          maxBuffer: 64 * 1024 * 1024,
          encoding: 'utf8',
        },
        (err, stdout, stderr) => {
          if (!err) return resolve({ code: 0, stdout, stderr });
          const e = err as NodeJS.ErrnoException & { killed?: boolean; code?: number | string };
          if (e.code === 'ENOENT')
            return reject(new PermanentError(`git executable not found: ${this.o.executable ?? 'git'}`));
          if (e.killed)
            return reject(new RetryableError(`git ${args[0]} timed out after ${this.o.timeoutMs} ms`));
          if (typeof e.code === 'number') return resolve({ code: e.code, stdout, stderr });
          reject(new RetryableError(`git ${args[0]} failed: ${e.message}`));
        },
      );
    });
  }

  /** `git <args>` that must succeed: its trimmed stdout, or a RetryableError naming the command. */
  async ok(args: string[], extraEnv: Record<string, string> = {}): Promise<string> {
    const r = await this.run(args, extraEnv);
    if (r.code !== 0)
      throw new RetryableError(`git ${args[0]} failed (exit ${r.code}): ${lastLines(r.stderr || r.stdout)}`);
    return r.stdout.trim();
  }
}

export function lastLines(text: string, n = 3): string {
  return text.trim().split('\n').slice(-n).join(' | ');
}
