import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { BuildRunner, BuildStatus } from '../../providers/runner.ts';
import { recordPushPipeline } from '../../test/support/pipelines.ts';
import { tempDir } from '../../test/support/temp.ts';
import { waitFor } from '../../test/support/wait.ts';
import { type Db, openDatabase } from '../db/database.ts';
import { EventStore } from '../db/event-store.ts';
import { PipelineStore } from '../db/pipeline-store.ts';
import { QueueStore } from '../db/queue-store.ts';
import { UnitOfWork } from '../db/unit-of-work.ts';
import { EventLog } from '../events/index.ts';
import { createLogger } from '../logger.ts';
import { type Delivery, Queue, type QueueMessage } from '../queue/index.ts';
import { Dispatcher } from './dispatch.ts';
import type { DispatchMessage } from './starter.ts';
import { StatusWriter } from './status-writer.ts';

const key = { knot: 'knot.example.com', rkey: '3kpipe', name: 'ci.yml' };
const CANCELLED = { status: 'cancelled', error: 'User canceled the workflow', exitCode: -1 };

let db: Db;
let cleanup = () => {};
afterEach(() => {
  db?.close();
  cleanup();
});

/** A runner whose trigger waits until `release()`, and which records what it was asked. */
class GatedRunner implements BuildRunner {
  readonly name = 'gated';
  readonly pushesProgress = false;
  readonly calls: string[] = [];
  state: BuildStatus['state'] = 'running';
  private open!: () => void;
  private readonly gate = new Promise<void>((resolve) => {
    this.open = resolve;
  });

  release(): void {
    this.open();
  }

  async trigger(): Promise<string> {
    this.calls.push('trigger');
    await this.gate;
    return 'build-1';
  }

  async status(): Promise<BuildStatus> {
    this.calls.push('status');
    return { state: this.state };
  }

  async cancel(buildId: string): Promise<void> {
    this.calls.push(`cancel ${buildId}`);
    this.state = 'cancelled';
  }

  async *logs(): AsyncIterable<never> {}
}

function setup() {
  const t = tempDir();
  cleanup = t.cleanup;
  db = openDatabase(join(t.dir, 'treadle.db'));
  const store = new PipelineStore(db);
  const uow = new UnitOfWork(db);
  const events = new EventLog(new EventStore(db), { uow });
  const queue = new Queue(new QueueStore(db), createLogger('silent'), {}, uow);
  // The clock moves a second per read, so no status has to wait for the next second.
  let now = Date.UTC(2026, 10, 23, 12, 0, 0);
  const statuses = new StatusWriter({ store, events, queue, uow, clock: () => (now += 1000) });
  const runner = new GatedRunner();
  recordPushPipeline(store, key, { runner: 'gated', repoDid: null });
  statuses.write(key, { status: 'pending' });
  const dispatcher = new Dispatcher({
    store,
    statuses,
    runners: new Map([['gated', runner]]),
    log: createLogger('silent'),
    dev: true,
    pollIntervalMs: 1000,
    maxAttempts: 3,
    logs: { attach: () => {} },
  });
  const holds: number[] = [];
  const delivery: Delivery = {
    attempt: 1,
    hold: (ms) => holds.push(ms),
    signal: new AbortController().signal,
  };
  const message = { payload: key } as QueueMessage<DispatchMessage>;
  return { store, runner, holds, handle: () => dispatcher.handle(message, delivery) };
}

describe('Dispatcher cancel', () => {
  it('never starts a build for a workflow cancelled before dispatch', async () => {
    const t = setup();
    t.runner.release();
    expect(t.store.requestCancel(key, 'did:plc:owner')).toBe(true);
    await t.handle();
    expect(t.runner.calls).toEqual([]);
    expect(t.store.workflow(key)).toMatchObject(CANCELLED);
  });

  it('cancels the build a trigger in flight returns once it returns, without waiting for the next poll', async () => {
    const t = setup();
    const handling = t.handle();
    await waitFor(() => t.runner.calls.length === 1, 'the trigger in flight');
    expect(t.runner.calls).toEqual(['trigger']);
    expect(t.store.requestCancel(key, 'cli')).toBe(true);
    expect(t.store.requestCancel(key, 'cli')).toBe(false); // the first request stands
    t.runner.release();
    await handling;
    expect(t.runner.calls).toEqual(['trigger', 'status', 'cancel build-1', 'status']);
    expect(t.store.workflow(key)).toMatchObject({ ...CANCELLED, buildId: 'build-1' });
    expect(t.holds).toEqual([]);
  });

  it('keeps the real outcome of a build that finished before the cancel reached it', async () => {
    const t = setup();
    t.runner.release();
    await t.handle(); // triggered, running
    t.runner.state = 'succeeded';
    t.runner.cancel = async () => {
      t.runner.calls.push('cancel refused');
    };
    t.store.requestCancel(key, 'cli');
    await t.handle();
    expect(t.runner.calls.slice(-2)).toEqual(['cancel refused', 'status']);
    expect(t.store.workflow(key)).toMatchObject({ status: 'success', error: null });
    expect(t.store.requestCancel(key, 'cli')).toBe(false);
  });
});
