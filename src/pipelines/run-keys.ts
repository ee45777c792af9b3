/**
 * Dedup keys of 2026 spec §4.5: one run per push (repo, ref, newSha) and per pull-request state
 * (repo, sourceSha, targetBranch), whether it arrives as a knot's pipeline or is built by treadle.
 * A repo is named by its DID when it has one, else by knot, owner and name (legacy). The
 * action stays out of a PR key (legacy knots say `create`, new code `opened`/`synchronize`),
 * except for `reopened`, `closed` and `merged`, which would otherwise never run after `opened`
 * at the same sha (a deliberate refinement of the spec's key). Manual runs have no key.
 */
import type { RepoRow } from '../db/repo-store.ts';
import type { PipelineRecord } from './pipeline.ts';

const OWN_KEY_ACTIONS = new Set(['reopened', 'closed', 'merged']);

export function repoKey(repo: RepoRow): string {
  return repo.repoDid ?? `${repo.knot}/${repo.owner}/${repo.name}`;
}

export function pushRunKey(repo: RepoRow, ref: string, newSha: string): string {
  return `push ${repoKey(repo)} ${ref} ${newSha}`;
}

export function pullRunKey(repo: RepoRow, sourceSha: string, targetBranch: string, action: string): string {
  const suffix = OWN_KEY_ACTIONS.has(action) ? ` ${action}` : '';
  return `pull_request ${repoKey(repo)} ${sourceSha} ${targetBranch}${suffix}`;
}

export function runKeyOf(repo: RepoRow, record: PipelineRecord): string | undefined {
  const t = record.triggerMetadata;
  if (t.kind === 'push' && t.push) return pushRunKey(repo, t.push.ref, t.push.newSha);
  if (t.kind === 'pull_request' && t.pullRequest)
    return pullRunKey(repo, t.pullRequest.sourceSha, t.pullRequest.targetBranch, t.pullRequest.action);
  return undefined;
}
