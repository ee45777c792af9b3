import { describe, expect, it } from 'vitest';
import { didDocumentUrl } from '../atproto/identity.ts';
import { parseJetstreamEvent } from './jetstream.ts';

const WANTED = ['sh.tangled.repo', 'sh.tangled.repo.pull'];

describe('parseJetstreamEvent', () => {
  it('reads a commit to a wanted collection', () => {
    const text = JSON.stringify({
      did: 'did:plc:alice',
      time_us: 1732000000000000,
      kind: 'commit',
      commit: {
        rev: 'r',
        operation: 'create',
        collection: 'sh.tangled.repo',
        rkey: '3k',
        record: { name: 'x' },
      },
    });
    expect(parseJetstreamEvent(text, WANTED)).toEqual({
      timeUs: 1732000000000000n,
      record: {
        did: 'did:plc:alice',
        collection: 'sh.tangled.repo',
        rkey: '3k',
        operation: 'create',
        record: { name: 'x' },
      },
    });
  });

  it('keeps only the time of other kinds and collections, so the cursor still moves', () => {
    expect(parseJetstreamEvent('{"did":"did:plc:a","time_us":5,"kind":"identity"}', WANTED)).toEqual({
      timeUs: 5n,
    });
    expect(
      parseJetstreamEvent(
        '{"did":"did:plc:a","time_us":6,"kind":"commit","commit":{"operation":"create","collection":"app.bsky.feed.post","rkey":"x"}}',
        WANTED,
      ),
    ).toEqual({ timeUs: 6n });
  });

  it('rejects what is not an event', () => {
    for (const text of [
      'nope',
      '[]',
      '{"did":"did:plc:a"}',
      '{"did":"did:plc:a","time_us":"5","kind":"commit"}',
      '{"did":"did:plc:a","time_us":5,"kind":"commit","commit":{"operation":"explode","collection":"sh.tangled.repo","rkey":"x"}}',
    ]) {
      expect(parseJetstreamEvent(text, WANTED), text).toBeUndefined();
    }
  });
});

describe('didDocumentUrl', () => {
  const o = { plcUrl: 'https://plc.example/', dev: false };
  it('resolves did:plc through the directory and did:web through the host', () => {
    expect(didDocumentUrl('did:plc:abc234', o)).toBe('https://plc.example/did:plc:abc234');
    expect(didDocumentUrl('did:web:example.com', o)).toBe('https://example.com/.well-known/did.json');
    expect(didDocumentUrl('did:web:localhost%3A8080', { ...o, dev: true })).toBe(
      'http://localhost:8080/.well-known/did.json',
    );
  });

  it('refuses other methods and malformed DIDs', () => {
    expect(() => didDocumentUrl('did:key:z6Mk', o)).toThrow(/only did:plc and did:web/);
    expect(() => didDocumentUrl('did:plc:../../x', o)).toThrow();
  });
});
