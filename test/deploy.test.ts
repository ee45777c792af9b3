/**
 * The deployment files: `fly.toml` read as Fly reads it, the Dockerfile checked for the mistakes
 * hadolint would flag, and the image's install and start steps carried out on this machine (no
 * Docker engine here) in a clean directory: production dependencies only, then `treadle --help`
 * and a daemon answering `/healthz` from the copied tree.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { afterEach, describe, expect, it } from 'vitest';
import { buildStages, envPairs, execForm, parseDockerfile } from './support/dockerfile.ts';
import { ROOT } from './support/process.ts';
import { tempDir } from './support/temp.ts';
import { waitFor } from './support/wait.ts';

const dockerfile = parseDockerfile(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
const final = dockerfile.stages.at(-1)!;
const all = (op: string, stage = final) => stage.instructions.filter((i) => i.op === op);
const seconds = (d: string) => {
  const m = /^(\d+)(s|m)$/.exec(d);
  if (!m) throw new Error(`not a duration: ${d}`);
  return Number(m[1]) * (m[2] === 'm' ? 60 : 1);
};

let cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.reverse()) c();
  cleanups = [];
});

describe('fly.toml', () => {
  // biome-ignore lint/suspicious/noExplicitAny: a parsed TOML document
  const fly = parseToml(readFileSync(join(ROOT, 'fly.toml'), 'utf8')) as any;

  it('keeps one machine always on, with the database and repos on a volume at /data', () => {
    expect(fly.http_service.auto_stop_machines).toBe('off');
    expect(fly.http_service.min_machines_running).toBeGreaterThanOrEqual(1);
    expect(fly.mounts).toHaveLength(1);
    expect(fly.mounts[0].destination).toBe('/data');
    expect(fly.env.TREADLE_DB).toBe('/data/treadle.db');
    expect(fly.env.TREADLE_REPO_DIR).toBe('/data/repos');
    // Migrations run at start: a release machine would have no volume.
    expect(fly.deploy?.release_command).toBeUndefined();
    expect(fly.build.dockerfile).toBe('Dockerfile');
  });

  it('stops with SIGTERM and waits longer than the drain bound', () => {
    expect(fly.kill_signal).toBe('SIGTERM');
    expect(seconds(fly.kill_timeout)).toBeGreaterThan(seconds(fly.env.TREADLE_SHUTDOWN_TIMEOUT));
  });

  it('routes HTTP to the port treadle listens on, checks /healthz, scrapes /metrics on a private port', () => {
    const port = Number(fly.env.TREADLE_LISTEN.split(':').at(-1));
    expect(fly.http_service.internal_port).toBe(port);
    expect(fly.http_service.checks.map((c: { path: string }) => c.path)).toEqual(['/healthz']);
    // Metrics have a listener of their own, not the public service's port.
    const metricsPort = Number(fly.env.TREADLE_METRICS_LISTEN.split(':').at(-1));
    expect(metricsPort).not.toBe(port);
    expect(fly.metrics).toEqual({ port: metricsPort, path: '/metrics' });
    expect(all('EXPOSE')[0]!.args).toBe(String(port));
  });
});

describe('Dockerfile', () => {
  it('pins every base image to a Node 22 release (no latest, no bare tag)', () => {
    for (const stage of dockerfile.stages) {
      expect(stage.from).toMatch(/^node:22\.\d+\.\d+-[a-z]+-slim$/);
      expect(stage.from).not.toMatch(/latest/);
    }
    const [, minor] = /^node:22\.(\d+)/.exec(final.from)!;
    const engines = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).engines.node as string;
    expect(Number(minor)).toBeGreaterThanOrEqual(Number(/^>=22\.(\d+)/.exec(engines)![1]));
  });

  it('installs production dependencies only, with a lock file, and no install scripts', () => {
    const installs = dockerfile.stages.flatMap((s) => all('RUN', s)).filter((r) => /\bnpm\b/.test(r.args));
    expect(installs.length).toBeGreaterThan(0);
    for (const r of installs) {
      expect(r.args).toMatch(/\bnpm ci\b/);
      expect(r.args).toMatch(/--omit=dev/);
      expect(r.args).not.toMatch(/\bnpm install\b/);
    }
  });

  it('adds git, ssh and tini without recommends and cleans the apt lists in the same layer', () => {
    const apt = all('RUN').find((r) => r.args.includes('apt-get install'))!;
    expect(apt.args).toMatch(/apt-get update/);
    expect(apt.args).toMatch(/--no-install-recommends/);
    for (const pkg of ['git', 'openssh-client', 'ca-certificates', 'tini'])
      expect(apt.args.split(/\s+/)).toContain(pkg);
    expect(apt.args).toMatch(/rm -rf \/var\/lib\/apt\/lists\/\*/);
  });

  it('runs as an unprivileged user, with tini as PID 1 and treadle serve in exec form', () => {
    const users = all('USER');
    expect(users.length).toBeGreaterThan(0);
    expect(users.at(-1)!.args).not.toMatch(/^(root|0)(:|$)/);
    const cmd = all('CMD').at(-1)!;
    expect(users.at(-1)!.line).toBeLessThan(cmd.line);
    expect(execForm(all('ENTRYPOINT').at(-1)!.args)).toEqual(['/usr/bin/tini', '--']);
    const argv = execForm(cmd.args)!;
    expect(argv[0]).toBe('node');
    expect(argv.slice(-2)).toEqual(['bin/treadle.js', 'serve']);
    expect(all('ADD')).toEqual([]);
    const env = Object.assign({}, ...all('ENV').map((e) => envPairs(e.args)));
    expect(env).toMatchObject({ NODE_ENV: 'production', TREADLE_DB: '/data/treadle.db' });
  });

  it('copies only what .dockerignore lets into the context, and never the tests', () => {
    const ignore = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n');
    expect(ignore).toContain('*');
    expect(ignore).toContain('**/*.test.ts');
    const copied = dockerfile.stages
      .flatMap((s) => all('COPY', s))
      .filter((c) => !c.args.startsWith('--from='))
      .flatMap((c) => c.args.split(/\s+/).slice(0, -1));
    for (const path of copied) {
      expect(ignore.some((l) => l === `!${path}` || l === `!${path}/`)).toBe(true);
      expect(existsSync(join(ROOT, path))).toBe(true);
    }
    expect(copied).not.toContain('test');
  });
});

describe('the image, built without Docker', () => {
  let daemon: ChildProcess | undefined;
  afterEach(() => {
    daemon?.kill('SIGKILL');
    daemon = undefined;
  });

  it('installs from the lock file alone, prints its help and serves /healthz from the copied tree', async () => {
    const t = tempDir('treadle-image-');
    cleanups.push(t.cleanup);
    const base = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: t.dir };
    const built = buildStages(dockerfile.stages, ROOT, join(t.dir, 'stages'), {
      // npm steps run here, with a cache of their own; apt-get is for the base image (read above).
      run: (command) => /^npm\b/.test(command),
      // The machine's own settings (registry, proxy, CA certificates) reach npm, as they reach a
      // builder; the cache is the test's, since the step ends with `npm cache clean`.
      env: { ...machineEnv(), npm_config_cache: join(t.dir, 'npm-cache') },
      skip: (path) => path.endsWith('.test.ts'),
    });
    const image = built.at(-1)!;
    const app = join(image.root, image.workdir);
    // Dev dependencies are not there, and nothing of the tests came along.
    expect(existsSync(join(app, 'node_modules', 'vitest'))).toBe(false);
    expect(existsSync(join(app, 'node_modules', '@biomejs'))).toBe(false);
    expect(existsSync(join(app, 'node_modules', 'better-sqlite3'))).toBe(true);
    expect(existsSync(join(app, 'test'))).toBe(false);
    expect(existsSync(join(app, 'src', 'config.test.ts'))).toBe(false);

    const [node, ...args] = execForm(all('CMD').at(-1)!.args)!;
    expect(node).toBe('node');
    const env = {
      ...base,
      ...image.env,
      // /data is the volume; here it is a directory of the test.
      TREADLE_DB: join(t.dir, 'data', 'treadle.db'),
      TREADLE_REPO_DIR: join(t.dir, 'data', 'repos'),
      TREADLE_LISTEN: '127.0.0.1:0',
      TREADLE_HOSTNAME: 'spindle.example.com',
      TREADLE_OWNER: 'did:plc:imageowner',
      TREADLE_JETSTREAM_URL: 'ws://127.0.0.1:9/subscribe',
    };
    const help = await run(process.execPath, [...args.slice(0, -1), '--help'], app, env);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^treadle \d+\.\d+\.\d+: a Tangled spindle/);

    let out = '';
    daemon = spawn(process.execPath, args, { cwd: app, env, stdio: ['ignore', 'pipe', 'pipe'] });
    daemon.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
    });
    const line = await waitFor(
      () => out.split('\n').find((l) => l.includes('"msg":"listening"')) ?? '',
      'listening',
    );
    const { port } = JSON.parse(line) as { port: number };
    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: 'ready' });
    expect(existsSync(join(t.dir, 'data', 'treadle.db'))).toBe(true);
    daemon.kill('SIGTERM');
    const code = await new Promise((resolve) => daemon!.on('exit', (c) => resolve(c)));
    expect(code).toBe(0);
  }, 240_000);
});

function machineEnv(): Record<string, string> {
  return Object.fromEntries(
    Object.entries(process.env).filter(
      (e): e is [string, string] => e[1] !== undefined && !/^(TREADLE_|SPINDLE_)/.test(e[0]),
    ),
  );
}

function run(
  cmd: string,
  args: string[],
  cwd: string,
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.on('exit', (code) => resolve({ code, stdout }));
  });
}
