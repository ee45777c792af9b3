import { describe, expect, it } from 'vitest';
import { InvalidRequestError, NotFoundError } from '../../src/errors.ts';
import { sleep, waitFor } from '../../test/support/wait.ts';
import { type BuildRequest, type LogLine, TERMINAL_STATES, wireStatus } from '../runner.ts';
import { StubRunner } from './stub-runner.ts';

const WORKFLOW = `
when:
  - event: push
engine: nixery
steps:
  - name: build
    command: make build
  - name: test
    command: make test
treadle:
  stub: {}
`;

function request(options: Record<string, unknown> = {}, id = 'knot.example/3l2abc/build.yml'): BuildRequest {
  return {
    id,
    repo: {
      did: 'did:plc:alice',
      name: 'app',
      knot: 'knot.example',
      cloneUrl: 'https://knot.example/did:plc:alice/app',
    },
    head: { ref: 'refs/heads/main', sha: 'a'.repeat(40) },
    workflow: { name: 'build.yml', raw: WORKFLOW, engine: 'nixery', options },
    env: {},
    metadata: {},
  };
}

async function collect(lines: AsyncIterable<LogLine>): Promise<LogLine[]> {
  const out: LogLine[] = [];
  for await (const line of lines) out.push(line);
  return out;
}

describe('StubRunner', () => {
  it('goes accepted → running → succeeded over the scripted duration', async () => {
    const runner = new StubRunner();
    const id = await runner.trigger(request({ duration: '400ms' }));
    expect((await runner.status(id)).state).toBe('accepted');
    await waitFor(async () => (await runner.status(id)).state === 'running', 'running');
    await waitFor(async () => TERMINAL_STATES.has((await runner.status(id)).state), 'terminal');
    expect(await runner.status(id)).toEqual({ state: 'succeeded', exitCode: 0 });
  });

  it('starts one build for a request id triggered twice', async () => {
    const runner = new StubRunner();
    const a = await runner.trigger(request({ duration: 0 }));
    const b = await runner.trigger(request({ duration: 0 }));
    const c = await runner.trigger(request({ duration: 0 }, 'knot.example/3l2abc/test.yml'));
    expect(b).toBe(a);
    expect(c).not.toBe(a);
  });

  it.each([
    [
      { outcome: 'failure', exitCode: 3, duration: 0 },
      { state: 'failed', exitCode: 3, error: 'exit code 3' },
    ],
    [
      { outcome: 'timeout', duration: 0 },
      { state: 'timed_out', exitCode: 1, error: 'workflow timed out' },
    ],
    [
      { outcome: 'success', duration: 0 },
      { state: 'succeeded', exitCode: 0 },
    ],
  ])('ends with the scripted outcome %j', async (options, status) => {
    const runner = new StubRunner();
    const id = await runner.trigger(request(options));
    expect(await runner.status(id)).toEqual(status);
  });

  it('writes a control start, a data line naming the command and a control end per step', async () => {
    const runner = new StubRunner();
    const id = await runner.trigger(request({ duration: '100ms', outcome: 'failure', exitCode: 2 }));
    const lines = await collect(runner.logs(id, new AbortController().signal));
    expect(lines.map(({ time: _t, ...l }) => l)).toEqual([
      {
        kind: 'control',
        content: 'build',
        step_id: 0,
        step_kind: 1,
        step_command: 'make build',
        step_status: 'start',
      },
      { kind: 'data', content: '[stub] would run: make build', step_id: 0, stream: 'stdout' },
      {
        kind: 'control',
        content: 'build',
        step_id: 0,
        step_kind: 1,
        step_command: 'make build',
        step_status: 'end',
      },
      {
        kind: 'control',
        content: 'test',
        step_id: 1,
        step_kind: 1,
        step_command: 'make test',
        step_status: 'start',
      },
      { kind: 'data', content: '[stub] would run: make test', step_id: 1, stream: 'stdout' },
      { kind: 'data', content: 'exit code 2', step_id: 1, stream: 'stderr' },
      {
        kind: 'control',
        content: 'test',
        step_id: 1,
        step_kind: 1,
        step_command: 'make test',
        step_status: 'end',
      },
    ]);
    for (const l of lines) expect(Number.isNaN(Date.parse(l.time))).toBe(false);
    // The log ends only once the build is terminal.
    expect((await runner.status(id)).state).toBe('failed');
  });

  it('cancels a running build and ends its logs', async () => {
    const runner = new StubRunner();
    const id = await runner.trigger(request({ duration: '10s' }));
    const reading = collect(runner.logs(id, new AbortController().signal));
    await sleep(50);
    await runner.cancel(id);
    expect(await runner.status(id)).toEqual({ state: 'cancelled', error: 'cancelled' });
    expect((await reading).length).toBeLessThan(6);
  });

  it('stops streaming when the reader aborts', async () => {
    const runner = new StubRunner();
    const id = await runner.trigger(request({ duration: '10s' }));
    const controller = new AbortController();
    const reading = collect(runner.logs(id, controller.signal));
    await sleep(20);
    const abortedAt = Date.now();
    controller.abort();
    const lines = await reading;
    // It returned without waiting for the 10 s build, and without its later steps.
    expect(Date.now() - abortedAt).toBeLessThan(5000);
    expect(lines.some((l) => l.content === 'test')).toBe(false);
  });

  it.each([
    [{ outcome: 'maybe' }, /treadle.stub.outcome: expected one of/],
    [{ duration: 'soon' }, /treadle.stub.duration: expected a duration/],
    [{ exitCode: 'one' }, /treadle.stub: exitCode/],
    [{ outcom: 'failure' }, /unknown key "outcom"/],
  ])('refuses bad options %j with a clear error', async (options, message) => {
    const runner = new StubRunner();
    const attempt = runner.trigger(request(options));
    await expect(attempt).rejects.toThrow(InvalidRequestError);
    await expect(runner.trigger(request(options))).rejects.toThrow(message);
  });

  it('refuses an unknown build id', async () => {
    await expect(new StubRunner().status('stub-nope')).rejects.toThrow(NotFoundError);
  });
});

describe('wireStatus', () => {
  it('maps runner states to the spindle wire statuses', () => {
    expect(
      ['accepted', 'running', 'succeeded', 'failed', 'timed_out', 'cancelled'].map((s) =>
        wireStatus(s as never),
      ),
    ).toEqual(['pending', 'running', 'success', 'failed', 'timeout', 'cancelled']);
  });
});
