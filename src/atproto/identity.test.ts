import { afterEach, describe, expect, it } from 'vitest';
import { FakePds } from '../../fakes/pds.ts';
import { listAllRecords } from './identity.ts';

let pds: FakePds | undefined;
afterEach(async () => {
  await pds?.close();
});

describe('listAllRecords against a PDS that lists newest first with a cursor on every page', () => {
  it('reads every record exactly once across pages, however many there are', async () => {
    pds = await FakePds.start();
    const did = 'did:plc:lister';
    pds.addIdentity(did);
    const rkeys = Array.from({ length: 250 }, (_, i) => `3k${String(i).padStart(11, '0')}`);
    for (const rkey of rkeys) pds.putRecord(did, 'sh.tangled.repo', rkey, { name: rkey });
    const listed = await listAllRecords(pds.url, did, 'sh.tangled.repo', { plcUrl: pds.url, dev: true });
    expect(listed.map((r) => r.uri.split('/').at(-1)).sort()).toEqual(rkeys);
    // Three full pages and the empty page that ends the listing.
    expect(pds.requests.filter((r) => r.includes('listRecords'))).toHaveLength(4);
  });
});
