/**
 * The structural rules docs/ARCHITECTURE.md states, checked on the source so they stay true:
 * SQL only in src/db/ and in a runner's own store (providers/<name>/*-store.ts); the environment
 * read only by config (and the git environment builder); db/ independent of runners; production
 * code never importing tests; a short composition root.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..');

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(ROOT, dir))) {
    const path = join(ROOT, dir, name);
    if (statSync(path).isDirectory()) out.push(...sources(relative(ROOT, path)));
    else if (/\.(ts|js)$/.test(name) && !name.endsWith('.test.ts')) out.push(relative(ROOT, path));
  }
  return out;
}

const PRODUCTION = [...sources('src'), ...sources('providers'), ...sources('bin')];
const read = (file: string) => readFileSync(join(ROOT, file), 'utf8');

describe('the architecture rules', () => {
  it('keeps SQL in src/db/ and in runners’ own stores', () => {
    const sql = /\.prepare\(|\.pragma\(|\bdb\.exec\(|\.exec\(`/;
    const allowed = (f: string) => f.startsWith('src/db/') || /^providers\/[^/]+\/[^/]+-store\.ts$/.test(f);
    const offenders = PRODUCTION.filter((f) => !allowed(f) && sql.test(read(f)));
    expect(offenders).toEqual([]);
  });

  it('reads the environment only in config and the git environment builder', () => {
    const offenders = PRODUCTION.filter(
      (f) => f !== 'src/config.ts' && f !== 'src/git/git.ts' && /process\.env\b/.test(read(f)),
    );
    expect(offenders).toEqual([]);
  });

  it('keeps db/ free of runner code, and production code free of test code', () => {
    const dbOnProviders = PRODUCTION.filter(
      (f) => f.startsWith('src/db/') && /from '[./]*providers\//.test(read(f)),
    );
    expect(dbOnProviders).toEqual([]);
    const onTests = PRODUCTION.filter((f) => /from '[./]*test\//.test(read(f)));
    expect(onTests).toEqual([]);
  });

  it('has a composition root under 150 lines that lists modules', () => {
    const root = read('src/spindle.ts');
    expect(root.split('\n').length).toBeLessThan(150);
    expect(root).toMatch(/return \[\s*runners\.module,/);
  });
});
