/**
 * The landing contract (greenness-and-landing spec §7.1, §7.2): requests and results as they
 * travel on `land.check` / `land.merge` and their result topics, and the validation every
 * request passes before any git command runs.
 */
import { InvalidRequestError } from '../errors.ts';
import { type CommitUri, parseCommitUri } from './commit-uri.ts';
import { type LandingTarget, STRATEGIES, type Strategy } from './config.ts';

export const CHECK_TOPIC = 'land.check';
export const MERGE_TOPIC = 'land.merge';
export const RESULT_SUFFIX = '.result';

export interface MergeStep {
  stepId: string;
  change: { uris: string[] };
  strategy: Strategy;
}

export interface LandRequest {
  id: string;
  target: string;
  steps: MergeStep[];
}

export interface StepOutput {
  id: string;
}

export interface StepResult {
  stepId: string;
  outputs: StepOutput[];
  reason?: string;
  alreadyPresent?: boolean;
}

export interface LandResult {
  id: string;
  target: string;
  outcome: 'SUCCEEDED' | 'FAILED';
  reason?: string;
  steps: StepResult[];
}

/** A step after validation: its strategy resolved, its URIs parsed. */
export interface ValidStep {
  stepId: string;
  strategy: Exclude<Strategy, 'DEFAULT'>;
  commits: Array<CommitUri & { uri: string }>;
}

/** `pk(...parts)` of spec §1: the partition key of a target's requests. */
export function pk(...parts: string[]): string {
  return parts.map(encodeURIComponent).join('/');
}

/** Whether a decoded payload has the shape of a request (ids to answer with), before validation. */
export function decodeRequest(payload: unknown): LandRequest | undefined {
  if (typeof payload !== 'object' || payload === null) return undefined;
  const r = payload as Record<string, unknown>;
  if (typeof r.id !== 'string' || r.id === '' || typeof r.target !== 'string') return undefined;
  return r as unknown as LandRequest;
}

/** §7.2: everything that can be known wrong without git. Throws InvalidRequestError. */
export function validateRequest(
  req: LandRequest,
  targets: readonly LandingTarget[],
): { target: LandingTarget; steps: ValidStep[] } {
  const target = targets.find((t) => t.name === req.target);
  if (!target) throw new InvalidRequestError(`unknown landing target ${JSON.stringify(req.target)}`);
  if (!Array.isArray(req.steps) || req.steps.length === 0)
    throw new InvalidRequestError('the request has no steps');
  const steps = req.steps.map((step, i): ValidStep => {
    if (typeof step !== 'object' || step === null) throw new InvalidRequestError(`steps[${i}] is not a step`);
    if (
      typeof step.stepId !== 'string' ||
      step.stepId === '' ||
      step.stepId.length > 200 ||
      /[\n\r]/.test(step.stepId)
    )
      throw new InvalidRequestError(`steps[${i}].stepId: expected a short single-line string`);
    if (!STRATEGIES.includes(step.strategy))
      throw new InvalidRequestError(`steps[${i}].strategy: expected one of ${STRATEGIES.join(', ')}`);
    const uris = step.change?.uris;
    if (!Array.isArray(uris) || uris.length === 0)
      throw new InvalidRequestError(`steps[${i}] has no commit URIs`);
    const commits = uris.map((uri) => {
      if (typeof uri !== 'string') throw new InvalidRequestError(`steps[${i}].change.uris: expected strings`);
      const parsed = parseCommitUri(uri);
      if (parsed.repoPath !== target.repo)
        throw new InvalidRequestError(
          `${uri} is not a commit of ${target.repo}, the repo of target ${target.name}`,
        );
      return { ...parsed, uri };
    });
    const strategy = step.strategy === 'DEFAULT' ? target.defaultStrategy : step.strategy;
    return { stepId: step.stepId, strategy, commits };
  });
  const promote = steps.some((s) => s.strategy === 'PROMOTE');
  if (promote && (steps.length !== 1 || steps[0]!.commits.length !== 1))
    throw new InvalidRequestError('PROMOTE must be the only step, with exactly one commit');
  return { target, steps };
}
