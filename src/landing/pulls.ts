/**
 * Landing a Tangled pull request (`{target, pull: <at-uri>}`, `treadle land pull`): the pull is
 * read exactly as the pull intake reads it (record from the author's PDS, validated; its commit
 * is the tip of the last round's patch), then landed from its source branch with the target's
 * strategy. Fork and patch-only pulls are refused with the reason; `requireGreen` first asks
 * whether that commit's pull-request pipeline succeeded.
 */
import type { PipelineStore } from '../db/pipeline-store.ts';
import type { RepoStore } from '../db/repo-store.ts';
import { InvalidRequestError, NotFoundError } from '../errors.ts';
import { PULL_URI, type PullReader } from '../pipelines/pull-reader.ts';
import { formatCommitUri } from './commit-uri.ts';
import type { LandingTarget } from './config.ts';

export interface PullLandingDeps {
  reader: PullReader;
  repos: RepoStore;
  pipelines: PipelineStore;
}

export interface ResolvedPull {
  uri: string;
  sha: string;
  sourceBranch: string;
  targetBranch: string;
}

export async function resolvePull(
  d: PullLandingDeps,
  pullUri: string,
  target: LandingTarget,
  requireGreen: boolean,
): Promise<ResolvedPull> {
  const m = PULL_URI.exec(pullUri);
  if (!m)
    throw new InvalidRequestError(
      `${JSON.stringify(pullUri)} is not the AT-URI of a sh.tangled.repo.pull record`,
    );
  const [, author, rkey] = m as unknown as [string, string, string];
  let pull: Awaited<ReturnType<PullReader['record']>>;
  try {
    pull = await d.reader.record(author, rkey);
  } catch (err) {
    if (err instanceof NotFoundError) throw new InvalidRequestError(`pull ${pullUri} does not exist`);
    throw err;
  }
  const repo = pull.target.repo.startsWith('did:') ? d.repos.servedRepoByDid(pull.target.repo) : undefined;
  if (!repo)
    throw new InvalidRequestError(`pull ${pullUri} is for ${pull.target.repo}, which is not served here`);
  const ids = [repo.repoDid, `${repo.owner}/${repo.name}`];
  if (!ids.includes(target.repo))
    throw new InvalidRequestError(
      `pull ${pullUri} is for ${pull.target.repo}; target ${target.name} lands ${target.repo}`,
    );
  if (pull.target.branch !== target.targetBranch)
    throw new InvalidRequestError(
      `pull ${pullUri} targets ${pull.target.branch}; target ${target.name} lands onto ${target.targetBranch}`,
    );
  if (!pull.source)
    throw new InvalidRequestError('a patch-only pull (no source branch) cannot be landed from a branch');
  if (pull.source.repo !== undefined)
    throw new InvalidRequestError(
      'a pull from a fork (source.repo is set) cannot be landed here: its commits are not in this repo',
    );
  const sha = await d.reader.tip(author, pull);
  if (requireGreen) {
    const statuses = d.pipelines.pullStatuses(repo.repoDid!, sha);
    if (statuses.length === 0)
      throw new InvalidRequestError(`pull ${pullUri} at ${sha} has no pull-request pipeline here`);
    const notGreen = statuses.filter((w) => w.status !== 'success');
    if (notGreen.length > 0)
      throw new InvalidRequestError(
        `pull ${pullUri} at ${sha} is not green: ${notGreen.map((w) => `${w.name} ${w.status ?? 'pending'}`).join(', ')}`,
      );
  }
  return {
    uri: formatCommitUri({
      host: repo.knot.toLowerCase(),
      repoPath: target.repo,
      ref: `refs/heads/${pull.source.branch}`,
      sha,
    }),
    sha,
    sourceBranch: pull.source.branch,
    targetBranch: pull.target.branch,
  };
}

/** `{target, pull, dryRun?, requireGreen?, id?}` → the shorthand body landing one commit URI. */
export async function pullBody(
  d: PullLandingDeps,
  body: Record<string, unknown>,
  targets: readonly LandingTarget[],
): Promise<Record<string, unknown>> {
  const { pull, requireGreen, ...rest } = body;
  if (typeof pull !== 'string')
    throw new InvalidRequestError('pull: expected the AT-URI of a sh.tangled.repo.pull record');
  if (requireGreen !== undefined && typeof requireGreen !== 'boolean')
    throw new InvalidRequestError('requireGreen: expected true or false');
  if (rest.commits !== undefined || rest.steps !== undefined)
    throw new InvalidRequestError('give pull, or commits or steps, not both');
  const target = targets.find((t) => t.name === rest.target);
  if (!target) throw new InvalidRequestError(`unknown landing target ${JSON.stringify(rest.target)}`);
  const resolved = await resolvePull(d, pull, target, requireGreen === true);
  return { ...rest, strategy: rest.strategy ?? 'DEFAULT', commits: [resolved.uri] };
}
