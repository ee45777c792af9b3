/**
 * The fake PLC of the auth benchmark on its own thread: a real directory is another machine, so
 * its work must not land on the daemon's event loop. Posts `{url}` once listening; a message
 * `{did, didKey}` publishes that DID's signing key and is answered with `{ok: true}`.
 */
import { parentPort } from 'node:worker_threads';
import { FakePds } from '../fakes/pds.ts';

const pds = await FakePds.start();
parentPort!.on('message', (m: { did: string; didKey: string } | 'close') => {
  if (m === 'close') {
    void pds.close().then(() => parentPort!.close());
    return;
  }
  pds.setSigningKey(m.did, m.didKey);
  parentPort!.postMessage({ ok: true });
});
parentPort!.postMessage({ url: pds.url });
