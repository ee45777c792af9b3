/**
 * The degree of a validation (greenness spec §6.3), a pure function of the pipeline's workflow
 * names, their terminal statuses and the queue's required workflows: the share of counted
 * workflows that broke. 0 is green. Nothing counted, or only cancellations, is no verdict at
 * all: "not recorded" is never green.
 */
import type { WireStatus } from '../pipelines/pipeline.ts';

export type Outcome = 'succeeded' | 'failed' | 'cancelled';

export interface Degree {
  outcome: Outcome;
  /** The whole-repo degree; absent when the outcome is `cancelled` (no whole-repo fact). */
  degree?: number;
  /** Per-workflow facts, for every workflow of the pipeline (counted or not) that has one. */
  workflows: Array<{ name: string; degree: 0 | 1 }>;
}

/**
 * `statuses` holds each workflow's terminal status by name. `required`, when set, replaces the
 * pipeline's own list as what counts; a required workflow the pipeline lacks counts as failed.
 */
export function computeDegree(
  workflows: readonly string[],
  statuses: ReadonlyMap<string, WireStatus>,
  required?: readonly string[],
): Degree {
  const counted = required && required.length > 0 ? [...new Set(required)] : [...new Set(workflows)];
  let broken = 0;
  let cancelled = 0;
  for (const name of counted) {
    const status = workflows.includes(name) ? statuses.get(name) : undefined;
    if (status === 'cancelled') cancelled++;
    else if (status !== 'success') broken++; // failed, timeout, or missing
  }
  const facts: Degree['workflows'] = [];
  for (const name of new Set(workflows)) {
    const status = statuses.get(name);
    if (status === 'success') facts.push({ name, degree: 0 });
    else if (status === 'failed' || status === 'timeout') facts.push({ name, degree: 1 });
  }
  if (counted.length === 0 || (broken === 0 && cancelled > 0))
    return { outcome: 'cancelled', workflows: facts };
  const degree = broken / counted.length;
  return { outcome: degree === 0 ? 'succeeded' : 'failed', degree, workflows: facts };
}
