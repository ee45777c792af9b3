/**
 * The product is called treadle. The name it was developed under must not creep back: it is
 * also the name of Tangled's own AppView, so every stray use would confuse users. The one
 * sentence that says treadle is not that AppView is allowed, and so are the changelog and the
 * lock file (history).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..');
const OLD = ['bob', 'bin'].join('');
const SKIP_DIRS = new Set(['node_modules', '.git', 'coverage', 'dist', '.bench-tmp']);
const SKIP_FILES = new Set(['package-lock.json', 'CHANGELOG.md', '.vitest-results.json']);
/** Mentions of Tangled's AppView itself, which keeps its name. */
const ALLOWED = [/Bobbin AppView/, /sh\.tangled\.bobbin\./];

/** The tree's files: what git tracks or would track, or (outside a checkout) a walk. */
function files(): string[] {
  if (existsSync(join(ROOT, '.git'))) {
    const out = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    return out
      .split('\0')
      .filter((f) => f && !SKIP_FILES.has(f.split('/').at(-1)!))
      .map((f) => join(ROOT, f))
      .filter((path) => existsSync(path) && statSync(path).isFile());
  }
  return [...walk(ROOT)];
}

function* walk(dir: string): Generator<string> {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) {
      if (!SKIP_DIRS.has(name)) yield* walk(path);
    } else if (!SKIP_FILES.has(name) && !name.endsWith('.db')) yield path;
  }
}

describe('the product name', () => {
  it('appears nowhere in its old form, in file names or contents', () => {
    const found: string[] = [];
    for (const path of files()) {
      const rel = relative(ROOT, path);
      if (rel.toLowerCase().includes(OLD)) found.push(`${rel} (file name)`);
      const text = readFileSync(path, 'latin1');
      text.split('\n').forEach((line, i) => {
        if (line.toLowerCase().includes(OLD) && !ALLOWED.some((re) => re.test(line)))
          found.push(`${rel}:${i + 1}: ${line.trim().slice(0, 120)}`);
      });
    }
    expect(found).toEqual([]);
  });

  it('is what the package and its command are called', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
    expect(pkg.name).toBe('treadle');
    expect(Object.keys(pkg.bin)).toEqual(['treadle']);
    expect(statSync(join(ROOT, pkg.bin.treadle)).isFile()).toBe(true);
  });
});
