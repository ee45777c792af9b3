import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { RecordValidator } from '../src/atproto/lexicons.ts';
import { runTreadle, type Spawned } from './support/process.ts';
import { startDaemon } from './support/stack.ts';
import { tempDir } from './support/temp.ts';

const running: Spawned[] = [];
let cleanup = () => {};
afterEach(() => {
  for (const p of running) p.child.kill('SIGKILL');
  running.length = 0;
  cleanup();
});

function serveEnv(db: string): Record<string, string> {
  return {
    TREADLE_HOSTNAME: 'localhost:6555',
    TREADLE_OWNER: 'did:plc:testowner',
    TREADLE_LISTEN: '127.0.0.1:0',
    TREADLE_DB: db,
    TREADLE_SHUTDOWN_TIMEOUT: '3s',
  };
}

async function serve(env: Record<string, string>): Promise<{ p: Spawned; base: string }> {
  const daemon = await startDaemon(env);
  running.push(daemon.p);
  return daemon;
}

describe('treadle serve', () => {
  it('refuses to start without TREADLE_OWNER, naming it', async () => {
    const t = tempDir();
    cleanup = t.cleanup;
    const env = serveEnv(join(t.dir, 'treadle.db'));
    delete (env as Partial<typeof env>).TREADLE_OWNER;
    const { code, stderr } = await runTreadle(['serve'], env);
    expect(code).toBe(78);
    expect(stderr).toMatch(/TREADLE_OWNER is required/);
  });

  it('refuses an engine map naming a runner that is not configured, with exit 78', async () => {
    const t = tempDir();
    cleanup = t.cleanup;
    const { code, stderr } = await runTreadle(['serve'], {
      ...serveEnv(join(t.dir, 'treadle.db')),
      TREADLE_ENGINES: 'nixery=jenkins',
    });
    expect(code).toBe(78);
    expect(stderr).toMatch(/TREADLE_ENGINES: engine nixery maps to runner jenkins, which is not configured/);
  });

  it('serves the banner, /healthz and sh.tangled.owner, answers 404 elsewhere, and exits 0 on SIGTERM', async () => {
    const t = tempDir();
    cleanup = t.cleanup;
    const { p, base } = await serve(serveEnv(join(t.dir, 'treadle.db')));

    const health = await fetch(`${base}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: 'ready' });
    const banner = await fetch(`${base}/`);
    expect(banner.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(await banner.text()).toMatch(/Tangled spindle at localhost:6555[\s\S]*\/xrpc\//);
    const missing = await fetch(`${base}/nope`);
    expect(missing.status).toBe(404);
    expect(await missing.text()).toBe('404 page not found\n');

    const owner = await fetch(`${base}/xrpc/sh.tangled.owner`);
    expect(owner.status).toBe(200);
    expect(owner.headers.get('content-type')).toBe('application/json');
    const ownerText = await owner.text();
    expect(ownerText).toBe('{"owner":"did:plc:testowner"}\n');
    new RecordValidator().lexicons.assertValidXrpcOutput('sh.tangled.owner', JSON.parse(ownerText));
    const wrongMethod = await fetch(`${base}/xrpc/sh.tangled.owner`, { method: 'POST' });
    expect(wrongMethod.status).toBe(405);
    expect(await wrongMethod.text()).toBe('');
    const unknown = await fetch(`${base}/xrpc/sh.tangled.nope`);
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toEqual({
      error: 'MethodNotImplemented',
      message: 'method sh.tangled.nope is not implemented here',
    });

    const signalled = Date.now();
    p.child.kill('SIGTERM');
    expect(await p.exited).toBe(0);
    expect(Date.now() - signalled).toBeLessThan(3000 + 5000); // the drain bound, plus process slack
    expect(p.stdout()).toContain('"msg":"stopped"');
  });

  it('serves /events over WebSocket and closes it with 1001 on SIGTERM', async () => {
    const t = tempDir();
    cleanup = t.cleanup;
    const { p, base } = await serve(serveEnv(join(t.dir, 'treadle.db')));
    const plain = await fetch(`${base}/events`);
    expect(plain.status).toBe(400);
    const ws = new WebSocket(`${base.replace('http', 'ws')}/events?cursor=-1`);
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    const closed = new Promise<number>((resolve) => ws.once('close', resolve));
    p.child.kill('SIGTERM');
    expect(await closed).toBe(1001);
    expect(await p.exited).toBe(0);
  });

  it('lets a second serve on the same database exit with a clear message', async () => {
    const t = tempDir();
    cleanup = t.cleanup;
    const env = serveEnv(join(t.dir, 'treadle.db'));
    const { p } = await serve(env);
    const second = await runTreadle(['serve'], env);
    expect(second.code).toBe(75);
    expect(second.stderr).toMatch(
      new RegExp(`another treadle \\(pid ${p.child.pid} .*is using the database`),
    );
    p.child.kill('SIGTERM');
    expect(await p.exited).toBe(0);
    // Once the first has stopped, the database is free again.
    const third = await serve(env);
    third.p.child.kill('SIGTERM');
    expect(await third.p.exited).toBe(0);
  });

  it('reports a listen address in use and exits non-zero', async () => {
    const t = tempDir();
    cleanup = t.cleanup;
    const { base } = await serve(serveEnv(join(t.dir, 'a.db')));
    const port = new URL(base).port;
    const { code, stderr } = await runTreadle(['serve'], {
      ...serveEnv(join(t.dir, 'b.db')),
      TREADLE_LISTEN: `127.0.0.1:${port}`,
    });
    expect(code).toBe(1);
    expect(stderr).toMatch(
      /^treadle: cannot listen on 127\.0\.0\.1:\d+ \(TREADLE_LISTEN\): address in use\n$/m,
    );
  });
});

describe('treadle CLI', () => {
  it('lists its commands', async () => {
    const { code, stdout } = await runTreadle(['--help']);
    expect(code).toBe(0);
    for (const cmd of ['serve', 'demo', 'doctor', 'queue'])
      expect(stdout).toMatch(new RegExp(`^  ${cmd} `, 'm'));
  });

  it('rejects an unknown command with usage and exit 2', async () => {
    const { code, stderr } = await runTreadle(['frobnicate']);
    expect(code).toBe(2);
    expect(stderr).toMatch(/unknown command "frobnicate"/);
  });

  it('runs the spindle demo: one success, one failure, one unknown engine, then a ref-update-only knot', async () => {
    const { code, stdout, stderr } = await runTreadle(['demo']);
    expect(code, stderr).toBe(0);
    expect(stdout).toMatch(/^ {2}build\.yml +nixery +pending → running → success *$/m);
    expect(stdout).toMatch(/^ {2}lint\.yml +nixery +pending → running → failed +exit code 2$/m);
    expect(stdout).toMatch(/^ {2}deploy\.yml +docker +failed +unknown engine "docker"$/m);
    expect(stdout).toMatch(/0 undecodable/);
    // The new-generation knot: a ref update only, and the pipeline is found through the ci API.
    expect(stdout).toMatch(/ran pipeline [a-z2-7]{13}: pending → running → success/);
    expect(stdout).toMatch(/queryPipelines\?repo=did:plc:demorepo → 200/);
    expect(stdout).toContain('"$type": "sh.tangled.ci.trigger#push"');
    // Greenness and landing on a local git remote.
    const green = /last green commit of main: ([0-9a-f]{12}) \(#2\)/.exec(stdout)?.[1];
    expect(green).toBeDefined();
    expect(stdout).toContain(`verified/main promoted to the last green commit: ${green}`);
    expect(stdout).toMatch(/REBASE of feature [0-9a-f]{12} onto main: SUCCEEDED, main is now [0-9a-f]{12}/);
    expect(stdout).toMatch(
      /dry-run check of clash [0-9a-f]{12} on main: FAILED: conflict applying [0-9a-f]{40}: app\.txt/,
    );
  }, 60_000);

  it('runs the queue demo to completion', async () => {
    const { code, stdout } = await runTreadle(['demo', 'queue']);
    expect(code).toBe(0);
    expect(stdout).toMatch(/all 6 jobs handled exactly once/);
  });
});
