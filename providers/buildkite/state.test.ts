import { describe, expect, it } from 'vitest';
import { type BkBuild, type BkJob, buildStatus, isTerminalBuild } from './state.ts';

function build(state: string, extra: Partial<BkBuild> = {}): BkBuild {
  return { id: 'b', number: 1, state, web_url: 'https://buildkite.com/acme/p/builds/1', ...extra };
}
function job(state: string, extra: Partial<BkJob> = {}): BkJob {
  return { id: `j-${state}`, type: 'script', name: 'test', state, ...extra };
}

describe('buildStatus (the state table in state.ts)', () => {
  it.each([
    ['creating', 'accepted'],
    ['scheduled', 'accepted'],
    ['running', 'running'],
    ['failing', 'running'],
    ['canceling', 'running'],
    ['passed', 'succeeded'],
    ['failed', 'failed'],
    ['canceled', 'cancelled'],
    ['skipped', 'cancelled'],
    ['not_run', 'cancelled'],
    ['waiting', 'accepted'],
    ['some_new_state', 'accepted'],
  ])('%s → %s', (state, expected) => {
    expect(buildStatus(build(state)).state).toBe(expected);
  });

  it('keeps an unknown state non-terminal, running once the build started', () => {
    expect(buildStatus(build('waiting', { started_at: '2026-01-01T00:00:00Z' })).state).toBe('running');
    expect(isTerminalBuild(build('waiting'))).toBe(false);
  });

  it('treats a blocked build as running, whatever its state says (spec §5.1)', () => {
    expect(buildStatus(build('passed', { blocked: true })).state).toBe('running');
    expect(isTerminalBuild(build('passed', { blocked: true }))).toBe(false);
    expect(isTerminalBuild(build('passed'))).toBe(true);
  });

  it('carries the exit status and step of the job that failed the build, not a soft-failed or retried one', () => {
    const s = buildStatus(
      build('failed', {
        jobs: [
          job('passed', { exit_status: 0 }),
          job('failed', { name: 'lint', exit_status: 1, soft_failed: true }),
          job('failed', { name: 'old', exit_status: 9, retried: true }),
          job('failed', { name: 'unit', exit_status: 3 }),
          { id: 'w', type: 'waiter', state: 'passed' },
        ],
      }),
    );
    expect(s).toMatchObject({ state: 'failed', exitCode: 3, error: 'step "unit" failed with exit status 3' });
  });

  it('reports a timed-out job as timeout', () => {
    const s = buildStatus(build('failed', { jobs: [job('timed_out', { name: 'e2e', exit_status: null })] }));
    expect(s).toMatchObject({ state: 'timed_out', error: 'step "e2e" timed out on Buildkite' });
    expect(s.exitCode).toBeUndefined();
  });

  it('gives success exit code 0, the web URL, and words for the cancelled kinds', () => {
    expect(buildStatus(build('passed'))).toEqual({
      state: 'succeeded',
      exitCode: 0,
      url: 'https://buildkite.com/acme/p/builds/1',
    });
    expect(buildStatus(build('failed')).error).toBe('failed on Buildkite');
    expect(buildStatus(build('skipped')).error).toMatch(/superseded/);
    expect(buildStatus(build('not_run')).error).toMatch(/skipped or filtered out/);
  });
});
