import { describe, expect, it } from 'vitest';
import { encodeLogLine, errorOnlyLog } from './log-line.ts';
import { parseLogsPath } from './logs-server.ts';

describe('encodeLogLine', () => {
  it("writes stock's key order and omits empty optional keys", () => {
    expect(
      encodeLogLine({
        step_command: 'echo hi',
        step_kind: 1,
        step_status: 'start',
        step_id: 2,
        time: '2025-11-27T18:05:05.5Z',
        content: 'test',
        kind: 'control',
      }),
    ).toBe(
      '{"kind":"control","content":"test","time":"2025-11-27T18:05:05.5Z","step_id":2,"step_status":"start","step_kind":1,"step_command":"echo hi"}',
    );
    expect(
      encodeLogLine({ kind: 'data', content: 'hi\r\n', time: 't', step_id: 0, stream: 'stdout' }),
    ).toMatch(/^\{"kind":"data","content":"hi","time":"[^"]+","step_id":0,"stream":"stdout"\}$/);
  });

  it('shows an error as one user step: start, data, end', () => {
    const lines = errorOnlyLog('unknown engine "docker"', '2026-01-01T00:00:00Z').map((l) => JSON.parse(l));
    expect(lines.map((l) => [l.kind, l.step_status, l.step_kind])).toEqual([
      ['control', 'start', 1],
      ['data', undefined, undefined],
      ['control', 'end', 1],
    ]);
    expect(lines[1].content).toBe('unknown engine "docker"');
  });
});

describe('parseLogsPath', () => {
  it('reads knot (with port), rkey and workflow, percent-decoded', () => {
    expect(parseLogsPath('/logs/127.0.0.1:5555/3kabc/ci%20build.yml')).toEqual({
      knot: '127.0.0.1:5555',
      rkey: '3kabc',
      name: 'ci build.yml',
    });
  });

  it('refuses traversal, extra segments, bad encodings and overlong names', () => {
    for (const path of [
      '/logs/knot/rkey',
      '/logs/knot/rkey/a/b',
      '/logs/knot/rkey/%2e%2e',
      '/logs/knot/rkey/a%2Fb',
      '/logs/knot/rkey/a%5Cb',
      '/logs/knot/rkey/%E0%A4%A',
      '/logs/knot/rkey/a%00b',
      `/logs/knot/rkey/${'w'.repeat(256)}`,
      '/logs/kn%2Fot/rkey/w',
      '/logs/knot/r%20key/w',
      `/logs/knot/${'r'.repeat(513)}/w`,
    ]) {
      expect(parseLogsPath(path), path).toHaveProperty('invalid');
    }
  });
});
