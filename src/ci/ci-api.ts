/**
 * The unauthenticated `sh.tangled.ci.*` reads (2026 spec §3.8): `queryPipelines`, `getPipeline`
 * and `describeWorkflowDefinition`. Parameters are checked here and a bad one is an
 * `InvalidRequest` naming it; every pipeline treadle runs, adopted or self-built, is visible.
 */
import { createHash } from 'node:crypto';
import type { Hono } from 'hono';
import { CiStore } from '../db/ci-store.ts';
import type { PipelineStore } from '../db/pipeline-store.ts';
import type { RepoStore } from '../db/repo-store.ts';
import { InvalidRequestError, PermanentError, XrpcError } from '../errors.ts';
import type { WorkflowFetcher } from '../git/workflow-fetcher.ts';
import { type CiPipeline, ciPipeline } from './pipeline-view.ts';

export const KINDS = ['push', 'pull_request', 'manual'];
const DID = /^did:[a-z]+:[A-Za-z0-9._:%-]{1,2048}$/;
const SHA = /^([0-9a-f]{40}|[0-9a-f]{64})$/;
/** The lexicon's default page size (stock's handler used 30 before the lexicon said 50). */
const DEFAULT_LIMIT = 50;
export const TID = /^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$/;
const MAX_COMMITS = 100;

export interface CiApiDeps {
  db: PipelineStore['db'];
  pipelines: PipelineStore;
  repos: RepoStore;
  fetcher: WorkflowFetcher;
}

export class CiApi {
  private readonly d: CiApiDeps;
  private readonly store: CiStore;

  constructor(deps: CiApiDeps) {
    this.d = deps;
    this.store = new CiStore(deps.db);
  }

  queryPipelines(params: URLSearchParams): { total: number; cursor?: string; pipelines: CiPipeline[] } {
    const repoDid = did(params.get('repo'), 'repo');
    const commits = params.getAll('commits');
    if (commits.length > MAX_COMMITS) throw new InvalidRequestError(`at most ${MAX_COMMITS} commits`);
    for (const c of commits)
      if (!SHA.test(c)) throw new InvalidRequestError(`commits: ${JSON.stringify(c)} is not a commit id`);
    const kinds = [...new Set(params.getAll('kinds'))];
    for (const k of kinds)
      if (!KINDS.includes(k))
        throw new InvalidRequestError(`kinds: ${JSON.stringify(k)} is not one of ${KINDS.join(', ')}`);
    const limit = integer(params.get('limit'), 'limit', 1, 250) ?? DEFAULT_LIMIT;
    const rawCursor = params.get('cursor');
    let before: bigint | undefined;
    if (rawCursor !== null && rawCursor !== '') {
      if (!/^\d{1,20}$/.test(rawCursor))
        throw new InvalidRequestError(
          `cursor: expected a decimal number (a pipeline's created time in ns), got ${JSON.stringify(rawCursor.slice(0, 40))}`,
        );
      before = BigInt(rawCursor);
    }
    const { rows, total } = this.store.page({ repoDid, commits, kinds, limit, before });
    const pipelines = rows.map((r) =>
      ciPipeline(r, JSON.parse(r.trigger ?? '{}'), this.d.pipelines.workflowsOf(r.knot, r.rkey)),
    );
    const last = rows.at(-1);
    return { total, ...(rows.length === limit && last ? { cursor: String(last.created) } : {}), pipelines };
  }

  getPipeline(params: URLSearchParams): CiPipeline {
    const tid = params.get('pipeline');
    if (!tid || !TID.test(tid)) throw new InvalidRequestError('pipeline: expected a TID');
    const row = this.d.pipelines.pipelineByTid(tid);
    if (!row) throw new XrpcError(404, 'PipelineNotFound', `no pipeline ${tid}`);
    const record = JSON.parse(row.record) as { triggerMetadata?: object };
    return ciPipeline(row, record.triggerMetadata ?? {}, this.d.pipelines.workflowsOf(row.knot, row.rkey));
  }

  /**
   * The workflow files at (repo, sha), not run: `hash` is `sha256:` over the files sorted by name,
   * each as name, NUL, content, NUL; a re-run is needed only when it changes. A workflow routed
   * to Buildkite is described by its file in `.tangled/workflows` (which names the Buildkite
   * pipeline): the steps Buildkite runs live in Buildkite and are not part of the hash.
   */
  async describeWorkflowDefinition(
    params: URLSearchParams,
  ): Promise<{ derived: true; hash: string; workflows: string[] }> {
    const repoDid = did(params.get('repo'), 'repo');
    const sha = params.get('sha') ?? params.get('commit') ?? '';
    if (!SHA.test(sha)) throw new InvalidRequestError('sha: expected a 40- or 64-digit commit id');
    const repo = this.d.repos.servedRepoByDid(repoDid);
    if (!repo) throw new XrpcError(404, 'RepoNotFound', `repo ${repoDid} is not served here`);
    // A fork's code is read from the fork's knot, which is known only when it is served here too.
    const sourceRepo = params.get('sourceRepo');
    const from = sourceRepo ? this.d.repos.servedRepoByDid(did(sourceRepo, 'sourceRepo')) : repo;
    if (!from)
      throw new InvalidRequestError(
        `sourceRepo ${sourceRepo} is not served by this spindle, so its knot is unknown here`,
      );
    let files: Awaited<ReturnType<WorkflowFetcher['fetch']>>;
    try {
      files = await this.d.fetcher.fetch(from.knot, from.repoDid!, sha);
    } catch (err) {
      if (err instanceof PermanentError) throw new InvalidRequestError(err.message);
      throw err;
    }
    const hash = createHash('sha256');
    for (const f of files) hash.update(f.name).update('\0').update(f.raw).update('\0');
    return { derived: true, hash: `sha256:${hash.digest('hex')}`, workflows: files.map((f) => f.name) };
  }

  mount(app: Hono): void {
    const get = (nsid: string, handler: (p: URLSearchParams) => unknown) => {
      app.get(`/xrpc/${nsid}`, async (c) =>
        c.json((await handler(new URL(c.req.url).searchParams)) as object),
      );
    };
    get('sh.tangled.ci.queryPipelines', (p) => this.queryPipelines(p));
    get('sh.tangled.ci.getPipeline', (p) => this.getPipeline(p));
    get('sh.tangled.ci.describeWorkflowDefinition', (p) => this.describeWorkflowDefinition(p));
  }
}

function did(value: string | null, name: string): string {
  if (!value) throw new InvalidRequestError(`${name} is required (a repo DID)`);
  if (!DID.test(value))
    throw new InvalidRequestError(`${name}: ${JSON.stringify(value.slice(0, 80))} is not a DID`);
  return value;
}

function integer(value: string | null, name: string, min: number, max: number): number | undefined {
  if (value === null || value === '') return undefined;
  const n = /^\d{1,6}$/.test(value) ? Number(value) : Number.NaN;
  if (!(n >= min && n <= max))
    throw new InvalidRequestError(`${name}: expected an integer from ${min} to ${max}`);
  return n;
}
