/** Runs git with a bound on time and output, never prompting and never reading system config. */
import { execFile } from 'node:child_process';
import { RetryableError } from '../errors.ts';

export interface GitOptions {
  cwd: string;
  timeoutMs: number;
  input?: string;
  maxBuffer?: number;
}

export class GitError extends RetryableError {
  readonly stderr: string;

  constructor(args: string[], stderr: string, cause?: unknown) {
    const detail = stderr.trim().split('\n').slice(-2).join(' ') || String(cause);
    super(`git ${args[0]} failed: ${detail}`, { cause });
    this.stderr = stderr;
  }
}

const ENV = {
  GIT_TERMINAL_PROMPT: '0',
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_ASKPASS: '/bin/false',
  SSH_ASKPASS: '/bin/false',
  LC_ALL: 'C',
};

/** Output of `git <args>` as a Buffer; a non-zero exit or the timeout throws GitError. */
export function git(args: string[], options: GitOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      'git',
      args,
      {
        cwd: options.cwd,
        env: { ...process.env, ...ENV },
        timeout: options.timeoutMs,
        killSignal: 'SIGKILL',
        maxBuffer: options.maxBuffer ?? 16 * 1024 * 1024,
        encoding: 'buffer',
      },
      (err, stdout, stderr) => {
        if (err) reject(new GitError(args, stderr.toString(), err));
        else resolve(stdout);
      },
    );
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}
