import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { recordPushPipeline } from '../../test/support/pipelines.ts';
import { tempDir } from '../../test/support/temp.ts';
import { type Db, openDatabase } from '../db/database.ts';
import { EventStore } from '../db/event-store.ts';
import { PipelineStore } from '../db/pipeline-store.ts';
import { QueueStore } from '../db/queue-store.ts';
import { UnitOfWork } from '../db/unit-of-work.ts';
import { EventLog } from '../events/index.ts';
import { createLogger } from '../logger.ts';
import { Queue } from '../queue/index.ts';
import { WORKFLOW_STATUS_TOPIC, type WorkflowStatusChanged } from './pipeline.ts';
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
  const uow = new UnitOfWork(db);
  const events = new EventLog(new EventStore(db), { uow });
  const queue = new Queue(new QueueStore(db), createLogger('silent'), {}, uow);
  let now = start;
  const writer = new StatusWriter({ store, events, queue, uow, clock: () => now });
  recordPushPipeline(store, key, { runner: 'stub', repoDid: 'did:plc:repo' });
  const frames = () => events.readAfter(-1n, 100).map((e) => JSON.parse(e.frame));
  /** The messages on workflow.status, in publish order. */
  const published = () =>
    (
      db
        .prepare(`SELECT id, payload FROM queue_messages WHERE topic = ? ORDER BY "offset"`)
        .all(WORKFLOW_STATUS_TOPIC) as Array<{ id: string; payload: string }>
    ).map((r) => ({ id: r.id, ...(JSON.parse(r.payload) as WorkflowStatusChanged) }));
  const written = () => published().map((m) => m.status);
  return { writer, store, queue, events, frames, published, written, setNow: (ms: number) => (now = ms) };
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
    expect(t.written()).toEqual(['pending']);
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

  it('publishes each status written on workflow.status, with the pipeline it belongs to', () => {
    const t = setup(Date.UTC(2026, 10, 23, 12, 0, 0));
    t.writer.write(key, { status: 'pending' });
    t.setNow(Date.UTC(2026, 10, 23, 12, 0, 1));
    t.writer.write(key, { status: 'running' });
    t.writer.write(key, { status: 'failed' }); // same second: not written
    t.setNow(Date.UTC(2026, 10, 23, 12, 0, 2));
    t.writer.write(key, { status: 'failed', error: 'tests failed', exitCode: 2 });
    t.writer.write(key, { status: 'success' }); // stale: not written
    const frames = t.frames();
    const messages = t.published();
    expect(messages.map((m) => m.status)).toEqual(['pending', 'running', 'failed']);
    expect(messages.map((m) => m.rkey)).toEqual(frames.map((f) => f.rkey));
    expect(messages[2]).toEqual({
      id: 'ci.yml/failed',
      pipeline: 'at://did:web:knot.example.com/sh.tangled.pipeline/3kpipe',
      knot: 'knot.example.com',
      repo: 'did:plc:repo',
      repoName: 'did:plc:owner/hello',
      trigger: 'push',
      ref: 'refs/heads/main',
      commit: 'a'.repeat(40),
      workflow: 'ci.yml',
      status: 'failed',
      createdAt: '2026-11-23T12:00:02Z',
      rkey: frames[2].rkey,
      error: 'tests failed',
      exitCode: 2,
    });
  });

  it('writes the frame, the row and the message together or not at all', () => {
    const t = setup(Date.UTC(2026, 10, 23, 12, 0, 0));
    const publish = t.queue.publish.bind(t.queue);
    t.queue.publish = () => {
      throw new Error('disk full');
    };
    expect(() => t.writer.write(key, { status: 'pending' })).toThrow('disk full');
    expect(t.frames()).toEqual([]);
    expect(t.store.workflow(key)?.status).toBeNull();
    t.queue.publish = publish;
    const setStatus = t.store.setStatus.bind(t.store);
    t.store.setStatus = () => {
      throw new Error('constraint');
    };
    expect(() => t.writer.write(key, { status: 'pending' })).toThrow('constraint');
    expect(t.frames()).toEqual([]);
    expect(t.written()).toEqual([]);
    t.store.setStatus = setStatus;
    expect(t.writer.write(key, { status: 'pending' })).toMatchObject({ written: true });
    expect(t.frames()).toHaveLength(1);
    expect(t.written()).toEqual(['pending']);
  });
});
