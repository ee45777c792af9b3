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

/** What landing's git may inherit from the daemon's environment (spec §7.4): the path, SSH agent and
 * command, TLS trust and proxies. Nothing else: every other variable is built from scratch. */
const INHERITED = [
  'PATH',
  'SSH_AUTH_SOCK',
  'SSH_AGENT_PID',
  'GIT_SSH',
  'GIT_SSH_COMMAND',
  'GIT_SSH_VARIANT',
  'GIT_SSL_CAINFO',
  'GIT_SSL_CAPATH',
  'SSL_CERT_DIR',
  'SSL_CERT_FILE',
  'HTTP_PROXY',
  'HTTPS_PROXY',
  'NO_PROXY',
  'http_proxy',
  'https_proxy',
  'no_proxy',
];

export function inheritedGitEnv(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of INHERITED) {
    const value = process.env[name];
    if (value !== undefined) out[name] = value;
  }
  return out;
}
