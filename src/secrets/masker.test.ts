import { describe, expect, it } from 'vitest';
import { Masker } from './masker.ts';

describe('Masker', () => {
  it('masks values and their base64 forms, longest first', () => {
    const m = new Masker(['hunter22', 'hunter22-extended', 'ab']);
    const b64 = Buffer.from('hunter22').toString('base64');
    expect(m.mask('token=hunter22-extended;')).toBe('token=***;');
    expect(m.mask(`echo ${b64} | base64 -d`)).toBe('echo *** | base64 -d');
    expect(m.mask(`url=${Buffer.from('hunter22-extended').toString('base64url')}`)).toBe('url=***');
    expect(m.mask('ab is short: masked raw')).toBe('*** is short: masked raw');
    expect(m.mask(`base64 of ab is ${Buffer.from('ab').toString('base64')}`)).toBe(
      `base64 of *** is ${Buffer.from('ab').toString('base64')}`,
    );
  });

  it('treats regex characters literally and does nothing without values', () => {
    expect(new Masker(['a.b*c']).mask('a.b*c and aXbbc')).toBe('*** and aXbbc');
    expect(new Masker([]).mask('plain')).toBe('plain');
    expect(new Masker(['']).empty).toBe(true);
  });
});
