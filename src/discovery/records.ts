/**
 * What a member, repo or collaborator record changes (spindle protocol §3.3–3.5 with §16.6's
 * fixes), whether it came from Jetstream or a PDS backfill: members only from the owner and
 * only for this instance; repos only from the owner or a member, served while they name this
 * spindle (a delete, or a move to another spindle, stops it); collaborators only from the
 * owner or a member, counted when their author owns the repo they name.
 */
import type { RecordValidator } from '../atproto/lexicons.ts';
import type { RepoStore } from '../db/repo-store.ts';
import { errorMessage } from '../errors.ts';
import type { Logger } from '../logger.ts';

export const MEMBER_NSID = 'sh.tangled.spindle.member';
export const REPO_NSID = 'sh.tangled.repo';
export const COLLABORATOR_NSID = 'sh.tangled.repo.collaborator';
export const DISCOVERY_COLLECTIONS = [MEMBER_NSID, REPO_NSID, COLLABORATOR_NSID] as const;

export interface RecordEvent {
  /** The record's author. */
  did: string;
  collection: string;
  rkey: string;
  operation: 'create' | 'update' | 'delete';
  record?: unknown;
}

export interface RecordIngesterDeps {
  repos: RepoStore;
  validator: RecordValidator;
  hostname: string;
  owner: string;
  log: Logger;
  /** A DID became a member: its records should be backfilled. */
  onMemberAdded: (did: string) => void;
  /** The set of served repos (and so of knots) may have changed. */
  onChange: () => void;
}

/** What an event did, for logs and tests. */
export type RecordOutcome = 'applied' | 'ignored' | 'invalid';

export class RecordIngester {
  private readonly d: RecordIngesterDeps;

  constructor(deps: RecordIngesterDeps) {
    this.d = deps;
  }

  apply(ev: RecordEvent): RecordOutcome {
    try {
      const outcome =
        ev.collection === MEMBER_NSID
          ? this.member(ev)
          : ev.collection === REPO_NSID
            ? this.repo(ev)
            : ev.collection === COLLABORATOR_NSID
              ? this.collaborator(ev)
              : 'ignored';
      if (outcome === 'applied') {
        this.d.log.info(
          { did: ev.did, collection: ev.collection, rkey: ev.rkey, op: ev.operation },
          'record applied',
        );
      }
      return outcome;
    } catch (err) {
      this.d.log.warn(
        { did: ev.did, collection: ev.collection, rkey: ev.rkey, err: errorMessage(err) },
        'invalid record ignored',
      );
      return 'invalid';
    }
  }

  private member(ev: RecordEvent): RecordOutcome {
    const { repos } = this.d;
    if (ev.did !== this.d.owner) return 'ignored';
    if (ev.operation === 'delete') return this.removeMember(ev.rkey);
    const record = this.d.validator.validate<{ subject: string; instance: string }>(MEMBER_NSID, ev.record);
    // An update that points the record at another instance ends the membership here.
    if (record.instance !== this.d.hostname) return this.removeMember(ev.rkey);
    const wasMember = repos.mayServe(record.subject);
    const previous = repos.removeMember(ev.rkey);
    repos.addMember(ev.rkey, record.subject);
    if (!wasMember) this.d.onMemberAdded(record.subject);
    if (!wasMember || (previous && previous !== record.subject)) this.d.onChange();
    return 'applied';
  }

  private removeMember(rkey: string): RecordOutcome {
    const subject = this.d.repos.removeMember(rkey);
    if (subject === undefined) return 'ignored';
    this.d.onChange();
    return 'applied';
  }

  private repo(ev: RecordEvent): RecordOutcome {
    const { repos } = this.d;
    if (!repos.mayServe(ev.did)) return 'ignored';
    if (ev.operation === 'delete') return this.removeRepo(ev.did, ev.rkey);
    const record = this.d.validator.validate<{
      name: string;
      knot: string;
      spindle?: string;
      repoDid?: string;
    }>(REPO_NSID, ev.record);
    if (record.spindle !== this.d.hostname) return this.removeRepo(ev.did, ev.rkey);
    const ok = repos.putRepo({
      owner: ev.did,
      rkey: ev.rkey,
      name: record.name,
      knot: record.knot,
      repoDid: record.repoDid || null,
    });
    if (!ok) {
      this.d.log.warn(
        { did: ev.did, rkey: ev.rkey, repoDid: record.repoDid },
        'repo DID already registered by another owner',
      );
      return 'ignored';
    }
    this.d.onChange();
    return 'applied';
  }

  private removeRepo(owner: string, rkey: string): RecordOutcome {
    if (!this.d.repos.removeRepo(owner, rkey)) return 'ignored';
    this.d.onChange();
    return 'applied';
  }

  private collaborator(ev: RecordEvent): RecordOutcome {
    const { repos } = this.d;
    if (!repos.mayServe(ev.did)) return 'ignored';
    if (ev.operation === 'delete') {
      repos.removeCollaborator(ev.did, ev.rkey);
      return 'applied';
    }
    const record = this.d.validator.validate<{ subject: string; repo: string }>(COLLABORATOR_NSID, ev.record);
    repos.putCollaborator(ev.did, ev.rkey, record.subject, record.repo);
    return 'applied';
  }
}
