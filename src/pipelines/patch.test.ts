import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { gunzipPatch, PatchError, tipCommit } from './patch.ts';

const A = 'a'.repeat(40);
const B = 'b'.repeat(40);

function series(...shas: string[]): string {
  return shas
    .map(
      (sha, i) =>
        `From ${sha} Mon Sep 17 00:00:00 2001\nFrom: A <a@example.com>\nSubject: [PATCH ${i + 1}/${shas.length}] change\n\nFrom ${'c'.repeat(40)} is quoted in this message\n---\n f | 1 +\n\ndiff --git a/f b/f\n+From ${'d'.repeat(40)} Mon Sep 17 00:00:00 2001\n-- \n2.39.5\n`,
    )
    .join('\n');
}

describe('tipCommit', () => {
  it('takes the last format-patch marker line, ignoring look-alikes in messages and diffs', () => {
    expect(tipCommit(series(A, B))).toBe(B);
    expect(tipCommit(series(A))).toBe(A);
    expect(tipCommit(`From ${'e'.repeat(64)} Mon Sep 17 00:00:00 2001\n`)).toBe('e'.repeat(64));
  });

  it('refuses a patch that names no commit', () => {
    expect(() => tipCommit('diff --git a/f b/f\n')).toThrow(PatchError);
    expect(() => tipCommit(`From ${A} Tue Oct 1 00:00:00 2024\n`)).toThrow(/no format-patch/);
  });
});

describe('gunzipPatch', () => {
  it('inflates gzip within the bound', () => {
    expect(gunzipPatch(gzipSync(series(A)), 1 << 20)).toBe(series(A));
  });

  it('refuses what is not gzip, is corrupt, or inflates past the bound', () => {
    expect(() => gunzipPatch(Buffer.from(series(A)), 1 << 20)).toThrow(/not gzip/);
    const gz = gzipSync(series(A));
    expect(() => gunzipPatch(gz.subarray(0, gz.length - 12), 1 << 20)).toThrow(/not valid gzip/);
    expect(() => gunzipPatch(gzipSync(Buffer.alloc(2 << 20)), 1 << 20)).toThrow(
      /inflates to more than 1048576/,
    );
  });
});
