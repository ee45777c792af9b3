/**
 * What a stub build does, read from the workflow: its steps (for synthetic logs) and
 * `treadle: { stub: { outcome, duration, exitCode } }`.
 */
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { parseDurationMs } from '../../src/config-values.ts';
import { InvalidRequestError } from '../../src/errors.ts';
import type { BuildState } from '../runner.ts';

export interface StubScript {
  outcome: Extract<BuildState, 'succeeded' | 'failed' | 'timed_out' | 'cancelled'>;
  durationMs: number;
  exitCode: number;
  steps: Array<{ name: string; command: string }>;
}

const OUTCOMES: Record<string, StubScript['outcome']> = {
  success: 'succeeded',
  succeeded: 'succeeded',
  failure: 'failed',
  failed: 'failed',
  timeout: 'timed_out',
  timed_out: 'timed_out',
  cancelled: 'cancelled',
};

export const DEFAULT_STUB_DURATION_MS = 1000;

const optionsSchema = z
  .object({
    outcome: z.string().optional(),
    duration: z.union([z.string(), z.number()]).optional(),
    exitCode: z.number().int().min(0).max(255).optional(),
  })
  .strict();

const stepsSchema = z
  .array(
    z.object({
      name: z.string().optional(),
      command: z.string().optional(),
    }),
  )
  .optional();

export function readStubScript(raw: string, options: Record<string, unknown>): StubScript {
  const parsedOptions = optionsSchema.safeParse(options ?? {});
  if (!parsedOptions.success) {
    throw new InvalidRequestError(
      `treadle.stub: ${parsedOptions.error.issues.map(describeIssue).join('; ')}`,
    );
  }
  const o = parsedOptions.data;
  const outcome = OUTCOMES[o.outcome ?? 'success'];
  if (!outcome) {
    throw new InvalidRequestError(
      `treadle.stub.outcome: expected one of ${Object.keys(OUTCOMES).join(', ')}, got ${JSON.stringify(o.outcome)}`,
    );
  }
  const durationMs = o.duration === undefined ? DEFAULT_STUB_DURATION_MS : parseDurationMs(o.duration);
  if (durationMs === undefined) {
    throw new InvalidRequestError(
      `treadle.stub.duration: expected a duration such as 2s, got ${JSON.stringify(o.duration)}`,
    );
  }
  const exitCode = o.exitCode ?? (outcome === 'succeeded' ? 0 : 1);
  return { outcome, durationMs, exitCode, steps: readSteps(raw) };
}

function readSteps(raw: string): StubScript['steps'] {
  let doc: unknown;
  try {
    doc = parseYaml(raw);
  } catch (err) {
    throw new InvalidRequestError(`workflow is not valid YAML: ${(err as Error).message}`);
  }
  const steps = stepsSchema.safeParse((doc as { steps?: unknown } | null)?.steps);
  if (!steps.success) throw new InvalidRequestError('workflow steps must be a list of {name, command}');
  return (steps.data ?? []).map((s, i) => ({ name: s.name ?? `step ${i + 1}`, command: s.command ?? '' }));
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const path = issue.path.join('.');
  if (issue.code === 'unrecognized_keys')
    return `unknown key ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}`;
  return `${path || 'options'}: ${issue.message}`;
}
