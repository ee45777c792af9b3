import { describe, expect, it } from 'vitest';
import type { WireStatus } from '../pipelines/pipeline.ts';
import { computeDegree } from './degree.ts';

const runs = (entries: Record<string, WireStatus>) => new Map(Object.entries(entries));

describe('computeDegree (greenness spec §6.3)', () => {
  it('all success: degree 0, a degree-0 fact per workflow (behaviour 7)', () => {
    expect(computeDegree(['a', 'b'], runs({ a: 'success', b: 'success' }))).toEqual({
      outcome: 'succeeded',
      degree: 0,
      workflows: [
        { name: 'a', degree: 0 },
        { name: 'b', degree: 0 },
      ],
    });
  });

  it('one of four failed: degree 0.25, that workflow 1 (behaviour 8); timeout counts as failed (9)', () => {
    for (const bad of ['failed', 'timeout'] as const) {
      const d = computeDegree(
        ['a', 'b', 'c', 'd'],
        runs({ a: 'success', b: bad, c: 'success', d: 'success' }),
      );
      expect(d.outcome).toBe('failed');
      expect(d.degree).toBe(0.25);
      expect(d.workflows.find((w) => w.name === 'b')).toEqual({ name: 'b', degree: 1 });
    }
  });

  it('success and cancelled only: no whole-repo degree, facts for the successes (behaviour 10)', () => {
    expect(computeDegree(['a', 'b'], runs({ a: 'success', b: 'cancelled' }))).toEqual({
      outcome: 'cancelled',
      workflows: [{ name: 'a', degree: 0 }],
    });
  });

  it('with required workflows, a failing extra one leaves degree 0; a missing required one breaks it (behaviour 11)', () => {
    expect(
      computeDegree(['build', 'lint'], runs({ build: 'success', lint: 'failed' }), ['build']).degree,
    ).toBe(0);
    const missing = computeDegree(['build'], runs({ build: 'success' }), ['build', 'test']);
    expect(missing).toMatchObject({ outcome: 'failed', degree: 0.5 });
  });

  it('nothing counted is never green (behaviour 12)', () => {
    expect(computeDegree([], runs({}))).toEqual({ outcome: 'cancelled', workflows: [] });
    expect(computeDegree(['a'], runs({ a: 'cancelled' }))).toEqual({ outcome: 'cancelled', workflows: [] });
  });
});
