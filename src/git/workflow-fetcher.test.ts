import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeKnot } from '../../fakes/knot.ts';
import { createLogger } from '../logger.ts';
import { WorkflowFetcher, WorkflowFilesRefused } from './workflow-fetcher.ts';

const REPO = 'did:plc:repo1';
let knot: FakeKnot;
let dir: string;
let fetcher: WorkflowFetcher;

beforeAll(async () => {
  knot = await FakeKnot.start();
  knot.git.create(REPO);
  dir = mkdtempSync(join(tmpdir(), 'treadle-fetch-'));
  fetcher = new WorkflowFetcher({ dir, dev: true, log: createLogger('silent'), maxFileBytes: 64 * 1024 });
});

afterAll(async () => {
  await knot.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('WorkflowFetcher', () => {
  it('reads only regular files directly inside .tangled/workflows at the exact commit', async () => {
    const first = knot.git.commit(REPO, {
      'README.md': 'hello',
      '.tangled/workflows/build.yml': 'engine: nixery\nsteps: []\n',
      '.tangled/workflows/test': 'engine: nixery\n',
      '.tangled/workflows/nested/deep.yml': 'engine: nixery\n',
      '.tangled/other.yml': 'x',
    });
    const second = knot.git.commit(REPO, { '.tangled/workflows/build.yml': 'engine: changed\n' });
    expect(await fetcher.fetch(knot.host, REPO, first)).toEqual([
      { name: 'build.yml', raw: 'engine: nixery\nsteps: []\n' },
      { name: 'test', raw: 'engine: nixery\n' },
    ]);
    expect((await fetcher.fetch(knot.host, REPO, second))[0]).toEqual({
      name: 'build.yml',
      raw: 'engine: changed\n',
    });
  });

  it('answers a second read of a commit from its cache, without a request to the knot', async () => {
    const sha = knot.git.commit(REPO, { '.tangled/workflows/ci.yml': 'engine: nixery\n' });
    await fetcher.fetch(knot.host, REPO, sha);
    const before = knot.git.requests.length;
    const again = await fetcher.fetch(knot.host, REPO, sha);
    expect(again.map((f) => f.name)).toContain('ci.yml');
    expect(knot.git.requests.length).toBe(before);
  });

  it('gives no workflows and no error for a commit without the directory', async () => {
    knot.git.create('did:plc:empty');
    const sha = knot.git.commit('did:plc:empty', { 'src/main.c': 'int main;' });
    expect(await fetcher.fetch(knot.host, 'did:plc:empty', sha)).toEqual([]);
  });

  it('refuses a workflow file over the size bound, naming it', async () => {
    const sha = knot.git.commit(REPO, {
      '.tangled/workflows/huge.yml': `# ${'x'.repeat(3 * 1024 * 1024)}\n`,
    });
    await expect(fetcher.fetch(knot.host, REPO, sha)).rejects.toThrow(WorkflowFilesRefused);
    await expect(fetcher.fetch(knot.host, REPO, sha)).rejects.toThrow(/huge\.yml is \d+ bytes/);
  });

  it('rejects a malformed sha or repo DID before running git, and fails clearly for an unknown commit', async () => {
    await expect(fetcher.fetch(knot.host, REPO, 'main')).rejects.toThrow(/not a commit id/);
    await expect(fetcher.fetch(knot.host, '../etc', 'a'.repeat(40))).rejects.toThrow(/not a repo DID/);
    await expect(fetcher.fetch(knot.host, REPO, 'b'.repeat(40))).rejects.toThrow(/git fetch failed/);
  });
});
