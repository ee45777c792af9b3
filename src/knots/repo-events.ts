/**
 * Repo identity and access events from knots (2026 spec §4.2): `sh.tangled.repo.didAssign` gives
 * a repo recorded by owner and name its DID (refused when another owner's repo holds that DID),
 * and `sh.tangled.repo.collaboratorUpdate` adds or removes a collaborator, accepted only from the
 * repo's own knot.
 */
import type { RecordValidator } from '../atproto/lexicons.ts';
import type { PipelineStore } from '../db/pipeline-store.ts';
import type { RepoStore } from '../db/repo-store.ts';
import { errorMessage } from '../errors.ts';
import type { Logger } from '../logger.ts';

export const DID_ASSIGN_NSID = 'sh.tangled.repo.didAssign';
export const COLLABORATOR_UPDATE_NSID = 'sh.tangled.repo.collaboratorUpdate';

export class RepoEvents {
  private readonly repos: RepoStore;
  private readonly pipelines: PipelineStore;
  private readonly validator: RecordValidator;
  private readonly log: Logger;

  constructor(deps: { repos: RepoStore; pipelines: PipelineStore; validator: RecordValidator; log: Logger }) {
    this.repos = deps.repos;
    this.pipelines = deps.pipelines;
    this.validator = deps.validator;
    this.log = deps.log;
  }

  /** Handles the frame if it is one of the two; returns whether it was. */
  apply(knot: string, nsid: string, event: Record<string, unknown>): boolean {
    if (nsid !== DID_ASSIGN_NSID && nsid !== COLLABORATOR_UPDATE_NSID) return false;
    try {
      if (nsid === DID_ASSIGN_NSID) this.didAssign(knot, event);
      else this.collaboratorUpdate(knot, event);
    } catch (err) {
      this.log.warn({ knot, nsid, reason: errorMessage(err) }, 'knot event dropped');
    }
    return true;
  }

  private didAssign(knot: string, event: Record<string, unknown>): void {
    const e = this.validator.validate<{ ownerDid: string; repoName: string; repoDid: string }>(
      DID_ASSIGN_NSID,
      event,
    );
    const repo = this.repos.repoByName(knot, e.ownerDid, e.repoName);
    if (!repo) {
      this.log.debug({ knot, owner: e.ownerDid, name: e.repoName }, 'didAssign for a repo not recorded here');
      return;
    }
    if (repo.repoDid === e.repoDid) return;
    if (!this.repos.assignRepoDid(repo, e.repoDid)) {
      this.log.warn(
        { knot, owner: e.ownerDid, name: e.repoName, repoDid: e.repoDid },
        'didAssign refused: another owner already holds this repo DID',
      );
      return;
    }
    const pipelines = this.pipelines.assignRepoDid({ knot, owner: repo.owner, name: repo.name }, e.repoDid);
    this.log.info(
      { knot, owner: repo.owner, name: repo.name, repoDid: e.repoDid, pipelines },
      'repo DID assigned',
    );
  }

  private collaboratorUpdate(knot: string, event: Record<string, unknown>): void {
    const e = this.validator.validate<{ op: string; subject: string; repo: string }>(
      COLLABORATOR_UPDATE_NSID,
      event,
    );
    if (e.op !== 'add' && e.op !== 'remove') throw new Error(`unknown op ${JSON.stringify(e.op)}`);
    const repo = this.repos.servedRepoByDid(e.repo);
    if (!repo) {
      this.log.debug({ knot, repoDid: e.repo }, 'collaboratorUpdate for a repo not served here');
      return;
    }
    if (repo.knot !== knot) {
      this.log.warn(
        { knot, repoDid: e.repo, repoKnot: repo.knot },
        "collaboratorUpdate refused: not from the repo's knot",
      );
      return;
    }
    this.repos.knotCollaborator(knot, e.op, e.repo, e.subject);
    this.log.info({ knot, repoDid: e.repo, subject: e.subject, op: e.op }, 'collaborator updated by knot');
  }
}
