import { readFileSync } from 'node:fs';
/**
 * The real daemon against a fake Jetstream, PLC + PDS, knot and appview: spindle protocol §17
 * items 1–2, 5, 7–20 and 25, and the bad-input acceptance list.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { AppviewEvents, readLogs } from '../fakes/appview.ts';
import {
  OWNER,
  onboard,
  pipelineRecord,
  rkey,
  type Stack,
  startStack,
  stubWorkflow,
  type WorkflowSpec,
} from './support/stack.ts';
import { waitFor } from './support/wait.ts';

const TID = /^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$/;
const PLAIN = 'engine: docker\nsteps:\n  - name: build\n    command: make\n';

let s: Stack;
let app: AppviewEvents;

beforeAll(async () => {
  s = await startStack({ TREADLE_PING_INTERVAL: '300ms' });
  app = new AppviewEvents();
  await app.connect(s.daemon.base);
  await onboard(s);
}, 30_000);

afterAll(async () => {
  await app?.close();
  await s?.close();
});

/** Has the knot send a pipeline for the served repo; returns its rkey. */
function emitPipeline(workflows: WorkflowSpec[]): string {
  const key = rkey();
  s.knot.emit('sh.tangled.pipeline', key, pipelineRecord(s.knot.host, workflows));
  return key;
}

function statusesOf(pipeline: string) {
  return [...app.statuses.values()].filter((r) => r.pipelineRkey === pipeline);
}

async function finished(pipeline: string, workflows: number): Promise<void> {
  const terminal = new Set(['success', 'failed', 'timeout', 'cancelled']);
  await waitFor(
    () => {
      const latest = Object.values(app.latest(pipeline));
      return latest.length === workflows && latest.every((r) => terminal.has(r.status));
    },
    `pipeline ${pipeline} to finish`,
    20_000,
  );
}

describe('HTTP surface (§17.1, §17.2)', () => {
  it('answers sh.tangled.owner with the configured DID and / with 200', async () => {
    const owner = await fetch(`${s.daemon.base}/xrpc/sh.tangled.owner`);
    expect(owner.status).toBe(200);
    expect(await owner.text()).toBe(`{"owner":"${OWNER}"}\n`);
    expect((await fetch(`${s.daemon.base}/`)).status).toBe(200);
  });
});

describe('knot connection (§17.5)', () => {
  it('connects to ws://<knot>/events with no query or only a numeric cursor', () => {
    expect(s.knot.connections.length).toBeGreaterThan(0);
    for (const url of s.knot.connections) expect(url).toMatch(/^\/events(\?cursor=\d+)?$/);
  });
});

describe('a pipeline end to end (§17.7, §17.11, §17.14, §17.25)', () => {
  let pipeline: string;

  beforeAll(async () => {
    pipeline = emitPipeline([
      { name: 'ok.yml', raw: stubWorkflow('success', '300ms', ['build', 'test']) },
      { name: 'bad.yml', raw: stubWorkflow('failure', '100ms') },
    ]);
    await finished(pipeline, 2);
  }, 30_000);

  it('sends pending, running and one terminal status per workflow, in that order', () => {
    expect(app.history(pipeline, 'ok.yml')).toEqual(['pending', 'running', 'success']);
    expect(app.history(pipeline, 'bad.yml')).toEqual(['pending', 'running', 'failed']);
    const failed = app.latest(pipeline)['bad.yml']!;
    expect(failed.error).toBe('exit code 1');
    // As sent, not as the appview would default a missing one (to 0).
    expect(failed.wireExitCode).toBe(1);
  });

  it('frames each status as stock does, with the knot AT-URI, a fresh TID and an RFC 3339 createdAt', () => {
    const frames = app.frames
      .map((f) => JSON.parse(f))
      .filter((f) => f.event.pipeline?.endsWith(`/${pipeline}`));
    expect(frames).toHaveLength(6);
    for (const f of frames) {
      expect(Object.keys(f).sort()).toEqual(['created', 'event', 'nsid', 'rkey']);
      expect(f.nsid).toBe('sh.tangled.pipeline.status');
      expect(f.rkey).toMatch(TID);
      expect(f.event.pipeline).toBe(`at://did:web:${s.knot.host}/sh.tangled.pipeline/${pipeline}`);
      expect(f.event.createdAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    }
    expect(new Set(frames.map((f) => f.rkey)).size).toBe(6);
  });

  it('announces the pipeline on /events before its statuses (2026 §4.1)', () => {
    const nsids = app.frames
      .map((f) => JSON.parse(f))
      .filter((f) => f.rkey === pipeline || f.event.pipeline?.endsWith(`/${pipeline}`));
    expect(nsids[0].nsid).toBe('sh.tangled.pipeline');
    expect(nsids[0].event.triggerMetadata.repo.repo).toBe('hello');
  });

  it('never puts two statuses of a workflow in one createdAt second, and never dates one after its frame', () => {
    for (const name of ['ok.yml', 'bad.yml']) {
      const seconds = statusesOf(pipeline)
        .filter((r) => r.workflow === name)
        .sort((a, b) => a.id - b.id)
        .map((r) => r.created);
      expect(new Set(seconds).size).toBe(seconds.length);
      expect([...seconds].sort()).toEqual(seconds);
    }
    for (const f of app.frames.map((t) => JSON.parse(t))) {
      if (f.nsid !== 'sh.tangled.pipeline.status') continue;
      // createdAt (whole seconds) is never later than the frame's `created` (ns).
      expect(BigInt(Date.parse(f.event.createdAt)) * 1_000_000n <= BigInt(f.created)).toBe(true);
    }
  });

  it('sends only JSON text frames with string rkey, string nsid and object event', () => {
    expect(app.fatal).toBe(0);
    expect(app.binaryFrames).toBe(0);
    for (const text of app.frames) {
      const f = JSON.parse(text);
      expect(typeof f.rkey).toBe('string');
      expect(typeof f.nsid).toBe('string');
      expect(typeof f.event).toBe('object');
    }
  });

  it('does not run a replayed pipeline again or mint new status rkeys (§16.5)', async () => {
    const ofPipeline = () =>
      app.frames.filter((f) => {
        const frame = JSON.parse(f);
        return frame.rkey === pipeline || String(frame.event?.pipeline).endsWith(`/${pipeline}`);
      }).length;
    const before = ofPipeline();
    const connections = s.knot.connections.length;
    s.knot.dropConnections();
    await waitFor(
      () => s.knot.connections.length > connections && s.knot.connected > 0,
      'the knot reconnect',
    );
    // The reconnect rewinds its cursor, so the knot replays the pipeline frame.
    expect(s.knot.connections.at(-1)).toMatch(/^\/events\?cursor=\d+$/);
    const cursor = BigInt(s.knot.connections.at(-1)!.split('=')[1]!);
    expect(s.knot.rows.some((r) => r.rkey === pipeline && r.created > cursor)).toBe(true);
    s.knot.emit('sh.tangled.pipeline', pipeline, pipelineRecord(s.knot.host, [{ name: 'ok.yml' }]));
    // A sentinel after the replays: once it has run, the replays have been handled too.
    const sentinel = emitPipeline([{ name: 'sentinel.yml' }]);
    await waitFor(() => app.history(sentinel, 'sentinel.yml').includes('success'), 'the sentinel pipeline');
    expect(ofPipeline()).toBe(before);
  });

  it('serves the finished logs in write order, as valid LogLines, then closes 1000 (§17.16, §17.18)', async () => {
    const logs = await readLogs(s.daemon.base, { knot: s.knot.host, rkey: pipeline, workflow: 'ok.yml' });
    expect(logs.closeCode).toBe(1000);
    expect(logs.dropped).toBe(0);
    expect(logs.steps.map((st) => [st.title, st.ended, st.collapsed])).toEqual([
      ['build', true, false],
      ['test', true, false],
    ]);
    expect(logs.steps[0]!.body).toEqual(['[stub] would run: echo build']);
    const started = new Set<number>();
    for (const l of logs.lines) {
      expect(['data', 'control']).toContain(l.kind);
      expect(typeof l.content).toBe('string');
      expect(Number.isNaN(Date.parse(l.time as string))).toBe(false);
      expect(Number.isInteger(l.step_id)).toBe(true);
      if (l.kind === 'control') {
        expect(['start', 'end']).toContain(l.step_status);
        expect([undefined, 0, 1]).toContain(l.step_kind);
        if (l.step_status === 'start') started.add(l.step_id as number);
      } else {
        expect(['stdout', 'stderr']).toContain(l.stream);
        expect(started.has(l.step_id as number)).toBe(true);
      }
    }
    const failed = await readLogs(s.daemon.base, { knot: s.knot.host, rkey: pipeline, workflow: 'bad.yml' });
    expect(failed.steps[0]!.body).toContain('exit code 1');
  });
});

describe('workflows that cannot run (§17.8, §17.19)', () => {
  it('fails an unknown engine once, with the stock error, and shows the error in its logs', async () => {
    const pipeline = emitPipeline([{ name: 'docker.yml', engine: 'docker', raw: PLAIN }]);
    await finished(pipeline, 1);
    // Nothing more comes for it: a pipeline sent after it finishes, and still only one status.
    const sentinel = emitPipeline([{ name: 'sentinel.yml' }]);
    await waitFor(() => app.history(sentinel, 'sentinel.yml').includes('success'), 'the sentinel pipeline');
    const rows = statusesOf(pipeline);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ status: 'failed', error: 'unknown engine "docker"', exitCode: -1 });
    const logs = await readLogs(s.daemon.base, { knot: s.knot.host, rkey: pipeline, workflow: 'docker.yml' });
    expect(logs.closeCode).toBe(1000);
    expect(logs.lines[0]).toMatchObject({ kind: 'control', step_status: 'start' });
    expect(logs.steps).toHaveLength(1);
    expect(logs.steps[0]!.body).toEqual(['unknown engine "docker"']);
  });

  it('fails a workflow whose YAML does not parse, with the parse error, and runs its siblings', async () => {
    const pipeline = emitPipeline([
      { name: 'broken.yml', raw: 'steps: [unclosed\n' },
      { name: 'fine.yml', raw: stubWorkflow('success', '0s') },
    ]);
    await finished(pipeline, 2);
    const latest = app.latest(pipeline);
    expect(latest['broken.yml']).toMatchObject({ status: 'failed' });
    expect(latest['broken.yml']!.error).toMatch(/^workflow is not valid YAML: /);
    expect(app.history(pipeline, 'broken.yml')).toEqual(['failed']);
    expect(latest['fine.yml']!.status).toBe('success');
  });
});

describe('input that produces no statuses (§17.9, §17.10)', () => {
  it('ignores other nsids, unknown repos, a foreign knot, zero workflows and malformed frames, and keeps serving', async () => {
    const before = app.frames.length;
    const ignored = [rkey(), rkey(), rkey(), rkey(), rkey()];
    s.knot.emit('sh.tangled.git.refUpdate', ignored[0]!, { ref: 'refs/heads/main', newSha: 'a'.repeat(40) });
    s.knot.emit(
      'sh.tangled.pipeline',
      ignored[1]!,
      pipelineRecord(s.knot.host, [{ name: 'x.yml' }], { name: 'not-served' }),
    );
    s.knot.emit(
      'sh.tangled.pipeline',
      ignored[2]!,
      pipelineRecord('other.knot.example', [{ name: 'x.yml' }]),
    );
    s.knot.emit('sh.tangled.pipeline', ignored[3]!, { ...pipelineRecord(s.knot.host, []), workflows: [] });
    s.knot.emit('sh.tangled.pipeline', ignored[4]!, { triggerMetadata: 'wrong type', workflows: 7 });
    s.knot.sendRaw('this is not json');
    s.knot.sendRaw('[1,2,3]');
    s.knot.sendRaw('{"rkey":5,"nsid":"sh.tangled.pipeline","event":{}}');
    s.knot.sendRaw(JSON.stringify({ rkey: 'x'.repeat(600), nsid: 'sh.tangled.pipeline', event: {} }));
    s.knot.emit(
      'sh.tangled.pipeline',
      'x',
      pipelineRecord(s.knot.host, [{ name: 'bad\u0000name.yml' }], { did: 7 as unknown as string }),
    );
    const sentinel = emitPipeline([{ name: 'after.yml' }]);
    await waitFor(() => statusesOf(sentinel).length > 0, 'the sentinel pipeline');
    const newFrames = app.frames.slice(before).map((f) => JSON.parse(f));
    const touched = newFrames.map((f) =>
      f.nsid === 'sh.tangled.pipeline' ? f.rkey : f.event.pipeline.split('/').at(-1),
    );
    expect(touched.every((r: string) => r === sentinel)).toBe(true);
    expect((await fetch(`${s.daemon.base}/healthz`)).status).toBe(200);
  });
});

describe('an oversized knot frame', () => {
  it('costs that frame alone: the pipeline sent right after it runs, memory stays bounded, the skip is logged with its size', async () => {
    const huge = emitPipeline([{ name: 'huge.yml', raw: `# ${'x'.repeat(16 * 1024 * 1024)}\n` }]);
    // At once, before treadle could have reconnected: it must not be lost behind the big frame.
    const after = emitPipeline([{ name: 'after.yml' }]);
    await waitFor(
      () => app.history(after, 'after.yml').includes('success'),
      'the next pipeline to run',
      20_000,
    );
    expect(statusesOf(huge)).toEqual([]);
    const skip = s.daemon
      .logs()
      .split('\n')
      .filter((l) => l.includes('"msg":"knot frame over the size limit skipped"'))
      .map((l) => JSON.parse(l));
    expect(skip).toHaveLength(1);
    expect(skip[0]).toMatchObject({ nsid: 'sh.tangled.pipeline', rkey: huge });
    expect(skip[0].bytes).toBeGreaterThan(16 * 1024 * 1024);
    // The frame was read once, under the allowance, and let go: the peak resident size stays
    // within a small multiple of it (the daemon alone is about 150 MB).
    const peakKb = Number(
      /VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${s.daemon.p.child.pid}/status`, 'utf8'))![1],
    );
    expect(peakKb).toBeLessThan(512 * 1024);
    // And the knot is followed from past that frame, not from before it.
    const later = emitPipeline([{ name: 'later.yml' }]);
    await waitFor(() => app.history(later, 'later.yml').includes('success'), 'a later pipeline', 20_000);
    expect(statusesOf(huge)).toEqual([]);
  }, 60_000);
});

describe('/events cursors (§17.12, §17.13)', () => {
  it('sends nothing old without a cursor, with cursor=0 or with a non-numeric cursor', async () => {
    // Something may still be running from earlier tests: what arrives must be new, never old.
    const old = new Set(app.frames.map((f) => JSON.parse(f).rkey));
    expect(old.size).toBeGreaterThan(10);
    for (const q of ['', '?cursor=0', '?cursor=abc']) {
      const ws = new WebSocket(`${s.daemon.base.replace('http', 'ws')}/events${q}`);
      const got: string[] = [];
      ws.on('message', (d) => got.push(JSON.parse(d.toString()).rkey));
      await new Promise((resolve) => ws.once('open', resolve));
      // A backfill would come before live frames: once a new pipeline's frame is here, it would have.
      const sentinel = emitPipeline([{ name: 'sentinel.yml' }]);
      await waitFor(() => got.includes(sentinel), 'the live sentinel frame');
      ws.close();
      expect(got.filter((r) => old.has(r))).toEqual([]);
    }
  });

  it('backfills everything after a cursor in created order, then goes live', async () => {
    const all = app.frames.map((f) =>
      JSON.parse(f, (k, v, c?: { source?: string }) => (k === 'created' && c?.source ? BigInt(c.source) : v)),
    );
    const cursor = all[2].created as bigint;
    const late = new AppviewEvents({ cursor });
    await late.connect(s.daemon.base);
    await waitFor(() => late.frames.length >= all.length - 3, 'the backfill');
    expect(late.frames).toEqual(app.frames.slice(3));
    const pipeline = emitPipeline([{ name: 'live.yml' }]);
    await waitFor(() => late.history(pipeline, 'live.yml').length > 0, 'a live status');
    await late.close();
  });
});

describe('live logs, unknown workflows and pings (§17.15, §17.17, §17.20)', () => {
  it('streams lines of a running workflow as they are produced, then closes 1000', async () => {
    const pipeline = emitPipeline([
      { name: 'slow.yml', raw: stubWorkflow('success', '3s', ['one', 'two', 'three']) },
    ]);
    await waitFor(() => app.history(pipeline, 'slow.yml').length > 0, 'pending');
    let firstLineAt = 0;
    const logs = await readLogs(
      s.daemon.base,
      { knot: s.knot.host, rkey: pipeline, workflow: 'slow.yml' },
      {
        onLine: () => {
          firstLineAt ||= Date.now();
        },
      },
    );
    const terminalAt = Date.now();
    expect(logs.closeCode).toBe(1000);
    expect(logs.steps.map((st) => st.title)).toEqual(['one', 'two', 'three']);
    // The first line came while the workflow was still running, not in one dump at the end.
    expect(terminalAt - firstLineAt).toBeGreaterThan(1000);
    // /logs closes once the status is committed; the /events frame reaches the appview separately.
    await waitFor(() => app.latest(pipeline)['slow.yml']?.status === 'success', 'the success status');
  }, 20_000);

  it('answers 404 before upgrading for an unknown workflow, and 400 for a malformed path', async () => {
    const unknown = await readLogs(s.daemon.base, { knot: s.knot.host, rkey: rkey(), workflow: 'nope.yml' });
    expect(unknown.refused).toBe(404);
    // An encoded slash must not smuggle a path segment in; record keys have a fixed alphabet.
    const slash = await readLogs(s.daemon.base, { knot: `${s.knot.host}/../etc`, rkey: 'x', workflow: 'y' });
    expect(slash.refused).toBe(400);
    const badKey = await readLogs(s.daemon.base, { knot: s.knot.host, rkey: 'a b', workflow: 'y' });
    expect(badKey.refused).toBe(400);
    const long = await readLogs(s.daemon.base, { knot: s.knot.host, rkey: 'r', workflow: 'w'.repeat(300) });
    expect(long.refused).toBe(400);
    const plain = await fetch(`${s.daemon.base}/logs/a/b/c`);
    expect(plain.status).toBe(400);
  });

  it('pings an idle /logs client while its workflow runs', async () => {
    const pipeline = emitPipeline([{ name: 'quiet.yml', raw: stubWorkflow('success', '2s') }]);
    await waitFor(() => app.history(pipeline, 'quiet.yml').length > 0, 'pending');
    const ws = new WebSocket(
      `${s.daemon.base.replace('http', 'ws')}/logs/${s.knot.host}/${pipeline}/quiet.yml`,
    );
    const pinged = new Promise<boolean>((resolve) => {
      ws.once('ping', () => resolve(true));
      setTimeout(resolve, 3000, false).unref();
    });
    expect(await pinged).toBe(true);
    ws.close();
  });

  it('pings an idle /events client', async () => {
    const ws = new WebSocket(`${s.daemon.base.replace('http', 'ws')}/events`);
    const pinged = new Promise<boolean>((resolve) => {
      ws.once('ping', () => resolve(true));
      setTimeout(resolve, 3000, false).unref();
    });
    expect(await pinged).toBe(true);
    ws.close();
  });
});
