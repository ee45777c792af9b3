import { type Keypair, P256Keypair, Secp256k1Keypair, verifySignature } from '@atproto/crypto';
import { describe, expect, it } from 'vitest';
import { verifyJwtSignature } from './signature.ts';

/** The order n of each curve, to build the high-S twin (r, n − s) of a signature. */
const ORDER: Record<string, bigint> = {
  ES256K: 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n,
  ES256: 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n,
};

function highS(sig: Uint8Array, alg: string): Uint8Array {
  const s = BigInt(`0x${Buffer.from(sig.subarray(32)).toString('hex')}`);
  const twin = Buffer.from((ORDER[alg]! - s).toString(16).padStart(64, '0'), 'hex');
  return Buffer.concat([sig.subarray(0, 32), twin]);
}

describe('verifyJwtSignature (OpenSSL)', () => {
  for (const create of [() => Secp256k1Keypair.create(), () => P256Keypair.create()]) {
    it('answers as @atproto/crypto does for good, tampered and high-S signatures', async () => {
      const kp: Keypair = await create();
      const alg = kp.jwtAlg;
      const other = await create();
      const msg = Buffer.from('eyJhbGciOiJFUzI1NksifQ.eyJpc3MiOiJkaWQ6cGxjOmEifQ');
      const sig = await kp.sign(msg);
      const cases: Array<[string, Uint8Array, Uint8Array]> = [
        ['good', msg, sig],
        ['other message', Buffer.from(`${msg}x`), sig],
        ['flipped bit', msg, Buffer.from(sig.map((b, i) => (i === 40 ? b ^ 1 : b)))],
        ['high-S twin', msg, highS(sig, alg)],
        ['another key’s signature', msg, await other.sign(msg)],
        ['short', msg, sig.subarray(0, 63)],
      ];
      const ours = await Promise.all(cases.map(([, m, s]) => verifyJwtSignature(kp.did(), m, s, alg)));
      const theirs = await Promise.all(
        cases.map(([, m, s]) => verifySignature(kp.did(), m, s, { jwtAlg: alg, allowMalleableSig: true })),
      );
      expect(ours).toEqual(theirs);
      expect(ours).toEqual([true, false, false, true, false, false]);
      await expect(
        verifyJwtSignature(kp.did(), msg, sig, alg === 'ES256' ? 'ES256K' : 'ES256'),
      ).rejects.toThrow(/expected a signing key/);
    });
  }
});
