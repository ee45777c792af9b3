import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { FakeKnot } from '../../fakes/knot.ts';
import { tempDir } from '../../test/support/temp.ts';
import { waitFor } from '../../test/support/wait.ts';
import { CursorStore } from '../db/cursor-store.ts';
import { type Db, openDatabase } from '../db/database.ts';
import { createLogger, type Logger } from '../logger.ts';
import { KnotConsumers } from './knot-consumer.ts';
import type { KnotFrame } from './knot-frame.ts';

let db: Db;
let knots: KnotConsumers | undefined;
const fakes: FakeKnot[] = [];
let cleanup = () => {};

afterEach(async () => {
  await knots?.stop();
  for (const f of fakes.splice(0)) await f.close();
  db?.close();
  cleanup();
});

function consumers(
  received: Array<{ knot: string; frame: KnotFrame }>,
  limits: {
    maxFrameBytes?: number;
    oversizeAllowanceBytes?: number;
    log?: Logger;
    /** Throws for the frames it names, every time. */
    poison?: Set<string>;
    attempts?: Map<string, number>;
  } = {},
): KnotConsumers {
  const t = tempDir();
  cleanup = t.cleanup;
  db = openDatabase(join(t.dir, 'treadle.db'));
  knots = new KnotConsumers({
    dev: true,
    cursors: new CursorStore(db),
    log: limits.log ?? createLogger('silent'),
    maxFrameBytes: limits.maxFrameBytes,
    oversizeAllowanceBytes: limits.oversizeAllowanceBytes,
    onFrame: (knot, frame) => {
      limits.attempts?.set(frame.rkey, (limits.attempts.get(frame.rkey) ?? 0) + 1);
      if (limits.poison?.has(frame.rkey)) throw new Error(`cannot handle ${frame.rkey}`);
      received.push({ knot, frame });
    },
    rewindNs: 1_000_000_000n,
    minBackoffMs: 50,
    maxBackoffMs: 200,
  });
  return knots;
}

async function fakeKnot(options: Parameters<typeof FakeKnot.start>[0] = {}): Promise<FakeKnot> {
  const k = await FakeKnot.start(options);
  fakes.push(k);
  return k;
}

const PIPELINE = { triggerMetadata: { kind: 'push' }, workflows: [] };

describe('KnotConsumers', () => {
  it('connects without a cursor the first time and hands on only the frames it wants', async () => {
    const received: Array<{ knot: string; frame: KnotFrame }> = [];
    const k = await fakeKnot();
    await consumers(received).reconcile([k.host]);
    await waitFor(() => k.connected === 1, 'the connection');
    expect(k.connections).toEqual(['/events']);
    k.emit('sh.tangled.pipeline', 'p1', PIPELINE);
    k.emit('sh.tangled.knot.memberUpdate', 'm1', {});
    const r1 = k.emit('sh.tangled.git.refUpdate', 'r1', { ref: 'refs/heads/main' });
    // The cursor moves past every frame, wanted or not: once it is at r1, m1 was passed over.
    await waitFor(() => new CursorStore(db).get(`knot:${k.host}`) === r1, 'the cursor at r1');
    expect(received.map((r) => [r.knot, r.frame.nsid, r.frame.rkey])).toEqual([
      [k.host, 'sh.tangled.pipeline', 'p1'],
      [k.host, 'sh.tangled.git.refUpdate', 'r1'],
    ]);
    expect(typeof received[0]!.frame.created).toBe('bigint');
  });

  it('skips malformed frames and keeps processing', async () => {
    const received: Array<{ knot: string; frame: KnotFrame }> = [];
    const k = await fakeKnot();
    await consumers(received).reconcile([k.host]);
    await waitFor(() => k.connected === 1, 'the connection');
    for (const bad of [
      'not json',
      '[]',
      '{"rkey":1,"nsid":"sh.tangled.pipeline","event":{}}',
      '{"rkey":"x","nsid":"sh.tangled.pipeline","event":"str"}',
    ]) {
      k.sendRaw(bad);
    }
    k.emit('sh.tangled.pipeline', 'after', PIPELINE);
    await waitFor(() => received.length === 1, 'the valid frame');
    expect(received[0]!.frame.rkey).toBe('after');
  });

  it('resumes from its stored cursor, rewound, after the knot drops the connection', async () => {
    const received: Array<{ knot: string; frame: KnotFrame }> = [];
    const k = await fakeKnot();
    await consumers(received).reconcile([k.host]);
    await waitFor(() => k.connected === 1, 'the connection');
    const created = k.emit('sh.tangled.pipeline', 'p1', PIPELINE);
    await waitFor(() => received.length === 1, 'p1');
    k.dropConnections();
    await waitFor(() => k.connected === 0, 'the drop');
    k.emit('sh.tangled.pipeline', 'p2', PIPELINE); // written while we were away
    await waitFor(() => k.connections.length === 2 && k.connected === 1, 'the reconnection');
    expect(k.connections[1]).toBe(`/events?cursor=${created - 1_000_000_000n}`);
    await waitFor(() => received.some((r) => r.frame.rkey === 'p2'), 'p2 replayed');
    // The rewind replays p1 too; intake deduplicates it.
    expect(received.map((r) => r.frame.rkey)).toEqual(['p1', 'p1', 'p2']);
  });

  it('stores our clock as the cursor for legacy knots that send no created', async () => {
    const received: Array<{ knot: string; frame: KnotFrame }> = [];
    const k = await fakeKnot({ legacy: true });
    await consumers(received).reconcile([k.host]);
    await waitFor(() => k.connected === 1, 'the connection');
    const before = BigInt(Date.now() - 10) * 1_000_000n; // our ns clock may trail Date.now() by a few ms
    k.emit('sh.tangled.pipeline', 'p1', PIPELINE);
    await waitFor(() => received.length === 1, 'p1');
    // Stored after the handler: wait for it to move past where the connection began.
    const stored = (await waitFor(() => {
      const c = new CursorStore(db).get(`knot:${k.host}`);
      return c !== undefined && c >= before ? c : undefined;
    }, 'the cursor stored'))!;
    expect(received[0]!.frame.created).toBeUndefined();
    expect(stored >= before).toBe(true);
  });

  it('closes the stream of a knot no repo needs', async () => {
    const received: Array<{ knot: string; frame: KnotFrame }> = [];
    const a = await fakeKnot();
    const b = await fakeKnot();
    const c = consumers(received);
    await c.reconcile([a.host, b.host]);
    await waitFor(() => a.connected === 1 && b.connected === 1, 'both connections');
    await c.reconcile([b.host]);
    await waitFor(() => a.connected === 0, 'a closed');
    expect(c.knots).toEqual([b.host]);
    expect(b.connected).toBe(1);
  });

  it('skips exactly an oversized frame: the frames before and right after it arrive (replays are harmless)', async () => {
    const received: Array<{ knot: string; frame: KnotFrame }> = [];
    const lines: string[] = [];
    const log = pino({ level: 'info' }, { write: (l: string) => lines.push(l) });
    const k = await fakeKnot();
    await consumers(received, { maxFrameBytes: 2048, oversizeAllowanceBytes: 16_384, log }).reconcile([
      k.host,
    ]);
    await waitFor(() => k.connected === 1, 'the connection');
    k.emit('sh.tangled.pipeline', 'before', PIPELINE);
    const big = k.emit('sh.tangled.pipeline', 'big', { ...PIPELINE, pad: 'x'.repeat(8000) });
    k.emit('sh.tangled.pipeline', 'after', PIPELINE);
    await waitFor(() => received.some((r) => r.frame.rkey === 'after'), 'the frame after the big one');
    // Over even the allowance: its place cannot be read, so the stream resumes from now.
    k.emit('sh.tangled.pipeline', 'huge', { ...PIPELINE, pad: 'x'.repeat(40_000) });
    await waitFor(() => lines.some((l) => l.includes('without its place')), 'the second skip');
    await waitFor(() => k.connected === 1, 'the reconnect');
    k.emit('sh.tangled.pipeline', 'later', PIPELINE);
    await waitFor(() => received.some((r) => r.frame.rkey === 'later'), 'a frame after the huge one');
    const rkeys = received.map((r) => r.frame.rkey);
    expect(rkeys).toContain('before'); // possibly twice: a reconnect rewinds, and replays are harmless
    expect(rkeys).not.toContain('big');
    expect(rkeys).not.toContain('huge');
    expect(rkeys).toContain('after');
    expect(rkeys).toContain('later');
    const skipped = lines
      .map((l) => JSON.parse(l))
      .filter((l) => l.msg === 'knot frame over the size limit skipped');
    expect(skipped).toHaveLength(1);
    expect(skipped[0]).toMatchObject({ rkey: 'big', created: big.toString() });
    expect(skipped[0].bytes).toBeGreaterThan(8000);
  });

  it('skips a frame its handler fails on five times, logging it whole, and never retries it after a reconnect', async () => {
    const received: Array<{ knot: string; frame: KnotFrame }> = [];
    const lines: string[] = [];
    const log = pino({ level: 'info' }, { write: (l: string) => lines.push(l) });
    const attempts = new Map<string, number>();
    const k = await fakeKnot();
    await consumers(received, { log, poison: new Set(['poison']), attempts }).reconcile([k.host]);
    await waitFor(() => k.connected === 1, 'the connection');
    k.emit('sh.tangled.pipeline', 'first', PIPELINE);
    k.emit('sh.tangled.pipeline', 'poison', { ...PIPELINE, marker: 'the-poison-frame' });
    k.emit('sh.tangled.pipeline', 'next', PIPELINE);
    await waitFor(
      () => received.some((r) => r.frame.rkey === 'next'),
      'the frame after the poison one',
      20_000,
    );
    expect(attempts.get('poison')).toBe(5);
    const skipped = lines.map((l) => JSON.parse(l)).filter((l) => l.msg?.includes('skipping it'));
    expect(skipped).toHaveLength(1);
    expect(skipped[0]).toMatchObject({ level: 50, failures: 5 });
    expect(skipped[0].frame).toContain('the-poison-frame');
    // A reconnect rewinds past it again: it is passed by, not failed five times more.
    k.dropConnections();
    await waitFor(() => k.connected === 0, 'the drop');
    k.emit('sh.tangled.pipeline', 'last', PIPELINE);
    await waitFor(() => received.some((r) => r.frame.rkey === 'last'), 'a frame after the reconnect');
    expect(attempts.get('poison')).toBe(5);
  });

  it('ignores binary frames, keeps its cursor from going backwards or far ahead, and resumes after a 1013 close', async () => {
    const received: Array<{ knot: string; frame: KnotFrame }> = [];
    const k = await fakeKnot();
    await consumers(received).reconcile([k.host]);
    await waitFor(() => k.connected === 1, 'the connection');
    const cursor = () => new CursorStore(db).get(`knot:${k.host}`);
    k.sendBinary(Buffer.from('{"rkey":"bin","nsid":"sh.tangled.pipeline","event":{}}'));
    const first = k.emit('sh.tangled.pipeline', 'p1', PIPELINE);
    await waitFor(() => cursor() === first, 'the cursor at p1');
    expect(received.map((r) => r.frame.rkey)).toEqual(['p1']);
    // A frame dated before the cursor is handled, and the cursor stays.
    k.sendRaw(`{"created":${first - 60_000_000_000n},"event":{},"nsid":"sh.tangled.pipeline","rkey":"old"}`);
    // One dated a day ahead is handled too, but the cursor does not jump there.
    const future = BigInt(Date.now() + 86_400_000) * 1_000_000n;
    k.sendRaw(`{"created":${future},"event":{},"nsid":"sh.tangled.pipeline","rkey":"future"}`);
    const second = k.emit('sh.tangled.pipeline', 'p2', PIPELINE);
    await waitFor(() => received.some((r) => r.frame.rkey === 'p2'), 'p2');
    expect(received.map((r) => r.frame.rkey)).toEqual(['p1', 'old', 'future', 'p2']);
    const at = cursor()!;
    expect(at >= second && at < future).toBe(true);
    // A busy knot closes with 1013: treadle comes back and reads what was sent meanwhile.
    k.closeConnections(1013, 'try again later');
    await waitFor(() => k.connected === 0, 'the close');
    k.emit('sh.tangled.pipeline', 'p3', PIPELINE);
    await waitFor(() => received.some((r) => r.frame.rkey === 'p3'), 'p3 after the reconnect');
    // Resumed exactly, not rewound: a rewind would hand an overloaded knot the same backlog again.
    expect(k.connections.at(-1)).toBe(`/events?cursor=${at}`);
  });

  it('reads a 2026 knot’s whole backlog after a reconnect, also from one that closes 1013 on large backlogs', async () => {
    for (const overloadAt of [undefined, 120]) {
      const received: Array<{ knot: string; frame: KnotFrame }> = [];
      const k = await fakeKnot({ overloadAt });
      await consumers(received).reconcile([k.host]);
      await waitFor(() => k.connected === 1, 'the connection');
      k.emit('sh.tangled.pipeline', 'first', PIPELINE);
      await waitFor(() => received.length === 1, 'the first frame');
      k.dropConnections();
      await waitFor(() => k.connected === 0, 'the drop');
      const backlog = Array.from({ length: 350 }, (_, i) => `b${i}`);
      for (const r of backlog) k.emit('sh.tangled.pipeline', r, PIPELINE);
      await waitFor(
        () => backlog.every((r) => received.some((x) => x.frame.rkey === r)),
        `the backlog (overloadAt ${overloadAt})`,
        15_000,
      );
      const counts = new Map<string, number>();
      for (const r of received) counts.set(r.frame.rkey, (counts.get(r.frame.rkey) ?? 0) + 1);
      // Nothing is lost, and after a 1013 nothing is asked for twice.
      expect(backlog.filter((r) => counts.get(r) !== 1)).toEqual([]);
      await knots?.stop();
      knots = undefined;
      db.close();
      cleanup();
    }
  });

  it('rides out a legacy knot whose clock runs 30 s behind ours: events sent while away arrive', async () => {
    const received: Array<{ knot: string; frame: KnotFrame }> = [];
    const k = await fakeKnot({ legacy: true, clockSkewMs: -30_000 });
    await consumers(received).reconcile([k.host]);
    await waitFor(() => k.connected === 1, 'the connection');
    k.emit('sh.tangled.pipeline', 'p1', PIPELINE);
    await waitFor(() => received.length === 1, 'p1');
    k.dropConnections();
    await waitFor(() => k.connected === 0, 'the drop');
    k.emit('sh.tangled.pipeline', 'p2', PIPELINE); // dated 30 s before our cursor, by the knot's clock
    await waitFor(() => received.some((r) => r.frame.rkey === 'p2'), 'p2 after the reconnect');
  });
});
