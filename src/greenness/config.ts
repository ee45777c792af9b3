/**
 * The `greenness` block of the TREADLE_CONFIG file: which (repo, ref) pairs are queues whose
 * commits are recorded green or not, how each is judged, and where hooks go. Validated at
 * start-up: an unknown key, a bad glob, a bad duration or a hook without a secret is a
 * ConfigError naming the key (exit 78). Without the block every branch (`refs/heads/**`: globs
 * are picomatch's, so `*` stops at `/` and `**` does not) of every served repo is a queue.
 */
import picomatch from 'picomatch';
import { z } from 'zod';
import { parseDurationMs } from '../config-values.ts';

export const DEFAULT_DEADLINE_MS = 6 * 3_600_000;

export interface QueueRule {
  /** A repo DID, `<ownerDid>/<name>`, or `*`. */
  repo: string;
  /** A glob over fully qualified refs (`main` means `refs/heads/main`). */
  ref: string;
  exclude: boolean;
  requiredWorkflows?: string[];
  pipelineDeadlineMs: number;
  promote?: { target: string };
}

export interface HookSink {
  url: string;
  secret: string;
  /** Globs over event types, e.g. `greenness.*`. */
  events: string[];
}

export interface GreennessConfig {
  queues: QueueRule[];
  hooks: HookSink[];
}

/** The judgement of a queue, for a (repo, ref) that is one. */
export interface QueueSettings {
  requiredWorkflows?: string[];
  pipelineDeadlineMs: number;
  promote?: { target: string };
}

const DEFAULT: GreennessConfig = {
  queues: [{ repo: '*', ref: 'refs/heads/**', exclude: false, pipelineDeadlineMs: DEFAULT_DEADLINE_MS }],
  hooks: [],
};

const GLOB = { dot: true, nonegate: true, noextglob: true, strictBrackets: true } as const;
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

const fullRef = (ref: string) => (ref.startsWith('refs/') ? ref : `refs/heads/${ref}`);

const glob = z
  .string()
  .min(1)
  .refine(
    (g) => {
      try {
        picomatch.makeRe(g, GLOB);
        return !/(^|[^\\])(\\\\)*\\$/.test(g);
      } catch {
        return false;
      }
    },
    { message: 'not a valid glob' },
  );

const duration = z.union([z.string(), z.number()]).transform((v, ctx) => {
  const ms = parseDurationMs(v);
  if (ms === undefined || ms <= 0) {
    ctx.addIssue({ code: 'custom', message: 'not a duration such as 6h or 90m' });
    return z.NEVER;
  }
  return ms;
});

const queueSchema = z.strictObject({
  repo: z
    .string()
    .regex(/^(\*|did:[a-z]+:[A-Za-z0-9._:%-]+(\/[^/\s]+)?)$/, 'a repo DID, <ownerDid>/<name>, or "*"')
    .default('*'),
  ref: glob.default('refs/heads/**'),
  exclude: z.boolean().default(false),
  requiredWorkflows: z.array(z.string().min(1).max(256)).min(1).optional(),
  pipelineDeadline: duration.optional(),
  promote: z.strictObject({ target: z.string().regex(NAME, 'a landing target name') }).optional(),
});

const hookSchema = z
  .strictObject({
    url: z.url({ protocol: /^https?$/ }),
    secret: z.string().min(1).optional(),
    secretEnv: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name')
      .optional(),
    events: z.array(glob).min(1).default(['greenness.*']),
  })
  .refine((h) => (h.secret === undefined) !== (h.secretEnv === undefined), {
    message: 'give exactly one of secret or secretEnv',
  });

const schema = z.strictObject({
  queues: z.array(queueSchema).optional(),
  hooks: z.array(hookSchema).default([]),
});

/**
 * Parses the block (undefined: the default). Returns the config, or one problem per bad key,
 * each naming it (`greenness.queues[0].ref: …`).
 */
export function parseGreenness(
  raw: unknown,
  env: Record<string, string | undefined>,
): { config: GreennessConfig } | { problems: string[] } {
  if (raw === undefined || raw === null) return { config: DEFAULT };
  const parsed = schema.safeParse(raw);
  if (!parsed.success)
    return {
      problems: parsed.error.issues.map((i) => {
        const path = ['greenness', ...i.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`))]
          .join('')
          .replace(/\.\[/g, '[');
        const unknown =
          i.code === 'unrecognized_keys'
            ? `unknown key ${i.keys.map((k) => `"${k}"`).join(', ')}`
            : i.message;
        return `${path}: ${unknown}`;
      }),
    };
  const problems: string[] = [];
  const hooks: HookSink[] = parsed.data.hooks.map((h, i) => {
    const secret = h.secret ?? env[h.secretEnv!];
    if (!secret) problems.push(`greenness.hooks[${i}].secretEnv: ${h.secretEnv} is not set`);
    return { url: h.url, secret: secret ?? '', events: h.events };
  });
  if (problems.length > 0) return { problems };
  const queues = parsed.data.queues?.map((q) => ({
    repo: q.repo,
    ref: fullRef(q.ref),
    exclude: q.exclude,
    ...(q.requiredWorkflows ? { requiredWorkflows: q.requiredWorkflows } : {}),
    pipelineDeadlineMs: q.pipelineDeadline ?? DEFAULT_DEADLINE_MS,
    ...(q.promote ? { promote: q.promote } : {}),
  }));
  return { config: { queues: queues ?? DEFAULT.queues, hooks } };
}

/**
 * The queue a push to (repo, ref) belongs to: the first rule that matches decides, and an
 * `exclude` rule means none. `repoIds` are every id the repo is known by (its DID and
 * `<ownerDid>/<name>`), so a repo that got a DID later still matches rules written either way.
 */
export function queueFor(
  config: GreennessConfig,
  repoIds: readonly string[],
  ref: string,
): QueueSettings | undefined {
  for (const rule of config.queues) {
    if (rule.repo !== '*' && !repoIds.includes(rule.repo)) continue;
    if (!picomatch.isMatch(ref, rule.ref, GLOB)) continue;
    if (rule.exclude) return undefined;
    return {
      pipelineDeadlineMs: rule.pipelineDeadlineMs,
      ...(rule.requiredWorkflows ? { requiredWorkflows: rule.requiredWorkflows } : {}),
      ...(rule.promote ? { promote: rule.promote } : {}),
    };
  }
  return undefined;
}
