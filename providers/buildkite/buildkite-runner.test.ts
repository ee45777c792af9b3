import { afterEach, describe, expect, it } from 'vitest';
import { FakeBuildkite } from '../../fakes/buildkite.ts';
import { main } from '../../src/cli/main.ts';
import { openDatabase } from '../../src/db/database.ts';
import { createLogger } from '../../src/logger.ts';
import { tempDir } from '../../test/support/temp.ts';
import { waitFor } from '../../test/support/wait.ts';
import type { BuildRequest } from '../runner.ts';
import { BuildStore } from './build-store.ts';
import { BuildkiteRunner } from './buildkite-runner.ts';
import { BuildkiteClient } from './client.ts';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup() {
  const bk = await FakeBuildkite.start();
  const t = tempDir();
  const db = openDatabase(`${t.dir}/treadle.db`);
  const client = new BuildkiteClient({
    apiUrl: bk.apiUrl,
    token: bk.token,
    requestsPerMinute: 100,
    log: createLogger('silent'),
  });
  const woken: string[] = [];
  const runner = new BuildkiteRunner({
    client,
    store: new BuildStore(db),
    log: createLogger('silent'),
    org: 'acme',
    pollIntervalMs: 1000,
    onProgress: (id) => woken.push(id),
  });
  cleanups.push(
    () => bk.close(),
    () => client.close(),
    () => db.close(),
    () => t.cleanup(),
  );
  return { bk, runner, woken };
}

const request: BuildRequest = {
  id: 'knot.test/3kabc/ci.yml',
  repo: { did: 'did:plc:o', name: 'hello', knot: 'knot.test', cloneUrl: 'https://knot.test/did:plc:o/hello' },
  head: { ref: 'refs/heads/main', sha: 'a'.repeat(40) },
  workflow: { name: 'ci.yml', raw: '', engine: 'nixery', options: { pipeline: 'app' } },
  env: {},
  metadata: { pipeline: 'at://did:web:knot.test/sh.tangled.pipeline/3kabc', trigger: 'push' },
};

describe('BuildkiteRunner', () => {
  it('cancels: the build goes canceling, then the run ends cancelled once Buildkite confirms', async () => {
    const { bk, runner, woken } = await setup();
    bk.script('app', { startAfterMs: 20, runMs: 5000, jobs: [{ name: 'j', command: 'sleep 5', lines: 2 }] });
    const id = await runner.trigger(request);
    expect(await runner.trigger(request)).toBe(id);
    await waitFor(async () => (await runner.status(id)).state === 'running' || undefined, 'running', 5000);
    await runner.cancel(id);
    expect(woken).toContain(request.id);
    const done = await waitFor(
      async () => {
        const s = await runner.status(id);
        return s.state === 'cancelled' ? s : undefined;
      },
      'cancelled',
      8000,
    );
    expect(done?.error).toBe('cancelled on Buildkite');
    // Cancelling a finished build is a no-op (Buildkite answers 422).
    await runner.cancel(id);
    expect(bk.builds).toHaveLength(1);
  });
});

describe('BuildkiteRunner adopting a build after an ambiguous create', () => {
  it('adopts only the build whose request id matches, even when the lookup comes back unfiltered', async () => {
    const { bk, runner } = await setup();
    bk.script('app', { startAfterMs: 20, runMs: 50, jobs: [{ name: 'j', command: 'true', lines: 1 }] });
    bk.ignoreMetaDataFilter = true;
    // Someone else's build is in the pipeline, newest first in every list.
    const other = await runner.trigger({ ...request, id: 'knot.test/3kother/ci.yml' });
    // The create fails before Buildkite commits it: the lookup finds only the other build.
    bk.fault(/^POST \/v2\/organizations\/acme\/pipelines\/app\/builds$/, 502, 1);
    const mine = await runner.trigger(request);
    expect(mine).not.toBe(other);
    expect(bk.buildsPerRequest().get(request.id)).toBe(1);
    expect(bk.buildsPerRequest().get('knot.test/3kother/ci.yml')).toBe(1);
    // A create that was committed and answered 5xx is found by its id among others and adopted.
    bk.failAfterCommit(1);
    const third = { ...request, id: 'knot.test/3kthird/ci.yml' };
    const adopted = await runner.trigger(third);
    expect(adopted).not.toBe(other);
    expect(adopted).not.toBe(mine);
    expect(bk.buildsPerRequest().get(third.id)).toBe(1);
  });
});

describe('treadle doctor and Buildkite', () => {
  it('reports a working token and organisation, and a wrong token without printing it', async () => {
    const bk = await FakeBuildkite.start();
    cleanups.push(() => bk.close());
    const base = {
      TREADLE_HOSTNAME: 'spindle.test',
      TREADLE_OWNER: 'did:plc:owner',
      TREADLE_DB: '/nonexistent-dir/treadle.db',
      TREADLE_BUILDKITE_ORG: 'acme',
      TREADLE_BUILDKITE_API_URL: bk.apiUrl,
    };
    const run = async (token: string) => {
      const out: string[] = [];
      const code = await main(['doctor'], { ...base, TREADLE_BUILDKITE_TOKEN: token }, {
        out: (t: string) => out.push(t),
        err: (t: string) => out.push(t),
      } as never);
      return { code, text: out.join('\n') };
    };
    const good = await run(bk.token);
    expect(good.text).toMatch(/ok\s+Buildkite: the token can read builds of organisation acme/);
    expect(good.text).toMatch(/warn\s+Buildkite: no TREADLE_BUILDKITE_WEBHOOK_SECRET/);
    const bad = await run('not-the-token-123');
    expect(bad.code).toBe(1);
    expect(bad.text).toMatch(/FAIL\s+Buildkite: .*Authentication required/);
    expect(bad.text).not.toContain('not-the-token-123');
  });
});
