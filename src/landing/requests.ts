/**
 * Turning what a person or a script asks for into a landing request on the queue: a full
 * `LandRequest`, or the shorthand `{target, strategy?, commits: [uri | sha…], dryRun?}` whose
 * shas are resolved against the target's repo and branch. Validated (spec §7.2) before anything
 * is queued; shared by the HTTP API and the CLI.
 */
import { randomBytes } from 'node:crypto';
import { InvalidRequestError } from '../errors.ts';
import type { Queue } from '../queue/index.ts';
import { formatCommitUri } from './commit-uri.ts';
import { type LandingTarget, STRATEGIES, type Strategy } from './config.ts';
import { CHECK_TOPIC, type LandRequest, MERGE_TOPIC, pk, validateRequest } from './contract.ts';

const SHA = /^[0-9a-f]{40}$/;
const ID = /^[A-Za-z0-9._:/@-]{1,200}$/;

export interface Submission {
  request: LandRequest;
  topic: typeof CHECK_TOPIC | typeof MERGE_TOPIC;
  target: LandingTarget;
}

/** A new request id: `land/<time>-<random>`. */
export function newRequestId(): string {
  return `land/${Date.now().toString(36)}-${randomBytes(6).toString('hex')}`;
}

/** The commit URI of a bare sha on a target: its repo, its branch (never stale: it is what the change lands on). */
export function shaUri(target: LandingTarget, sha: string, host: string): string {
  return formatCommitUri({ host, repoPath: target.repo, ref: `refs/heads/${target.targetBranch}`, sha });
}

/**
 * Reads a request body (full or shorthand) into a validated submission. `host` is the knot to
 * name in URIs made from shas. Throws InvalidRequestError with the reason.
 */
export function readSubmission(
  body: Record<string, unknown>,
  targets: readonly LandingTarget[],
  host: (target: LandingTarget) => string,
): Submission {
  const unknown = Object.keys(body).filter(
    (k) => !['id', 'target', 'steps', 'strategy', 'commits', 'dryRun'].includes(k),
  );
  if (unknown.length > 0) throw new InvalidRequestError(`unknown field ${JSON.stringify(unknown[0])}`);
  if (body.id !== undefined && (typeof body.id !== 'string' || !ID.test(body.id)))
    throw new InvalidRequestError('id: expected up to 200 letters, digits and ._:/@-');
  if (body.dryRun !== undefined && typeof body.dryRun !== 'boolean')
    throw new InvalidRequestError('dryRun: expected true or false');
  if (typeof body.target !== 'string')
    throw new InvalidRequestError('target: expected a landing target name');
  const id = (body.id as string | undefined) ?? newRequestId();
  let request: LandRequest;
  if (body.steps !== undefined) {
    if (body.commits !== undefined || body.strategy !== undefined)
      throw new InvalidRequestError('give either steps, or commits with a strategy, not both');
    request = { id, target: body.target, steps: body.steps as LandRequest['steps'] };
  } else {
    const strategy = (body.strategy ?? 'DEFAULT') as Strategy;
    if (!STRATEGIES.includes(strategy))
      throw new InvalidRequestError(`strategy: expected one of ${STRATEGIES.join(', ')}`);
    if (!Array.isArray(body.commits) || body.commits.length === 0 || body.commits.length > 100)
      throw new InvalidRequestError('commits: expected 1 to 100 commit URIs or 40-hex shas');
    const target = targets.find((t) => t.name === body.target);
    if (!target) throw new InvalidRequestError(`unknown landing target ${JSON.stringify(body.target)}`);
    const uris = body.commits.map((c) => {
      if (typeof c !== 'string') throw new InvalidRequestError('commits: expected strings');
      return SHA.test(c) ? shaUri(target, c, host(target)) : c;
    });
    request = { id, target: body.target, steps: [{ stepId: 'change', change: { uris }, strategy }] };
  }
  const { target } = validateRequest(request, targets);
  return { request, target, topic: body.dryRun === true ? CHECK_TOPIC : MERGE_TOPIC };
}

/** Queues a submission; false when a request with its id was already queued (nothing new stored). */
export function submit(queue: Queue, s: Submission): boolean {
  return queue.publish(s.topic, pk(s.target.repo, s.target.targetBranch), s.request.id, s.request).published;
}
