/**
 * Commit URIs, the landing input (greenness-and-landing spec §1):
 * `git://{host[:port]}/{repoPath}/{encodeURIComponent(ref)}/{sha}`. The host is lowercase, the
 * ref starts with `refs/`, the sha is 40 lowercase hex. Parsed by taking the last segment as the
 * sha, the one before as the encoded ref and the rest as the repo path; re-serialising a parsed
 * URI reproduces it byte for byte, and anything that would not is refused.
 */
import { InvalidRequestError } from '../errors.ts';

export interface CommitUri {
  host: string;
  /** The repo id: a repo DID, or `<ownerDid>/<name>`. */
  repoPath: string;
  ref: string;
  sha: string;
}

const SHA = /^[0-9a-f]{40}$/;
const HOST = /^[a-z0-9.-]+(:[0-9]{1,5})?$/;

export function formatCommitUri(u: CommitUri): string {
  return `git://${u.host}/${u.repoPath}/${encodeURIComponent(u.ref)}/${u.sha}`;
}

export function parseCommitUri(uri: string): CommitUri {
  const bad = (why: string) => new InvalidRequestError(`commit URI ${JSON.stringify(uri)}: ${why}`);
  if (!uri.startsWith('git://')) throw bad('expected git://{host}/{repoPath}/{encoded ref}/{sha}');
  const parts = uri.slice('git://'.length).split('/');
  if (parts.length < 4) throw bad('expected git://{host}/{repoPath}/{encoded ref}/{sha}');
  const host = parts[0]!;
  const sha = parts.at(-1)!;
  const encodedRef = parts.at(-2)!;
  const repoPath = parts.slice(1, -2).join('/');
  if (!HOST.test(host)) throw bad('the host must be lowercase, with an optional port');
  if (!SHA.test(sha)) throw bad('the commit must be 40 lowercase hex characters');
  let ref: string;
  try {
    ref = decodeURIComponent(encodedRef);
  } catch {
    throw bad('the ref is not URI-encoded');
  }
  if (!ref.startsWith('refs/')) throw bad('the ref must start with refs/');
  if (repoPath === '' || repoPath.split('/').some((s) => s === '' || s === '.' || s === '..'))
    throw bad('the repo path is empty or not canonical');
  const parsed = { host, repoPath, ref, sha };
  if (formatCommitUri(parsed) !== uri) throw bad('not in canonical form');
  return parsed;
}
