/**
 * The land API: `POST /land/v1/requests` queues a check or a merge (202 `{id}`), `GET
 * /land/v1/requests/<id>` answers with its result or its state, `GET /land/v1/targets` lists
 * the targets with their latest results. Authorised by `Authorization: Bearer
 * <TREADLE_ADMIN_TOKEN>` (compared in constant time), or by a service-auth JWT from the
 * target repo's owner or a collaborator. Everything is checked before anything is queued.
 */
import type { Context, Hono } from 'hono';
import type { ServiceAuth } from '../atproto/service-auth.ts';
import type { LandingStore, StoredResult } from '../db/landing-store.ts';
import type { RepoRow, RepoStore } from '../db/repo-store.ts';
import { AuthError, InvalidRequestError, XrpcError } from '../errors.ts';
import { jsonObjectBody } from '../http/body.ts';
import { sameSecret } from '../http/secret.ts';
import type { Logger } from '../logger.ts';
import type { Queue } from '../queue/index.ts';
import type { LandingTarget } from './config.ts';
import type { LandRequest } from './contract.ts';
import type { LandingHandler } from './handler.ts';
import type { Lander } from './lander.ts';
import { type PullLandingDeps, pullBody } from './pulls.ts';
import { readSubmission, submit } from './requests.ts';

export const LAND_METHOD = 'treadle.land.request';
const MAX_BODY = 256 * 1024;
const SHA = /^[0-9a-f]{40}$/;

export interface LandApiDeps {
  targets: readonly LandingTarget[];
  landers: ReadonlyMap<string, Lander>;
  handler: LandingHandler;
  store: LandingStore;
  queue: Queue;
  repos: RepoStore;
  auth: ServiceAuth;
  adminToken?: string;
  pulls: PullLandingDeps;
  log: Logger;
}

/** Who is asking: the operator (admin token), or a DID verified by service auth. */
type Caller = { admin: true } | { admin: false; did: string };

export class LandApi {
  private readonly d: LandApiDeps;

  constructor(deps: LandApiDeps) {
    this.d = deps;
  }

  mount(app: Hono): void {
    app.post('/land/v1/requests', async (c) => {
      const caller = await this.caller(c);
      let body = await jsonObjectBody(c, MAX_BODY);
      if (body.pull !== undefined) body = await pullBody(this.d.pulls, body, this.d.targets);
      const submission = readSubmission(body, this.d.targets, (t) => this.repoOf(t)?.knot ?? 'localhost');
      this.mayLand(caller, submission.target);
      for (const sha of (Array.isArray(body.commits) ? body.commits : []).filter((x) =>
        SHA.test(String(x)),
      )) {
        const lander = this.d.landers.get(submission.target.name)!;
        const found = await this.d.handler.withCheckout(submission.target, () =>
          lander.hasCommit(sha as string),
        );
        if (!found)
          throw new InvalidRequestError(
            `commit ${sha} is not in ${submission.target.repo} (the remote of target ${submission.target.name})`,
          );
      }
      const fresh = submit(this.d.queue, submission);
      this.d.log.info(
        {
          request: submission.request.id,
          target: submission.target.name,
          topic: submission.topic,
          by: who(caller),
          fresh,
        },
        'landing request queued',
      );
      return c.json({ id: submission.request.id }, 202);
    });
    app.get('/land/v1/requests/*', async (c) => {
      const caller = await this.caller(c);
      const id = decodeURIComponent(c.req.path.slice('/land/v1/requests/'.length));
      const done = this.d.store.result(id);
      if (done) {
        this.mayRead(caller, done.target);
        return c.json({ ...(JSON.parse(done.result) as object), kind: done.kind });
      }
      const pending = this.d.store.pending(id);
      if (!pending) throw new XrpcError(404, 'RequestNotFound', `no landing request ${id}`);
      this.mayRead(caller, (JSON.parse(pending.payload) as LandRequest).target);
      return c.json({ id, state: pending.inFlight ? 'running' : 'queued' });
    });
    app.get('/land/v1/targets', async (c) => {
      const caller = await this.caller(c);
      const visible = this.d.targets.filter((t) => caller.admin || this.canPush(caller.did, t));
      return c.json({
        targets: visible.map((t) => ({
          name: t.name,
          repo: t.repo,
          remoteUrl: t.remoteUrl,
          targetBranch: t.targetBranch,
          defaultStrategy: t.defaultStrategy,
          promoteMode: t.promoteMode,
          latest: this.d.store.latest(t.name, 10).map(view),
        })),
      });
    });
  }

  private async caller(c: Context): Promise<Caller> {
    const header = c.req.header('authorization');
    if (!header)
      throw new AuthError('Authorization: Bearer <TREADLE_ADMIN_TOKEN> or a service-auth token is required');
    const token = header.replace(/^Bearer\s+/i, '').trim();
    if (this.d.adminToken && sameSecret(token, this.d.adminToken)) return { admin: true };
    if (token.split('.').length !== 3)
      throw new AuthError('the bearer token is neither the admin token nor a service-auth token');
    const { did } = await this.d.auth.verify(header, LAND_METHOD);
    return { admin: false, did };
  }

  private repoOf(t: LandingTarget): RepoRow | undefined {
    if (!t.repo.includes('/')) return this.d.repos.servedRepoByDid(t.repo);
    return this.d.repos.servedRepos().find((r) => `${r.owner}/${r.name}` === t.repo);
  }

  private canPush(did: string, t: LandingTarget): boolean {
    const repo = this.repoOf(t);
    return !!repo && this.d.repos.hasPushRights(repo, did);
  }

  private mayLand(caller: Caller, t: LandingTarget): void {
    if (!caller.admin && !this.canPush(caller.did, t))
      throw new XrpcError(
        403,
        'Forbidden',
        `${caller.did} is neither the owner nor a collaborator of ${t.repo}`,
      );
  }

  private mayRead(caller: Caller, targetName: string): void {
    const t = this.d.targets.find((x) => x.name === targetName);
    if (caller.admin) return;
    if (!t || !this.canPush(caller.did, t))
      throw new XrpcError(403, 'Forbidden', `${caller.did} may not read requests for ${targetName}`);
  }
}

function view(r: StoredResult) {
  return {
    ...(JSON.parse(r.result) as object),
    kind: r.kind,
    finishedAt: new Date(r.finishedAt).toISOString(),
  };
}

function who(c: Caller): string {
  return c.admin ? 'admin token' : c.did;
}
