/**
 * The `landing` block of the TREADLE_CONFIG file: the targets treadle may push to (spec §7.1,
 * §7.3, §9). Validated at start-up; every problem names its key (exit 78): an unknown key, a
 * duplicate name, two targets sharing a checkout with different remotes or branches, a relative
 * checkout path, a branch or remote that could be read as an option, credentials in a URL.
 */
import { isAbsolute, join } from 'node:path';
import { z } from 'zod';
import { parseDurationMs } from '../config-values.ts';

export type Strategy = 'DEFAULT' | 'REBASE' | 'SQUASH_REBASE' | 'MERGE' | 'PROMOTE';
export const STRATEGIES: readonly Strategy[] = ['DEFAULT', 'REBASE', 'SQUASH_REBASE', 'MERGE', 'PROMOTE'];

export interface LandingTarget {
  name: string;
  /** The repo id greenness uses: a repo DID or `<ownerDid>/<name>`. */
  repo: string;
  remoteUrl: string;
  remote: string;
  /** Short branch name, e.g. `verified/main`. */
  targetBranch: string;
  /** Absolute; owned by treadle. */
  checkoutPath: string;
  defaultStrategy: Exclude<Strategy, 'DEFAULT'>;
  maxPushAttempts: number;
  checkStaleness: boolean;
  allowUnrelatedHistories: boolean;
  promoteMode: 'ff-only' | 'reset-with-lease';
  committer: { name: string; email: string };
  /** The environment variable holding a full HTTP `Authorization` header value. */
  authHeaderEnv?: string;
  /** Its value, read at start-up; never logged. */
  authHeader?: string;
  gitCommandTimeoutMs: number;
}

export interface LandingConfig {
  targets: LandingTarget[];
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;
const REPO = /^did:[a-z]+:[A-Za-z0-9._:%-]+(\/[^/\s]+)?$/;

/** A branch name git accepts and no command could read as an option (git check-ref-format, mostly). */
export function isBranchName(b: string): boolean {
  return (
    /^[A-Za-z0-9._/+-]{1,200}$/.test(b) &&
    !b.startsWith('-') &&
    !b.startsWith('/') &&
    !b.endsWith('/') &&
    !b.endsWith('.') &&
    !b.endsWith('.lock') &&
    !b.includes('..') &&
    !b.includes('//') &&
    !b.split('/').some((c) => c.startsWith('.'))
  );
}

const duration = z.union([z.string(), z.number()]).transform((v, ctx) => {
  const ms = parseDurationMs(v);
  if (ms === undefined || ms <= 0) {
    ctx.addIssue({ code: 'custom', message: 'not a duration such as 2m or 90s' });
    return z.NEVER;
  }
  return ms;
});

const targetSchema = z.strictObject({
  name: z.string().regex(NAME, 'a name of letters, digits, ".", "_" and "-"'),
  repo: z.string().regex(REPO, 'a repo DID or <ownerDid>/<name>'),
  remoteUrl: z
    .string()
    .min(1)
    .refine((u) => !u.startsWith('-') && !/\s/.test(u), 'a git remote URL (no spaces, not starting with "-")')
    .refine((u) => !/^[a-z][a-z0-9+.-]*:\/\/[^/@]*:[^/@]*@/i.test(u), {
      message: 'credentials do not belong in the URL: use authHeaderEnv or an SSH key',
    }),
  remote: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'a remote name')
    .default('origin'),
  targetBranch: z.string().refine(isBranchName, 'a branch name such as main or verified/main'),
  checkoutPath: z.string().refine(isAbsolute, 'an absolute path').optional(),
  defaultStrategy: z.enum(['REBASE', 'SQUASH_REBASE', 'MERGE', 'PROMOTE']).default('REBASE'),
  maxPushAttempts: z.number().int().min(1).max(100).default(10),
  checkStaleness: z.boolean().default(true),
  allowUnrelatedHistories: z.boolean().default(false),
  promoteMode: z.enum(['ff-only', 'reset-with-lease']).default('ff-only'),
  committer: z
    .strictObject({
      name: z
        .string()
        .min(1)
        .max(200)
        .regex(/^[^<>\n]+$/, 'a name without <, > or newlines'),
      email: z
        .string()
        .min(3)
        .max(200)
        .regex(/^[^<>\s]+@[^<>\s]+$/, 'an email address'),
    })
    .default({ name: 'treadle', email: 'treadle@localhost' }),
  authHeaderEnv: z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name')
    .optional(),
  gitCommandTimeout: duration.default(120_000),
});

const schema = z.strictObject({ targets: z.array(targetSchema).default([]) });

function keyOf(path: PropertyKey[]): string {
  return ['landing', ...path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`))]
    .join('')
    .replace(/\.\[/g, '[');
}

/**
 * Parses the block (undefined: no targets). `repoDir` is where checkouts go by default
 * (`<repoDir>/land/<name>`). Returns the config, or one problem per bad key, each naming it.
 */
export function parseLanding(
  raw: unknown,
  env: Record<string, string | undefined>,
  repoDir: string,
): { config: LandingConfig } | { problems: string[] } {
  if (raw === undefined || raw === null) return { config: { targets: [] } };
  const parsed = schema.safeParse(raw);
  if (!parsed.success)
    return {
      problems: parsed.error.issues.map((i) => {
        const what =
          i.code === 'unrecognized_keys'
            ? `unknown key ${i.keys.map((k) => `"${k}"`).join(', ')}`
            : i.message;
        return `${keyOf(i.path)}: ${what}`;
      }),
    };
  const problems: string[] = [];
  const targets: LandingTarget[] = parsed.data.targets.map((t, i) => {
    const { gitCommandTimeout, checkoutPath, ...rest } = t;
    const target: LandingTarget = {
      ...rest,
      checkoutPath: checkoutPath ?? join(repoDir, 'land', t.name),
      gitCommandTimeoutMs: gitCommandTimeout,
    };
    if (t.authHeaderEnv) {
      const value = env[t.authHeaderEnv];
      if (!value) problems.push(`landing.targets[${i}].authHeaderEnv: ${t.authHeaderEnv} is not set`);
      else if (/[\r\n]/.test(value))
        problems.push(`landing.targets[${i}].authHeaderEnv: ${t.authHeaderEnv} holds a line break`);
      else target.authHeader = value;
    }
    return target;
  });
  targets.forEach((t, i) => {
    const first = targets.findIndex((o) => o.name === t.name);
    if (first < i)
      problems.push(`landing.targets[${i}].name: "${t.name}" is already the name of targets[${first}]`);
    const sharing = targets.findIndex((o) => o.checkoutPath === t.checkoutPath);
    if (sharing < i) {
      const o = targets[sharing]!;
      if (o.remoteUrl !== t.remoteUrl || o.targetBranch !== t.targetBranch)
        problems.push(
          `landing.targets[${i}].checkoutPath: shared with targets[${sharing}] but with another remoteUrl or targetBranch`,
        );
    }
  });
  return problems.length > 0 ? { problems } : { config: { targets } };
}
