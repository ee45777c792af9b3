/**
 * Discovery against the real daemon: the Jetstream subscription and cursor (§17.3), members
 * (§17.4), which repo records are served (§17.6) with §16.6's fixes, and the PDS backfill on
 * first start and for new members.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { AppviewEvents } from '../fakes/appview.ts';
import { FakeKnot } from '../fakes/knot.ts';
import { CursorStore } from '../src/db/cursor-store.ts';
import { openDatabase } from '../src/db/database.ts';
import {
  HOSTNAME,
  OWNER,
  pipelineRecord,
  repoRecord,
  rkey,
  type Stack,
  startStack,
} from './support/stack.ts';
import { waitFor } from './support/wait.ts';

const ALICE = 'did:plc:alice';
const MALLORY = 'did:plc:mallory';

let s: Stack | undefined;
const knots: FakeKnot[] = [];
afterEach(async () => {
  await s?.close();
  s = undefined;
  await Promise.all(knots.splice(0).map((k) => k.close()));
});

async function newKnot(): Promise<FakeKnot> {
  const k = await FakeKnot.start();
  knots.push(k);
  return k;
}

function memberRecord(subject: string, instance = HOSTNAME) {
  return { $type: 'sh.tangled.spindle.member', subject, instance, createdAt: new Date().toISOString() };
}

describe('the Jetstream subscription (§17.3)', () => {
  it('asks for exactly the three discovery collections and the two pull collections (no DID filter) with a µs cursor, and resumes from its cursor after a restart', async () => {
    s = await startStack();
    await waitFor(() => s!.jetstream.connected > 0, 'the jetstream connection');
    const first = new URL(s.jetstream.connections[0]!, 'http://x').searchParams;
    expect(first.getAll('wantedCollections')).toEqual([
      'sh.tangled.spindle.member',
      'sh.tangled.repo',
      'sh.tangled.repo.collaborator',
      'sh.tangled.repo.pull',
      'sh.tangled.repo.pull.status',
    ]);
    expect(first.getAll('wantedDids')).toEqual([]);
    expect(first.get('cursor')).toMatch(/^\d{16}$/);
    const k = await newKnot();
    const t = s.jetstream.commit(OWNER, 'sh.tangled.repo', rkey(), 'create', repoRecord('hello', k.host));
    await waitFor(() => k.connected > 0, 'the knot connection');
    s.jetstream.sendRaw('not json');
    s.jetstream.sendRaw('{"did":"did:plc:x","time_us":"soon","kind":"commit"}');
    // The junk is skipped and the next valid event is still applied.
    const k2 = await newKnot();
    const t2 = s.jetstream.commit(OWNER, 'sh.tangled.repo', rkey(), 'create', repoRecord('second', k2.host));
    await waitFor(() => k2.connected > 0, 'the knot of a repo announced after the junk');
    expect(await s.daemon.stop()).toBe(0);
    await s.restart();
    await waitFor(
      () => s!.jetstream.connections.length >= 2,
      `the jetstream reconnect: ${s!.jetstream.connections.length}`,
    );
    const resumed = Number(new URL(s.jetstream.connections[1]!, 'http://x').searchParams.get('cursor'));
    // Resumed from the last handled event, rewound a few seconds: not from "now".
    expect(resumed).toBeLessThanOrEqual(t2);
    expect(resumed).toBeGreaterThan(t - 60_000_000);
  }, 30_000);
});

describe('members and repos (§17.4, §17.6, §16.6)', () => {
  it("serves a member's repo only after the owner's member record for this instance", async () => {
    s = await startStack();
    s.pds.addIdentity(ALICE);
    s.pds.addIdentity(MALLORY);
    const [k1, k2, k3] = [await newKnot(), await newKnot(), await newKnot()];
    await waitFor(() => s!.jetstream.connected > 0, 'the jetstream connection');

    // Not a member yet, a member record by someone else, one for another instance: nothing.
    s.jetstream.commit(ALICE, 'sh.tangled.repo', rkey(), 'create', repoRecord('a', k1.host));
    s.jetstream.commit(MALLORY, 'sh.tangled.spindle.member', rkey(), 'create', memberRecord(ALICE));
    s.jetstream.commit(
      OWNER,
      'sh.tangled.spindle.member',
      rkey(),
      'create',
      memberRecord(ALICE, 'elsewhere.example'),
    );
    s.jetstream.commit(ALICE, 'sh.tangled.repo', rkey(), 'create', repoRecord('b', k2.host));
    // The owner's own repos that do not name this spindle: nothing either.
    s.jetstream.commit(OWNER, 'sh.tangled.repo', rkey(), 'create', repoRecord('c', k3.host, null));
    s.jetstream.commit(OWNER, 'sh.tangled.repo', rkey(), 'create', repoRecord('d', k3.host, '[[none]]'));
    // A sentinel the owner serves, sent after them: once its knot is followed, they were handled.
    const sentinel = await newKnot();
    s.jetstream.commit(OWNER, 'sh.tangled.repo', rkey(), 'create', repoRecord('sentinel', sentinel.host));
    await waitFor(() => sentinel.connected > 0, 'the sentinel repo’s knot');
    expect([k1.connections.length, k2.connections.length, k3.connections.length]).toEqual([0, 0, 0]);

    const membership = rkey();
    s.jetstream.commit(OWNER, 'sh.tangled.spindle.member', membership, 'create', memberRecord(ALICE));
    const repo = rkey();
    s.jetstream.commit(ALICE, 'sh.tangled.repo', repo, 'create', repoRecord('e', k1.host));
    await waitFor(() => k1.connected > 0, "the member's knot connection");

    // A pipeline for a repo that is not served gives no status. (Repo "a", saved before Alice
    // was a member, is served now: the member backfill found it, unlike a stock spindle.)
    const app = new AppviewEvents();
    await app.connect(s.daemon.base);
    k1.emit(
      'sh.tangled.pipeline',
      rkey(),
      pipelineRecord(k1.host, [{ name: 'x.yml' }], { did: ALICE, name: 'ghost' }),
    );
    const served = rkey();
    k1.emit(
      'sh.tangled.pipeline',
      served,
      pipelineRecord(k1.host, [{ name: 'x.yml' }], { did: ALICE, name: 'e' }),
    );
    await waitFor(() => app.statuses.size > 0, 'a status');
    expect([...app.statuses.values()].every((r) => r.pipelineRkey === served)).toBe(true);
    await app.close();

    // Removing the member stops serving their repos: the knot is no longer followed.
    s.jetstream.commit(OWNER, 'sh.tangled.spindle.member', membership, 'delete');
    await waitFor(() => k1.connected === 0, 'the knot connection to close');
  }, 30_000);

  it('stops following a knot when its repo record is deleted or moves to another spindle', async () => {
    s = await startStack();
    const [k1, k2] = [await newKnot(), await newKnot()];
    await waitFor(() => s!.jetstream.connected > 0, 'the jetstream connection');
    const r1 = rkey();
    const r2 = rkey();
    s.jetstream.commit(OWNER, 'sh.tangled.repo', r1, 'create', repoRecord('one', k1.host));
    s.jetstream.commit(OWNER, 'sh.tangled.repo', r2, 'create', repoRecord('two', k2.host));
    await waitFor(() => k1.connected > 0 && k2.connected > 0, 'both knot connections');
    s.jetstream.commit(OWNER, 'sh.tangled.repo', r1, 'delete');
    s.jetstream.commit(
      OWNER,
      'sh.tangled.repo',
      r2,
      'update',
      repoRecord('two', k2.host, 'other.spindle.example'),
    );
    await waitFor(() => k1.connected === 0 && k2.connected === 0, 'both knot connections to close');
  }, 30_000);
});

describe('backfill from the PDS', () => {
  it("on first start, serves the owner's and members' repos without any Jetstream event", async () => {
    const [k1, k2] = [await newKnot(), await newKnot()];
    const stack = await startStack({}, (pds) => {
      pds.putRecord(OWNER, 'sh.tangled.repo', rkey(), repoRecord('mine', k1.host));
      pds.putRecord(OWNER, 'sh.tangled.repo', rkey(), repoRecord('not-here', k1.host, 'other.example'));
      pds.putRecord(OWNER, 'sh.tangled.spindle.member', rkey(), memberRecord(ALICE));
      pds.putRecord(ALICE, 'sh.tangled.repo', rkey(), repoRecord('theirs', k2.host));
      pds.failNext(2);
    });
    s = stack;
    await waitFor(() => k1.connected > 0 && k2.connected > 0, 'knot connections from the backfill', 20_000);
    expect(stack.pds.requests.some((r) => r.includes('collection=sh.tangled.repo.collaborator'))).toBe(true);
  }, 30_000);

  it("backfills a new member's repos from their PDS", async () => {
    s = await startStack();
    const k = await newKnot();
    s.pds.putRecord(ALICE, 'sh.tangled.repo', rkey(), repoRecord('older', k.host));
    await waitFor(() => s!.jetstream.connected > 0, 'the jetstream connection');
    s.jetstream.commit(OWNER, 'sh.tangled.spindle.member', rkey(), 'create', memberRecord(ALICE));
    await waitFor(() => k.connected > 0, "the member's knot connection");
  }, 30_000);
});

describe('bad input from Jetstream', () => {
  it('ignores mistyped records in valid commits, identity and account events, and applies the next valid record', async () => {
    s = await startStack();
    await waitFor(() => s!.jetstream.connected > 0, 'the jetstream connection');
    const stranger = await newKnot();
    s.jetstream.commit(OWNER, 'sh.tangled.repo', rkey(), 'create', {
      ...repoRecord('bad', stranger.host),
      knot: 123,
    });
    s.jetstream.commit(OWNER, 'sh.tangled.spindle.member', rkey(), 'create', {
      ...memberRecord('not-a-did'),
    });
    s.jetstream.commit(OWNER, 'sh.tangled.repo.collaborator', rkey(), 'create', { subject: ALICE, repo: 7 });
    s.jetstream.identity(OWNER);
    s.jetstream.account(OWNER, false);
    const k = await newKnot();
    s.jetstream.commit(OWNER, 'sh.tangled.repo', rkey(), 'create', repoRecord('good', k.host));
    await waitFor(() => k.connected > 0, 'the knot of the valid record');
    expect(stranger.connections).toEqual([]);
    const invalid = s.daemon
      .logs()
      .split('\n')
      .filter((l) => l.includes('"msg":"invalid record ignored"'))
      .map((l) => JSON.parse(l));
    // (The first start's PDS backfill may read the same records again: each is refused the same way.)
    expect([...new Set(invalid.map((l) => l.collection))].sort()).toEqual([
      'sh.tangled.repo',
      'sh.tangled.repo.collaborator',
      'sh.tangled.spindle.member',
    ]);
    for (const l of invalid) expect(l.err).toMatch(/invalid sh\.tangled\./);
  }, 30_000);

  it('backfills from the PDS when its cursor is older than Jetstream keeps, and serves what it missed', async () => {
    s = await startStack();
    await waitFor(() => s!.jetstream.connected > 0, 'the jetstream connection');
    expect(await s.daemon.stop()).toBe(0);
    // Down for two days: Jetstream has forgotten what happened meanwhile; the PDS has it.
    s.jetstream.retentionUs = 24 * 3600 * 1_000_000;
    const k = await newKnot();
    s.pds.putRecord(OWNER, 'sh.tangled.repo', rkey(), repoRecord('while-away', k.host));
    const db = openDatabase(s.db);
    new CursorStore(db).set('jetstream', BigInt(Date.now() - 48 * 3600 * 1000) * 1000n);
    db.close();
    await s.restart();
    await waitFor(() => k.connected > 0, 'the knot of the repo created while away');
    expect(s.daemon.logs()).toMatch(
      /"reason":"cursor too old".*"msg":"jetstream cannot resume; backfilling from PDSes"/,
    );
  }, 30_000);
});
