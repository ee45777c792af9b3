/**
 * `workflow.status` and `pipeline.started` are durable topics written in the same transaction as
 * each status and pipeline: a consumer in its own group (here, a separate process's queue on the
 * daemon's database file, as an external follower would be) sees every status of every pipeline
 * exactly once, in the order of /events, across a SIGKILL of the daemon and its restart.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { AppviewEvents } from '../fakes/appview.ts';
import { openDatabase } from '../src/db/database.ts';
import { QueueStore } from '../src/db/queue-store.ts';
import { createLogger } from '../src/logger.ts';
import type { PipelineStarted, WorkflowStatusChanged } from '../src/pipelines/pipeline.ts';
import { Queue } from '../src/queue/index.ts';
import { onboard, pipelineRecord, rkey, type Stack, startStack, stubWorkflow } from './support/stack.ts';
import { waitFor } from './support/wait.ts';

let s: Stack | undefined;
let observer: { queue: Queue; close(): Promise<void> } | undefined;
afterAll(async () => {
  await observer?.close();
  await s?.close();
});

interface Seen {
  id: string;
  offset: number;
  payload: WorkflowStatusChanged;
}

/** The status frames an appview received: rkey, pipeline rkey, workflow, status. */
function statusFrames(app: AppviewEvents) {
  return app.frames
    .map((f) => JSON.parse(f))
    .filter((f) => f.nsid === 'sh.tangled.pipeline.status')
    .map((f) => ({
      rkey: f.rkey as string,
      pipeline: (f.event.pipeline as string).split('/').at(-1)!,
      workflow: f.event.workflow as string,
      status: f.event.status as string,
    }));
}

describe('workflow.status, a durable topic', () => {
  it('reaches a consumer once per status, in /events order, across a SIGKILL of the daemon', async () => {
    s = await startStack();
    const db = openDatabase(s.db);
    const queue = new Queue(new QueueStore(db), createLogger('silent'), { pollIntervalMs: 20 });
    const statuses: Seen[] = [];
    const started: PipelineStarted[] = [];
    queue.consume<WorkflowStatusChanged>('workflow.status', 'observer', (m) => {
      statuses.push({ id: m.id, offset: m.offset, payload: m.payload });
    });
    queue.consume<PipelineStarted>('pipeline.started', 'observer', (m) => {
      started.push(m.payload);
    });
    queue.start();
    observer = {
      queue,
      close: async () => {
        await queue.stop(1000);
        db.close();
      },
    };

    const app = new AppviewEvents({ cursor: 1n });
    await app.connect(s.daemon.base);
    await onboard(s);
    const first = rkey();
    s.knot.emit(
      'sh.tangled.pipeline',
      first,
      pipelineRecord(s.knot.host, [
        { name: 'build.yml' },
        { name: 'lint.yml', raw: stubWorkflow('failure', '0s') },
        { name: 'long.yml', raw: stubWorkflow('success', '60s') },
      ]),
    );
    await waitFor(() => app.latest(first)['long.yml']?.status === 'running', 'the long workflow running');
    await app.close();
    await s.daemon.kill();
    await s.restart();
    await app.connect(s.daemon.base);
    await waitFor(
      () => app.latest(first)['long.yml']?.status === 'failed',
      'the restarted workflow failing',
      20_000,
    );
    const second = rkey();
    s.knot.emit('sh.tangled.pipeline', second, pipelineRecord(s.knot.host, [{ name: 'build.yml' }]));
    await waitFor(() => app.latest(second)['build.yml']?.status === 'success', 'the second pipeline');

    // Each workflow ends in one terminal status; how many statuses it took depends on where the
    // kill found it (one still pending then goes straight to failed), so count from /events.
    const terminal = new Set(['success', 'failed', 'timeout', 'cancelled']);
    await waitFor(
      () =>
        ['build.yml', 'lint.yml', 'long.yml'].every((w) => terminal.has(app.latest(first)[w]?.status ?? '')),
      'every workflow of the first pipeline to end',
    );
    const frames = statusFrames(app);
    expect(frames.length).toBeGreaterThanOrEqual(2 * 3 + 3);
    await waitFor(() => statuses.length >= frames.length, 'the consumer to see every status');
    await waitFor(() => started.length >= 2, 'the consumer to see both pipelines start');

    // Exactly once: as many deliveries as statuses, no message twice, the same rkeys as /events.
    expect(statuses).toHaveLength(frames.length);
    expect(new Set(statuses.map((m) => m.offset)).size).toBe(statuses.length);
    expect(statuses.map((m) => m.payload.rkey).sort()).toEqual(frames.map((f) => f.rkey).sort());
    // Per workflow, the consumer sees the statuses in the order the appview does.
    for (const pipeline of [first, second])
      for (const workflow of ['build.yml', 'lint.yml', 'long.yml']) {
        const seen = statuses
          .filter((m) => m.payload.pipeline.endsWith(`/${pipeline}`) && m.payload.workflow === workflow)
          .map((m) => m.payload.status);
        expect(seen, `${pipeline} ${workflow}`).toEqual(app.history(pipeline, workflow));
      }
    expect(app.history(first, 'long.yml')).toEqual(['pending', 'running', 'failed']);

    const failed = statuses.find((m) => m.payload.workflow === 'long.yml' && m.payload.status === 'failed')!;
    expect(failed.id).toBe('long.yml/failed');
    expect(failed.payload).toMatchObject({
      pipeline: `at://did:web:${s.knot.host}/sh.tangled.pipeline/${first}`,
      knot: s.knot.host,
      repo: 'did:plc:owner/hello',
      trigger: 'push',
      ref: 'refs/heads/main',
      error: 'treadle restarted',
      exitCode: -1,
    });
    expect(failed.payload.commit).toMatch(/^[0-9a-f]{40}$/);

    expect(started.map((p) => p.pipeline.split('/').at(-1))).toEqual([first, second]);
    expect(started[0]!.workflows.sort()).toEqual(['build.yml', 'lint.yml', 'long.yml']);
    expect(started[0]!.commit).toBe(failed.payload.commit);
    await app.close();
  }, 90_000);
});
