/**
 * Restarts of the real daemon: no workflow stays pending or running forever (§16.7), and an
 * appview that resumes from its cursor receives every status after it exactly once per rkey,
 * across the restart (§17.13).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { AppviewEvents } from '../fakes/appview.ts';
import { onboard, pipelineRecord, rkey, type Stack, startStack, stubWorkflow } from './support/stack.ts';
import { waitFor } from './support/wait.ts';

let s: Stack | undefined;
afterAll(async () => {
  await s?.close();
});

describe('a daemon killed mid-run', () => {
  it('fails the orphaned workflows with "treadle restarted", and a resuming appview sees each status once', async () => {
    s = await startStack();
    const app = new AppviewEvents();
    await app.connect(s.daemon.base);
    await onboard(s);
    const done = rkey();
    s.knot.emit('sh.tangled.pipeline', done, pipelineRecord(s.knot.host, [{ name: 'quick.yml' }]));
    await waitFor(() => app.latest(done)['quick.yml']?.status === 'success', 'the first pipeline');
    const pipeline = rkey();
    s.knot.emit(
      'sh.tangled.pipeline',
      pipeline,
      pipelineRecord(s.knot.host, [{ name: 'long.yml', raw: stubWorkflow('success', '60s') }]),
    );
    await waitFor(() => app.latest(pipeline)['long.yml']?.status === 'running', 'the running status');
    const seen = app.frames.length;
    await app.close();
    await s.daemon.kill();

    // A second appview joins late, from the very first event's cursor.
    const late = new AppviewEvents({ cursor: 1n });
    await s.restart();
    await app.connect(s.daemon.base);
    await late.connect(s.daemon.base);
    await waitFor(() => app.latest(pipeline)['long.yml']?.status === 'failed', 'the restart failure', 20_000);
    const failed = app.latest(pipeline)['long.yml']!;
    expect(failed.error).toBe('treadle restarted');
    expect(app.history(pipeline, 'long.yml')).toEqual(['pending', 'running', 'failed']);
    // The resumed client got exactly the statuses written after its cursor, none twice.
    const rkeys = app.frames.map((f) => JSON.parse(f).rkey);
    expect(new Set(rkeys).size).toBe(rkeys.length);
    expect(app.frames.length).toBe(seen + 1);
    await waitFor(() => late.frames.length === app.frames.length, 'the late client to catch up');
    expect(late.frames).toEqual(app.frames);
    // The knot is followed again, from its stored cursor (rewound), and the replay runs nothing twice.
    await waitFor(() => s!.knot.connected > 0, 'the knot reconnect');
    expect(s.knot.connections.at(-1)).toMatch(/^\/events\?cursor=\d+$/);
    const cursor = BigInt(s.knot.connections.at(-1)!.split('=')[1]!);
    // The rewound cursor does replay the killed pipeline's frame…
    expect(s.knot.rows.filter((r) => r.rkey === pipeline && r.created > cursor)).toHaveLength(1);
    const frozen = app.frames.length;
    // …and a pipeline sent after them runs, while they add nothing: no status, no new rkey.
    const sentinel = rkey();
    s.knot.emit('sh.tangled.pipeline', sentinel, pipelineRecord(s.knot.host, [{ name: 'quick.yml' }]));
    await waitFor(() => app.latest(sentinel)['quick.yml']?.status === 'success', 'the sentinel pipeline');
    const added = app.frames.slice(frozen).map((f) => JSON.parse(f));
    expect(
      added.filter((f) => f.rkey === sentinel || String(f.event?.pipeline).endsWith(`/${sentinel}`)),
    ).toHaveLength(added.length);
    expect(app.history(done, 'quick.yml')).toEqual(['pending', 'running', 'success']);
    expect(app.history(pipeline, 'long.yml')).toEqual(['pending', 'running', 'failed']);
    await app.close();
    await late.close();
  }, 60_000);
});
