import { describe, expect, it } from 'vitest';
import { routeWorkflow } from './routing.ts';

const table = { runners: new Set(['stub', 'buildkite']), engines: { nixery: 'stub' } };

describe('routeWorkflow', () => {
  it('takes the first key of a treadle: block, with its options, over the engine', () => {
    const raw = 'engine: nixery\ntreadle:\n  buildkite:\n    pipeline: app\n  stub: {}\n';
    expect(routeWorkflow(raw, 'nixery', table)).toEqual({
      ok: true,
      runner: 'buildkite',
      options: { pipeline: 'app' },
    });
  });

  it('accepts a tack: block, and an empty options value', () => {
    expect(routeWorkflow('tack:\n  stub:\n', 'docker', table)).toEqual({
      ok: true,
      runner: 'stub',
      options: {},
    });
  });

  it('falls back to a runner named like the engine, then to the engine map', () => {
    expect(routeWorkflow('steps: []\n', 'buildkite', table)).toMatchObject({ ok: true, runner: 'buildkite' });
    expect(routeWorkflow('steps: []\n', 'nixery', table)).toMatchObject({ ok: true, runner: 'stub' });
  });

  it("fails an unknown engine with stock's message, case-sensitively", () => {
    expect(routeWorkflow('steps: []\n', 'Nixery', table)).toEqual({
      ok: false,
      error: 'unknown engine "Nixery"',
    });
    expect(routeWorkflow('steps: []\n', 'do"cker', table)).toEqual({
      ok: false,
      error: 'unknown engine "do\\"cker"',
    });
  });

  it('reports unparsable YAML as such, unless the engine is unknown anyway (stock checks the engine first)', () => {
    const broken = 'steps: [unclosed\n';
    const routed = routeWorkflow(broken, 'nixery', table);
    expect(routed.ok).toBe(false);
    expect(!routed.ok && routed.error).toMatch(/^workflow is not valid YAML: /);
    expect(routeWorkflow(broken, 'docker', table)).toEqual({ ok: false, error: 'unknown engine "docker"' });
    expect(routeWorkflow('- a list\n', 'nixery', table)).toMatchObject({ ok: false });
  });

  it('refuses a block naming no configured runner, or with options that are not a mapping', () => {
    expect(routeWorkflow('treadle:\n  jenkins: {}\n', 'nixery', table)).toEqual({
      ok: false,
      error: 'unknown runner "jenkins" in the workflow\'s treadle: block',
    });
    expect(routeWorkflow('treadle: stub\n', 'nixery', table)).toMatchObject({ ok: false });
    expect(routeWorkflow('treadle:\n  stub: [1]\n', 'nixery', table)).toMatchObject({ ok: false });
  });
});
