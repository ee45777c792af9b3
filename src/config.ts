/**
 * Configuration: TREADLE_* environment variables (stock SPINDLE_SERVER_* names accepted as
 * aliases) over an optional YAML file named by TREADLE_CONFIG, over defaults. Parsed once, at
 * start, into a typed object; a bad or missing value fails with a message naming the variable.
 */
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { type ZodType, z } from 'zod';
import {
  boolValue,
  didValue,
  durationValue,
  enginesValue,
  hostnameValue,
  intValue,
  listenValue,
  numberValue,
  urlValue,
} from './config-values.ts';
import { ConfigError } from './errors.ts';
import { type GreennessConfig, parseGreenness } from './greenness/config.ts';
import { type LandingConfig, parseLanding } from './landing/config.ts';
import { LOG_LEVELS } from './logger.ts';

export interface Setting {
  /** Dotted key in the YAML file, e.g. `queue.maxAttempts`. */
  key: string;
  /** Dotted path in the parsed config when it differs from `key` (durations are stored in ms). */
  path?: string;
  env: string;
  aliases?: string[];
  /** What a valid value looks like, for error messages and the README. */
  expect: string;
  default?: string;
  /** Required by `serve` (administrative commands only need the database). */
  requiredToServe?: boolean;
  doc: string;
  schema: ZodType;
}

export const CONFIG_FILE_ENV = 'TREADLE_CONFIG';
const GREENNESS_KEY = 'greenness';
const LANDING_KEY = 'landing';

export const SETTINGS: readonly Setting[] = [
  {
    key: 'hostname',
    env: 'TREADLE_HOSTNAME',
    aliases: ['SPINDLE_SERVER_HOSTNAME'],
    expect: 'a host name with optional port, e.g. spindle.example.com or localhost:6555',
    requiredToServe: true,
    doc: "The spindle's identity: the string users put in their repo's `spindle` field. Its service DID is `did:web:` + this.",
    schema: hostnameValue,
  },
  {
    key: 'owner',
    env: 'TREADLE_OWNER',
    aliases: ['SPINDLE_SERVER_OWNER'],
    expect: 'a DID, e.g. did:plc:abcd1234',
    requiredToServe: true,
    doc: 'DID of the account that owns this spindle and may add members.',
    schema: didValue,
  },
  {
    key: 'listen',
    env: 'TREADLE_LISTEN',
    aliases: ['SPINDLE_SERVER_LISTEN_ADDR'],
    expect: 'host:port, [ipv6]:port or :port',
    default: '0.0.0.0:6555',
    doc: 'Address the HTTP server listens on (plain HTTP; put TLS in a reverse proxy). Port 0 picks a free port.',
    schema: listenValue,
  },
  {
    key: 'db',
    env: 'TREADLE_DB',
    aliases: ['SPINDLE_SERVER_DB_PATH'],
    expect: 'a file path',
    default: './treadle.db',
    doc: 'The SQLite file holding all state: queue, events, builds. Keep it on a persistent volume.',
    schema: z.string().trim().min(1),
  },
  {
    key: 'jetstreamUrl',
    env: 'TREADLE_JETSTREAM_URL',
    aliases: ['SPINDLE_SERVER_JETSTREAM_ENDPOINT'],
    expect: 'a ws:// or wss:// URL',
    default: 'wss://jetstream1.us-west.bsky.network/subscribe',
    doc: 'Jetstream endpoint used to discover members, repos and collaborators.',
    schema: urlValue(['ws:', 'wss:']),
  },
  {
    key: 'plcUrl',
    env: 'TREADLE_PLC_URL',
    aliases: ['SPINDLE_SERVER_PLC_URL'],
    expect: 'an http:// or https:// URL',
    default: 'https://plc.directory',
    doc: 'PLC directory used to resolve did:plc identities.',
    schema: urlValue(['http:', 'https:']),
  },
  {
    key: 'dev',
    env: 'TREADLE_DEV',
    aliases: ['SPINDLE_SERVER_DEV'],
    expect: 'true or false (1/0, yes/no)',
    default: 'false',
    doc: 'Development mode: talk to knots over ws:// and http:// instead of wss:// and https://.',
    schema: boolValue,
  },
  {
    key: 'engines',
    env: 'TREADLE_ENGINES',
    expect: 'comma-separated engine=runner pairs, e.g. nixery=stub (YAML: a mapping)',
    default: '',
    doc: 'Which runner takes a workflow whose `engine` names no runner, e.g. `nixery=stub`. A workflow whose engine matches neither a runner nor this map fails with `unknown engine "<engine>"`, as on a stock spindle.',
    schema: enginesValue,
  },
  {
    key: 'pollInterval',
    path: 'pollIntervalMs',
    env: 'TREADLE_POLL_INTERVAL',
    expect: 'a duration such as 2s or 500ms',
    default: '1s',
    doc: 'How often a build whose runner does not push progress is polled for its status.',
    schema: durationValue,
  },
  {
    key: 'pingInterval',
    path: 'pingIntervalMs',
    env: 'TREADLE_PING_INTERVAL',
    expect: 'a duration such as 30s',
    default: '30s',
    doc: 'Silence after which /events and /logs send a WebSocket ping (keeps proxies from closing idle connections).',
    schema: durationValue,
  },
  {
    key: 'repoDir',
    env: 'TREADLE_REPO_DIR',
    aliases: ['SPINDLE_SERVER_REPO_DIR'],
    expect: 'a directory path',
    doc: 'Where the partial git caches of served repos live (only `.tangled/workflows` is ever read). Default: `repos/` beside the database.',
    schema: z.string().trim().min(1),
  },
  {
    key: 'pushHold',
    path: 'pushHoldMs',
    env: 'TREADLE_PUSH_HOLD',
    expect: 'a duration such as 2s',
    default: '2s',
    doc: "How long a push pipeline treadle builds from a knot's ref update waits for the same push's pipeline from a knot that sends both, so the run keeps the knot's record key (2026 spec §4.5). Knots seen sending no pipelines are not waited for.",
    schema: durationValue,
  },
  {
    key: 'secretsKey',
    env: 'TREADLE_SECRETS_KEY',
    expect: 'the base64 of 32 bytes (`openssl rand -base64 32`); during a key rotation, `new,old`',
    doc: 'Seals repository secrets at rest (AES-256-GCM). Unset: a key file `<TREADLE_DB>.secrets-key` (mode 0600) is created and used. Never logged.',
    schema: z.string().trim().min(1),
  },
  {
    key: 'adminToken',
    env: 'TREADLE_ADMIN_TOKEN',
    expect: 'a random string of at least 32 characters (`openssl rand -hex 32`)',
    doc: 'Authorises the administrative HTTP API (landing requests) as `Authorization: Bearer <token>`. Unset: only service auth from a repo owner or collaborator is accepted. Never logged.',
    schema: z.string().trim().min(32),
  },
  {
    key: 'metricsListen',
    env: 'TREADLE_METRICS_LISTEN',
    expect: 'host:port, [ipv6]:port or :port',
    doc: "A second, private address that serves only `GET /metrics`, without a token (for a scraper on a private network, such as Fly's). Set, `/metrics` is no longer served on `TREADLE_LISTEN` unless `TREADLE_METRICS_TOKEN` is set too.",
    schema: listenValue,
  },
  {
    key: 'metricsToken',
    env: 'TREADLE_METRICS_TOKEN',
    expect: 'a random string of at least 32 characters (`openssl rand -hex 32`)',
    doc: 'When set, `GET /metrics` requires `Authorization: Bearer <token>`. Unset: `/metrics` is open (keep it off the public internet, or set this). Never logged.',
    schema: z.string().trim().min(32),
  },
  {
    key: 'buildkite.token',
    env: 'TREADLE_BUILDKITE_TOKEN',
    expect: 'a Buildkite API access token (scopes read_builds, write_builds, read_build_logs)',
    doc: 'Enables the `buildkite` runner. Never logged.',
    schema: z.string().trim().min(1),
  },
  {
    key: 'buildkite.org',
    env: 'TREADLE_BUILDKITE_ORG',
    expect: 'an organisation slug',
    doc: 'The Buildkite organisation of workflows whose `treadle.buildkite` block names none.',
    schema: z
      .string()
      .trim()
      .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/),
  },
  {
    key: 'buildkite.apiUrl',
    env: 'TREADLE_BUILDKITE_API_URL',
    expect: 'an http(s) URL',
    default: 'https://api.buildkite.com/v2',
    doc: 'Base URL of the Buildkite REST API (a proxy, or a fake in tests).',
    schema: urlValue(['http:', 'https:']),
  },
  {
    key: 'buildkite.webhookSecret',
    env: 'TREADLE_BUILDKITE_WEBHOOK_SECRET',
    expect: "the Buildkite webhook's token",
    doc: 'The token of the Buildkite webhook notification service pointed at `/webhooks/buildkite`. Without it the route answers 503 and builds are tracked by polling alone.',
    schema: z.string().min(1),
  },
  {
    key: 'buildkite.webhookMode',
    env: 'TREADLE_BUILDKITE_WEBHOOK_MODE',
    expect: 'token or signature',
    default: 'token',
    doc: 'How webhooks prove themselves: `token` (the `X-Buildkite-Token` header) or `signature` (`X-Buildkite-Signature`, HMAC-SHA256, ±5 min replay window), as set on the Buildkite webhook.',
    schema: z.enum(['token', 'signature']),
  },
  {
    key: 'buildkite.rateLimit',
    path: 'buildkite.requestsPerMinute',
    env: 'TREADLE_BUILDKITE_RATE_LIMIT',
    expect: 'requests per minute (a positive integer)',
    default: '200',
    doc: "treadle's own budget of Buildkite API requests per minute; calls beyond it wait their turn instead of being throttled by Buildkite.",
    schema: intValue(1, 100_000),
  },
  {
    key: 'buildkite.pollInterval',
    path: 'buildkite.pollIntervalMs',
    env: 'TREADLE_BUILDKITE_POLL_INTERVAL',
    expect: 'a duration such as 30s',
    default: '30s',
    doc: 'How often a Buildkite build is polled when no webhook reports on it (shorter in its first minute, longer while the request budget is under pressure). A lost webhook delays a status by at most this.',
    schema: durationValue,
  },
  {
    key: 'logLevel',
    env: 'TREADLE_LOG_LEVEL',
    expect: LOG_LEVELS.join(', '),
    default: 'info',
    doc: 'Log level of the JSON logs written to standard output.',
    schema: z.string().trim().toLowerCase().pipe(z.enum(LOG_LEVELS)),
  },
  {
    key: 'shutdownTimeout',
    path: 'shutdownTimeoutMs',
    env: 'TREADLE_SHUTDOWN_TIMEOUT',
    expect: 'a duration such as 20s or 1500ms (a bare number is milliseconds)',
    default: '20s',
    doc: 'On SIGTERM/SIGINT, how long in-flight work may take to finish before treadle exits anyway.',
    schema: durationValue,
  },
  {
    key: 'retention.events',
    path: 'retention.eventsMs',
    env: 'TREADLE_RETAIN_EVENTS',
    expect: 'a duration such as 90d (0 keeps forever)',
    default: '90d',
    doc: 'How long `/events` rows are kept. An appview that reconnects with a cursor older than this gets the events still kept, from the oldest; the pipelines and statuses before it are no longer sent.',
    schema: durationValue,
  },
  {
    key: 'retention.logs',
    path: 'retention.logsMs',
    env: 'TREADLE_RETAIN_LOGS',
    expect: 'a duration such as 30d (0 keeps forever)',
    default: '30d',
    doc: "How long a finished workflow's log lines are kept after its logs were complete; `/logs` then sends none for it.",
    schema: durationValue,
  },
  {
    key: 'retention.runs',
    path: 'retention.runsMs',
    env: 'TREADLE_RETAIN_RUNS',
    expect: 'a duration such as 365d (0 keeps forever)',
    default: '365d',
    doc: 'How long finished pipelines (and their workflows and lines) stay in the `sh.tangled.ci.*` API. Greenness facts are kept regardless.',
    schema: durationValue,
  },
  {
    key: 'retention.interval',
    path: 'retention.intervalMs',
    env: 'TREADLE_RETENTION_INTERVAL',
    expect: 'a duration such as 10m',
    default: '10m',
    doc: 'How often the prune pass runs (in batches of 500 rows, each its own short transaction).',
    schema: durationValue,
  },
  {
    key: 'streamMaxBackoff',
    path: 'streamMaxBackoffMs',
    env: 'TREADLE_STREAM_MAX_BACKOFF',
    expect: 'a duration such as 60s (a bare number is milliseconds)',
    default: '60s',
    doc: 'The longest wait between attempts to reconnect to a knot or to Jetstream (waits start at 1 s and double). `/readyz` reports Jetstream not ready once it has been down this long plus 10 s.',
    schema: durationValue,
  },
  {
    key: 'queue.concurrency',
    env: 'TREADLE_QUEUE_CONCURRENCY',
    expect: 'an integer from 1 to 1024',
    default: '16',
    doc: 'Messages each queue consumer handles at once (always at most one per partition).',
    schema: intValue(1, 1024),
  },
  {
    key: 'queue.maxAttempts',
    env: 'TREADLE_QUEUE_MAX_ATTEMPTS',
    expect: 'an integer from 1 to 1000',
    default: '3',
    doc: 'Deliveries of a failing message before it is dead-lettered to `<topic>_dlq`.',
    schema: intValue(1, 1000),
  },
  {
    key: 'queue.initialBackoff',
    path: 'queue.initialBackoffMs',
    env: 'TREADLE_QUEUE_INITIAL_BACKOFF',
    expect: 'a duration',
    default: '1s',
    doc: 'Delay before the first retry of a failed message.',
    schema: durationValue,
  },
  {
    key: 'queue.backoffMultiplier',
    env: 'TREADLE_QUEUE_BACKOFF_MULTIPLIER',
    expect: 'a number ≥ 1',
    default: '2',
    doc: 'Factor by which each further retry delay grows.',
    schema: numberValue(1),
  },
  {
    key: 'queue.maxBackoff',
    path: 'queue.maxBackoffMs',
    env: 'TREADLE_QUEUE_MAX_BACKOFF',
    expect: 'a duration',
    default: '30s',
    doc: 'Upper bound of a retry delay.',
    schema: durationValue,
  },
  {
    key: 'queue.visibilityTimeout',
    path: 'queue.visibilityTimeoutMs',
    env: 'TREADLE_QUEUE_VISIBILITY_TIMEOUT',
    expect: 'a duration',
    default: '60s',
    doc: 'How long a delivery may run before it is presumed lost and delivered again (counted as an attempt).',
    schema: durationValue,
  },
  {
    key: 'queue.retention',
    path: 'queue.dedupRetentionMs',
    env: 'TREADLE_QUEUE_RETENTION',
    expect: 'a duration',
    default: '7d',
    doc: 'How long consumed messages are kept so that a repeated publish of the same id is still ignored.',
    schema: durationValue,
  },
  {
    key: 'queue.pollInterval',
    path: 'queue.pollIntervalMs',
    env: 'TREADLE_QUEUE_POLL_INTERVAL',
    expect: 'a duration',
    default: '1s',
    doc: 'How often the queue looks for work written by another process (for example `treadle queue dlq replay`).',
    schema: durationValue,
  },
];

export interface QueueSettings {
  concurrency: number;
  maxAttempts: number;
  initialBackoffMs: number;
  backoffMultiplier: number;
  maxBackoffMs: number;
  visibilityTimeoutMs: number;
  dedupRetentionMs: number;
  pollIntervalMs: number;
}

export interface BuildkiteSettings {
  /** The runner is configured only with a token. */
  token?: string;
  org?: string;
  apiUrl: string;
  webhookSecret?: string;
  webhookMode: 'token' | 'signature';
  requestsPerMinute: number;
  pollIntervalMs: number;
}

export interface Config {
  hostname: string;
  owner: string;
  listen: { host: string; port: number };
  db: string;
  jetstreamUrl: string;
  plcUrl: string;
  dev: boolean;
  /** Engine name → runner name. */
  engines: Record<string, string>;
  pollIntervalMs: number;
  pingIntervalMs: number;
  /** Default: `repos/` beside the database. */
  repoDir?: string;
  pushHoldMs: number;
  buildkite: BuildkiteSettings;
  /** TREADLE_ADMIN_TOKEN: the bearer token of the administrative HTTP API. */
  adminToken?: string;
  /** TREADLE_METRICS_LISTEN: a private listener serving only /metrics. */
  metricsListen?: { host: string; port: number };
  /** TREADLE_METRICS_TOKEN: when set, the bearer token `/metrics` requires. */
  metricsToken?: string;
  /** TREADLE_SECRETS_KEY; unset: a key file beside the database. */
  secretsKey?: string;
  logLevel: (typeof LOG_LEVELS)[number];
  shutdownTimeoutMs: number;
  /** TREADLE_RETAIN_*: how long events, log lines and finished runs are kept (0: forever). */
  retention: { eventsMs: number; logsMs: number; runsMs: number; intervalMs: number };
  /** TREADLE_STREAM_MAX_BACKOFF: the longest reconnect wait of knot and Jetstream streams. */
  streamMaxBackoffMs: number;
  queue: QueueSettings;
  /** Which branches are greenness queues, and where hooks go (the YAML file's `greenness` block). */
  greenness: GreennessConfig;
  /** The targets landing may push to (the YAML file's `landing` block). */
  landing: LandingConfig;
  /** The YAML file the values came from, if any. */
  configFile?: string;
}

/** What administrative commands (queue, doctor) get: everything but the serve-only identity. */
export type AdminConfig = Omit<Config, 'hostname' | 'owner'> & Partial<Pick<Config, 'hostname' | 'owner'>>;

export interface LoadedConfig<C> {
  config: C;
  /** Non-fatal observations, e.g. a TREADLE_* and an alias set to different values. */
  warnings: string[];
}

type Env = Record<string, string | undefined>;

/** The process environment: config is the one module that reads it (and the git environment builder). */
export function processEnvironment(): NodeJS.ProcessEnv {
  return process.env;
}

export function loadConfig(env: Env): LoadedConfig<Config> {
  return load(env, true) as LoadedConfig<Config>;
}

export function loadAdminConfig(env: Env): LoadedConfig<AdminConfig> {
  return load(env, false);
}

function load(env: Env, serving: boolean): LoadedConfig<AdminConfig> {
  const warnings: string[] = [];
  const file = env[CONFIG_FILE_ENV]?.trim() || undefined;
  const fromFile = file ? readConfigFile(file) : new Map<string, unknown>();
  const errors: string[] = [];
  const values: Record<string, unknown> = {};

  for (const setting of SETTINGS) {
    const source = pickSource(setting, env, fromFile, file, warnings);
    if (source === undefined) {
      if (setting.requiredToServe && serving) {
        errors.push(`${setting.env} is required: ${missingHint(setting)}`);
      }
      if (setting.default === undefined) continue;
    }
    const raw = source?.value ?? setting.default;
    const parsed = setting.schema.safeParse(raw);
    if (!parsed.success) {
      const where = source?.label ?? `default of ${setting.env}`;
      errors.push(`${where}: expected ${setting.expect}, got ${JSON.stringify(raw)}`);
      continue;
    }
    setPath(values, setting.path ?? setting.key, parsed.data);
  }
  // The greenness block is structured (lists of queues and hooks): it has its own parser.
  const greenness = parseGreenness(fromFile.get(GREENNESS_KEY), env);
  if ('problems' in greenness)
    errors.push(...greenness.problems.map((p) => `${CONFIG_FILE_ENV} file ${file}: ${p}`));
  else values.greenness = greenness.config;
  const repoDir = (values.repoDir as string | undefined) ?? join(dirname(String(values.db ?? '.')), 'repos');
  const landing = parseLanding(fromFile.get(LANDING_KEY), env, resolve(repoDir));
  if ('problems' in landing)
    errors.push(...landing.problems.map((p) => `${CONFIG_FILE_ENV} file ${file}: ${p}`));
  else {
    values.landing = landing.config;
    if ('config' in greenness) {
      const names = new Set(landing.config.targets.map((t) => t.name));
      greenness.config.queues.forEach((q, i) => {
        if (q.promote && !names.has(q.promote.target))
          errors.push(
            `${CONFIG_FILE_ENV} file ${file}: greenness.queues[${i}].promote.target: no landing target is named "${q.promote.target}"`,
          );
        const target = landing.config.targets.find((t) => t.name === q.promote?.target);
        if (target?.checkStaleness)
          warnings.push(
            `${CONFIG_FILE_ENV} file ${file}: greenness.queues[${i}] promotes to landing target "${target.name}", which checks staleness: a commit that turns green after its branch has moved on is refused as stale and not promoted; set checkStaleness: false on "${target.name}" to promote every new last green commit`,
          );
      });
    }
  }
  for (const key of fromFile.keys()) {
    if (key === GREENNESS_KEY || key === LANDING_KEY) continue;
    if (!SETTINGS.some((s) => s.key === key))
      errors.push(`${CONFIG_FILE_ENV} file ${file}: unknown key "${key}"`);
  }
  if (errors.length > 0) {
    throw new ConfigError(`invalid configuration:\n  ${errors.join('\n  ')}`, { problems: errors });
  }
  if (file) values.configFile = file;
  warnings.push(...combinationWarnings(values));
  return { config: values as unknown as AdminConfig, warnings };
}

interface Source {
  value: unknown;
  label: string;
}

/** Settings that are each valid but do nothing, or less than asked, together. */
function combinationWarnings(values: Record<string, unknown>): string[] {
  const bk = (values.buildkite ?? {}) as Partial<BuildkiteSettings>;
  const out: string[] = [];
  if (!bk.token && (bk.webhookSecret || bk.org))
    out.push(
      'TREADLE_BUILDKITE_WEBHOOK_SECRET or TREADLE_BUILDKITE_ORG is set without TREADLE_BUILDKITE_TOKEN: the buildkite runner stays off',
    );
  return out;
}

function pickSource(
  setting: Setting,
  env: Env,
  fromFile: Map<string, unknown>,
  file: string | undefined,
  warnings: string[],
): Source | undefined {
  const primary = env[setting.env];
  for (const alias of setting.aliases ?? []) {
    const aliasValue = env[alias];
    if (aliasValue === undefined) continue;
    if (primary !== undefined) {
      if (primary !== aliasValue) warnings.push(`${setting.env} and ${alias} differ; using ${setting.env}`);
      continue;
    }
    return { value: aliasValue, label: alias };
  }
  if (primary !== undefined) return { value: primary, label: setting.env };
  if (fromFile.has(setting.key)) {
    return {
      value: fromFile.get(setting.key),
      label: `${CONFIG_FILE_ENV} file ${file}: key "${setting.key}"`,
    };
  }
  return undefined;
}

function missingHint(setting: Setting): string {
  const alts = [...(setting.aliases ?? []), `"${setting.key}" in the ${CONFIG_FILE_ENV} file`];
  return `${setting.expect} (or set ${alts.join(', or ')})`;
}

/** Reads the YAML file into dotted keys: `queue: {maxAttempts: 5}` → `queue.maxAttempts`. */
function readConfigFile(file: string): Map<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`${CONFIG_FILE_ENV} file ${file} cannot be read: ${(err as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new ConfigError(`${CONFIG_FILE_ENV} file ${file} is not valid YAML: ${(err as Error).message}`);
  }
  const out = new Map<string, unknown>();
  if (doc === null || doc === undefined) return out;
  if (!isPlainObject(doc))
    throw new ConfigError(`${CONFIG_FILE_ENV} file ${file} must be a mapping of settings`);
  flatten(doc, '', out);
  return out;
}

function flatten(obj: Record<string, unknown>, prefix: string, out: Map<string, unknown>): void {
  for (const [k, v] of Object.entries(obj)) {
    const key = prefix + k;
    if (isPlainObject(v) && SETTINGS.some((s) => s.key.startsWith(`${key}.`))) flatten(v, `${key}.`, out);
    else out.set(key, v);
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function setPath(target: Record<string, unknown>, dotted: string, value: unknown): void {
  const parts = dotted.split('.');
  let node = target;
  for (const part of parts.slice(0, -1)) {
    node[part] ??= {};
    node = node[part] as Record<string, unknown>;
  }
  node[parts.at(-1)!] = value;
}
