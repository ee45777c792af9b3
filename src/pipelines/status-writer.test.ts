import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from '../../test/support/temp.ts';
import { type Db, openDatabase } from '../db/database.ts';
import { EventStore } from '../db/event-store.ts';
import { PipelineStore } from '../db/pipeline-store.ts';
import { EventLog } from '../events/index.ts';
import { StatusWriter } from './status-writer.ts';

let db: Db;
let cleanup = () => {};
afterEach(() => {
  db?.close();
  cleanup();
});

const key = { knot: 'knot.example.com', rkey: '3kpipe', name: 'ci.yml' };

function setup(start: number) {
  const t = tempDir();
  cleanup = t.cleanup;
  db = openDatabase(join(t.dir, 'treadle.db'));
  const store = new PipelineStore(db);
  const events = new EventLog(new EventStore(db));
  let now = start;
  const written: string[] = [];
  const writer = new StatusWriter({ store, events, clock: () => now, onWritten: (_k, s) => written.push(s) });
  store.insertWorkflow({ ...key, engine: 'nixery', runner: 'stub', options: '{}' });
  const frames = () => events.readAfter(-1n, 100).map((e) => JSON.parse(e.frame));
  return { writer, store, frames, written, setNow: (ms: number) => (now = ms) };
}

describe('StatusWriter', () => {
  it('writes the stock record shape, dated at the whole second of the write', () => {
    const t = setup(Date.UTC(2026, 10, 23, 12, 0, 5, 900));
    expect(t.writer.write(key, { status: 'pending' })).toMatchObject({ written: true });
    const [f] = t.frames();
    expect(f.nsid).toBe('sh.tangled.pipeline.status');
    expect(f.event).toEqual({
      $type: 'sh.tangled.pipeline.status',
      createdAt: '2026-11-23T12:00:05Z',
      pipeline: 'at://did:web:knot.example.com/sh.tangled.pipeline/3kpipe',
      status: 'pending',
      workflow: 'ci.yml',
    });
    expect(t.written).toEqual(['pending']);
  });

  it("holds a status that would share the previous one's second until the next second", () => {
    const t = setup(Date.UTC(2026, 10, 23, 12, 0, 5, 100));
    t.writer.write(key, { status: 'pending' });
    expect(t.writer.write(key, { status: 'running' })).toEqual({ written: false, waitMs: 900 });
    t.setNow(Date.UTC(2026, 10, 23, 12, 0, 6, 0));
    expect(t.writer.write(key, { status: 'running' })).toMatchObject({ written: true });
    expect(t.frames().map((f) => f.event.createdAt)).toEqual([
      '2026-11-23T12:00:05Z',
      '2026-11-23T12:00:06Z',
    ]);
  });

  it('only moves forward, and a terminal status is final', () => {
    const t = setup(Date.UTC(2026, 10, 23, 12, 0, 0));
    t.writer.write(key, { status: 'running' });
    t.setNow(Date.UTC(2026, 10, 23, 12, 0, 1));
    expect(t.writer.write(key, { status: 'pending' })).toEqual({ written: false, stale: true });
    expect(t.writer.write(key, { status: 'failed', error: 'boom', exitCode: 3 })).toMatchObject({
      written: true,
    });
    t.setNow(Date.UTC(2026, 10, 23, 12, 0, 9));
    expect(t.writer.write(key, { status: 'success' })).toEqual({ written: false, stale: true });
    const last = t.frames().at(-1);
    expect(last.event).toMatchObject({ status: 'failed', error: 'boom', exitCode: 3 });
    expect(t.store.workflow(key)).toMatchObject({ status: 'failed', error: 'boom', exitCode: 3 });
    expect(t.frames()).toHaveLength(2);
  });

  it('gives every status a distinct TID rkey', () => {
    const t = setup(Date.UTC(2026, 10, 23, 12, 0, 0));
    t.writer.write(key, { status: 'pending' });
    t.setNow(Date.UTC(2026, 10, 23, 12, 0, 1));
    t.writer.write(key, { status: 'running' });
    t.setNow(Date.UTC(2026, 10, 23, 12, 0, 2));
    t.writer.write(key, { status: 'success' });
    const rkeys = t.frames().map((f) => f.rkey);
    expect(new Set(rkeys).size).toBe(3);
    for (const r of rkeys) expect(r).toMatch(/^[234567a-z]{13}$/);
  });
});
