import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { signWebhook, verifyWebhook } from './webhook-auth.ts';

interface Vector {
  name: string;
  secret: string;
  ts: number;
  body: string;
  header: string;
}

const FIXTURES = new URL('../../test/fixtures/buildkite/', import.meta.url);
const VECTORS = JSON.parse(readFileSync(new URL('signature-vectors.json', FIXTURES), 'utf8')) as Vector[];
const V2 = VECTORS.find((v) => v.name === 'V2')!;

describe('Buildkite webhook signatures (spec §9 F5)', () => {
  it('has the F4 body byte for byte', () => {
    const f4 = readFileSync(new URL('build-finished.json', FIXTURES));
    expect(f4.length).toBe(2247);
    expect(createHash('sha256').update(f4).digest('hex')).toBe(
      '2091673e5b61561774939e52545e4f6ba242d5dca20de71f6e303b1daa33808e',
    );
    expect(VECTORS.find((v) => v.name === 'V6')!.body).toBe(f4.toString('utf8'));
  });

  it.each(VECTORS.map((v) => [v.name, v] as const))('%s: signs and verifies', (_name, v) => {
    const body = Buffer.from(v.body, 'utf8');
    expect(signWebhook(v.secret, body, v.ts)).toBe(v.header);
    expect(verifyWebhook('signature', v.secret, { signature: v.header }, body, v.ts + 10)).toEqual({
      ok: true,
    });
  });

  it.each([
    ['a changed body', V2.body.replace('"passed"', '"failed"'), V2.header, 's3cr3t', V2.ts, /mismatch/],
    ['the wrong secret', V2.body, V2.header, 's3cr3T', V2.ts, /mismatch/],
    ['no signature part', V2.body, 'timestamp=1719276157', 's3cr3t', V2.ts, /format is incorrect/],
    ['a signature that is not hex', V2.body, 'timestamp=1719276157,signature=yo', 's3cr3t', V2.ts, /hex/],
    ['a stale delivery (301 s old)', V2.body, V2.header, 's3cr3t', V2.ts + 301, /window/],
    ['a delivery from the future (301 s ahead)', V2.body, V2.header, 's3cr3t', V2.ts - 301, /window/],
    ['a third part', V2.body, `${V2.header},x=1`, 's3cr3t', V2.ts, /format is incorrect/],
  ])('rejects %s', (_what, body, header, secret, now, reason) => {
    const verdict = verifyWebhook('signature', secret, { signature: header }, Buffer.from(body), now);
    expect(verdict.ok).toBe(false);
    expect(verdict.ok ? '' : verdict.reason).toMatch(reason);
  });

  it('accepts exactly the configured token in token mode', () => {
    const body = Buffer.from('{}');
    expect(verifyWebhook('token', 'whsec-test-2f9c1e', { token: 'whsec-test-2f9c1e' }, body)).toEqual({
      ok: true,
    });
    for (const token of ['whsec-test-2f9c1', 'whsec-test-2f9c1e ', '', null]) {
      expect(verifyWebhook('token', 'whsec-test-2f9c1e', { token }, body).ok, String(token)).toBe(false);
    }
    // A signature does not stand in for a token, nor the other way round.
    expect(verifyWebhook('token', 's3cr3t', { signature: V2.header }, Buffer.from(V2.body)).ok).toBe(false);
    expect(verifyWebhook('signature', 's3cr3t', { token: 's3cr3t' }, Buffer.from(V2.body), V2.ts).ok).toBe(
      false,
    );
  });
});
