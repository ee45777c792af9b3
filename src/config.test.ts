import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from '../test/support/temp.ts';
import { loadAdminConfig, loadConfig } from './config.ts';
import { parseDurationMs, parseListen } from './config-values.ts';
import { ConfigError } from './errors.ts';

const REQUIRED = { TREADLE_HOSTNAME: 'spindle.example.com', TREADLE_OWNER: 'did:plc:owner123' };
let cleanup = () => {};
afterEach(() => cleanup());

function configFile(yaml: string): string {
  const t = tempDir();
  cleanup = t.cleanup;
  const file = join(t.dir, 'treadle.yaml');
  writeFileSync(file, yaml);
  return file;
}

function failure(env: Record<string, string>): string {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('applies the documented defaults', () => {
    const { config } = loadConfig(REQUIRED);
    expect(config).toEqual({
      hostname: 'spindle.example.com',
      owner: 'did:plc:owner123',
      listen: { host: '0.0.0.0', port: 6555 },
      db: './treadle.db',
      jetstreamUrl: 'wss://jetstream1.us-west.bsky.network/subscribe',
      plcUrl: 'https://plc.directory',
      dev: false,
      engines: {},
      pollIntervalMs: 1000,
      pingIntervalMs: 30_000,
      pushHoldMs: 2000,
      buildkite: {
        apiUrl: 'https://api.buildkite.com/v2',
        webhookMode: 'token',
        requestsPerMinute: 200,
        pollIntervalMs: 30_000,
      },
      logLevel: 'info',
      shutdownTimeoutMs: 20_000,
      streamMaxBackoffMs: 60_000,
      retention: {
        eventsMs: 7_776_000_000,
        logsMs: 2_592_000_000,
        runsMs: 31_536_000_000,
        intervalMs: 600_000,
      },
      queue: {
        concurrency: 16,
        maxAttempts: 3,
        initialBackoffMs: 1000,
        backoffMultiplier: 2,
        maxBackoffMs: 30_000,
        visibilityTimeoutMs: 60_000,
        dedupRetentionMs: 604_800_000,
        pollIntervalMs: 1000,
      },
      greenness: {
        queues: [{ repo: '*', ref: 'refs/heads/**', exclude: false, pipelineDeadlineMs: 21_600_000 }],
        hooks: [],
      },
      landing: { targets: [] },
    });
  });

  it('reads the greenness block from the YAML file and refuses a bad one by its key', () => {
    const file = configFile(
      'greenness:\n  queues:\n    - repo: "*"\n      ref: main\n      pipelineDeadline: 2h\n',
    );
    expect(loadConfig({ ...REQUIRED, TREADLE_CONFIG: file }).config.greenness.queues).toEqual([
      { repo: '*', ref: 'refs/heads/main', exclude: false, pipelineDeadlineMs: 7_200_000 },
    ]);
    const bad = configFile('greenness:\n  queues:\n    - ref: "release-[0-9"\n      colour: green\n');
    const message = failure({ ...REQUIRED, TREADLE_CONFIG: bad });
    expect(message).toContain('greenness.queues[0]: unknown key "colour"');
  });

  it('reads the landing block, checkouts under the repo dir by default, and checks promote targets exist', () => {
    const target =
      '    - name: verified\n      repo: did:plc:r\n      remoteUrl: /srv/r.git\n      targetBranch: verified/main\n';
    const file = configFile(
      `landing:\n  targets:\n${target}greenness:\n  queues:\n    - ref: main\n      promote: { target: verified }\n`,
    );
    const { config, warnings } = loadConfig({
      ...REQUIRED,
      TREADLE_DB: '/data/treadle.db',
      TREADLE_CONFIG: file,
    });
    // A promotion target that checks staleness refuses a green commit its branch has moved past.
    expect(warnings.join('\n')).toMatch(
      /greenness.queues\[0\] promotes to landing target "verified", which checks staleness.*set checkStaleness: false on "verified"/,
    );
    const lenient = configFile(
      `landing:\n  targets:\n${target}      checkStaleness: false\ngreenness:\n  queues:\n    - ref: main\n      promote: { target: verified }\n`,
    );
    expect(loadConfig({ ...REQUIRED, TREADLE_CONFIG: lenient }).warnings).toEqual([]);
    expect(config.landing.targets[0]).toMatchObject({
      name: 'verified',
      checkoutPath: '/data/repos/land/verified',
    });
    expect(config.greenness.queues[0]!.promote).toEqual({ target: 'verified' });
    const dangling = configFile(
      'greenness:\n  queues:\n    - ref: main\n      promote: { target: nowhere }\n',
    );
    expect(failure({ ...REQUIRED, TREADLE_CONFIG: dangling })).toContain(
      'greenness.queues[0].promote.target: no landing target is named "nowhere"',
    );
    const relative = configFile(`landing:\n  targets:\n${target}      checkoutPath: land/x\n`);
    expect(failure({ ...REQUIRED, TREADLE_CONFIG: relative })).toContain(
      'landing.targets[0].checkoutPath: an absolute path',
    );
  });

  it('reads the engine map from the environment and from YAML, and rejects a malformed pair', () => {
    expect(
      loadConfig({ ...REQUIRED, TREADLE_ENGINES: 'nixery=stub, docker = buildkite' }).config.engines,
    ).toEqual({
      nixery: 'stub',
      docker: 'buildkite',
    });
    expect(() => loadConfig({ ...REQUIRED, TREADLE_ENGINES: 'nixery' })).toThrow(/TREADLE_ENGINES: expected/);
    expect(() => loadConfig({ ...REQUIRED, TREADLE_ENGINES: 'a b=stub' })).toThrow(/TREADLE_ENGINES/);
  });

  it('names each missing required variable', () => {
    const message = failure({});
    expect(message).toMatch(/TREADLE_HOSTNAME is required/);
    expect(message).toMatch(/TREADLE_OWNER is required.*SPINDLE_SERVER_OWNER/);
  });

  it('names the variable holding a bad value', () => {
    expect(failure({ ...REQUIRED, TREADLE_OWNER: 'alice' })).toMatch(
      /TREADLE_OWNER: expected a DID.*"alice"/,
    );
    expect(failure({ ...REQUIRED, TREADLE_LISTEN: 'nope' })).toMatch(/TREADLE_LISTEN: expected host:port/);
    expect(failure({ ...REQUIRED, TREADLE_DEV: 'maybe' })).toMatch(/TREADLE_DEV: expected true or false/);
    expect(failure({ ...REQUIRED, TREADLE_PLC_URL: 'ftp://x' })).toMatch(/TREADLE_PLC_URL/);
    expect(failure({ ...REQUIRED, TREADLE_QUEUE_MAX_ATTEMPTS: '0' })).toMatch(/TREADLE_QUEUE_MAX_ATTEMPTS/);
    expect(failure({ ...REQUIRED, TREADLE_SHUTDOWN_TIMEOUT: '5 minutes' })).toMatch(
      /TREADLE_SHUTDOWN_TIMEOUT/,
    );
    expect(failure({ ...REQUIRED, SPINDLE_SERVER_HOSTNAME: 'https://x/y', TREADLE_HOSTNAME: '' })).toMatch(
      /TREADLE_HOSTNAME/,
    );
  });

  it('accepts the stock spindle variable names as aliases', () => {
    const { config } = loadConfig({
      SPINDLE_SERVER_HOSTNAME: 'localhost:6555',
      SPINDLE_SERVER_OWNER: 'did:web:example.com',
      SPINDLE_SERVER_LISTEN_ADDR: ':7000',
      SPINDLE_SERVER_DB_PATH: '/data/spindle.db',
      SPINDLE_SERVER_JETSTREAM_ENDPOINT: 'ws://127.0.0.1:6008/subscribe',
      SPINDLE_SERVER_PLC_URL: 'http://127.0.0.1:2582',
      SPINDLE_SERVER_DEV: 'true',
    });
    expect(config).toMatchObject({
      hostname: 'localhost:6555',
      owner: 'did:web:example.com',
      listen: { host: '0.0.0.0', port: 7000 },
      db: '/data/spindle.db',
      jetstreamUrl: 'ws://127.0.0.1:6008/subscribe',
      plcUrl: 'http://127.0.0.1:2582',
      dev: true,
    });
  });

  it('prefers the TREADLE_ name over an alias and warns when they differ', () => {
    const { config, warnings } = loadConfig({ ...REQUIRED, SPINDLE_SERVER_HOSTNAME: 'old.example.com' });
    expect(config.hostname).toBe('spindle.example.com');
    expect(warnings).toEqual(['TREADLE_HOSTNAME and SPINDLE_SERVER_HOSTNAME differ; using TREADLE_HOSTNAME']);
  });

  it('reads structured settings from the TREADLE_CONFIG file, under the environment', () => {
    const file = configFile(`
hostname: from-file.example.com
owner: did:plc:fromfile
dev: true
queue:
  maxAttempts: 5
  visibilityTimeout: 15m
`);
    const { config } = loadConfig({ TREADLE_CONFIG: file, TREADLE_HOSTNAME: 'env.example.com' });
    expect(config.hostname).toBe('env.example.com');
    expect(config.owner).toBe('did:plc:fromfile');
    expect(config.dev).toBe(true);
    expect(config.queue.maxAttempts).toBe(5);
    expect(config.queue.visibilityTimeoutMs).toBe(900_000);
    expect(config.configFile).toBe(file);
  });

  it('rejects unknown keys and bad values in the file, naming the key', () => {
    const file = configFile('queue:\n  maxAttemps: 5\nowner: 12\n');
    const message = failure({ TREADLE_CONFIG: file, TREADLE_HOSTNAME: 'h' });
    expect(message).toMatch(/unknown key "queue.maxAttemps"/);
    expect(message).toMatch(/key "owner": expected a DID/);
  });

  it('reports a file that is not YAML or cannot be read', () => {
    expect(failure({ ...REQUIRED, TREADLE_CONFIG: configFile('a: [1, 2') })).toMatch(/is not valid YAML/);
    expect(failure({ ...REQUIRED, TREADLE_CONFIG: '/nonexistent/treadle.yaml' })).toMatch(/cannot be read/);
    expect(failure({ ...REQUIRED, TREADLE_CONFIG: configFile('- a\n- b\n') })).toMatch(/must be a mapping/);
  });

  it('lets administrative commands run without the serve-only identity', () => {
    expect(loadAdminConfig({ TREADLE_DB: '/tmp/x.db' }).config.db).toBe('/tmp/x.db');
  });
});

describe('value parsers', () => {
  it.each([
    ['1500', 1500],
    ['20s', 20_000],
    ['1.5s', 1500],
    ['1h30m', 5_400_000],
    ['7d', 604_800_000],
    ['250ms', 250],
  ])('reads the duration %s', (text, ms) => {
    expect(parseDurationMs(text)).toBe(ms);
  });

  it.each(['', 's', '5 s', '-1s', '5x', '1e3'])('rejects the duration %j', (text) => {
    expect(parseDurationMs(text)).toBeUndefined();
  });

  it('reads listen addresses as Go does', () => {
    expect(parseListen('127.0.0.1:0')).toEqual({ host: '127.0.0.1', port: 0 });
    expect(parseListen(':6555')).toEqual({ host: '0.0.0.0', port: 6555 });
    expect(parseListen('[::1]:80')).toEqual({ host: '::1', port: 80 });
    expect(parseListen('localhost:70000')).toBeUndefined();
    expect(parseListen('6555')).toBeUndefined();
  });
});

describe('Buildkite settings', () => {
  const BK = { ...REQUIRED, TREADLE_BUILDKITE_TOKEN: 'bkua_token' };

  it.each([
    ['TREADLE_BUILDKITE_TOKEN', '   ', 'a Buildkite API access token'],
    ['TREADLE_BUILDKITE_ORG', 'acme corp', 'an organisation slug'],
    ['TREADLE_BUILDKITE_ORG', '-acme', 'an organisation slug'],
    ['TREADLE_BUILDKITE_API_URL', 'ftp://api.example.com', 'an http(s) URL'],
    ['TREADLE_BUILDKITE_API_URL', 'not a url', 'an http(s) URL'],
    ['TREADLE_BUILDKITE_WEBHOOK_SECRET', '', "the Buildkite webhook's token"],
    ['TREADLE_BUILDKITE_WEBHOOK_MODE', 'hmac', 'token or signature'],
    ['TREADLE_BUILDKITE_RATE_LIMIT', '0', 'requests per minute'],
    ['TREADLE_BUILDKITE_RATE_LIMIT', 'lots', 'requests per minute'],
    ['TREADLE_BUILDKITE_POLL_INTERVAL', '30 parsecs', 'a duration'],
  ])('refuses %s=%j, naming the variable and what it expects', (name, value, expected) => {
    const message = failure({ ...BK, [name]: value });
    expect(message).toContain(name);
    expect(message).toContain(expected);
  });

  it('reads each from the YAML file too, and refuses a bad value there by its key', () => {
    const file = configFile(
      'buildkite:\n  org: acme\n  apiUrl: http://127.0.0.1:9/v2\n  webhookMode: signature\n  rateLimit: 50\n  pollInterval: 10s\n',
    );
    const { config } = loadConfig({ ...BK, TREADLE_CONFIG: file });
    expect(config.buildkite).toMatchObject({
      token: 'bkua_token',
      org: 'acme',
      apiUrl: 'http://127.0.0.1:9/v2',
      webhookMode: 'signature',
      requestsPerMinute: 50,
      pollIntervalMs: 10_000,
    });
    const bad = configFile('buildkite:\n  webhookMode: hmac\n');
    expect(failure({ ...BK, TREADLE_CONFIG: bad })).toMatch(/buildkite\.webhookMode.*token or signature/);
  });

  it('warns when Buildkite settings are given without the token that turns the runner on', () => {
    const { warnings } = loadConfig({ ...REQUIRED, TREADLE_BUILDKITE_ORG: 'acme' });
    expect(warnings.join('\n')).toMatch(/without TREADLE_BUILDKITE_TOKEN: the buildkite runner stays off/);
    expect(loadConfig({ ...BK, TREADLE_BUILDKITE_ORG: 'acme' }).warnings).toEqual([]);
  });
});
