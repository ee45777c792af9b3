/** The BuildRequest for one workflow of an accepted pipeline. */
import type { BuildRequest } from '../../providers/runner.ts';
import type { PipelineStore, WorkflowRow } from '../db/pipeline-store.ts';
import { pipelineUri } from './pipeline.ts';

interface Trigger {
  kind: string;
  repo: { knot: string; did: string; repo: string; repoDid?: string };
  push?: { ref: string; newSha: string; oldSha: string };
  pullRequest?: { sourceBranch: string; targetBranch: string; sourceSha: string };
  manual?: { sha?: string; ref?: string; inputs?: Array<{ key: string; value: string }> };
}

interface StoredPipeline {
  triggerMetadata: Trigger;
  workflows: Array<{ name: string; engine: string; raw: string }>;
}

export function buildRequest(store: PipelineStore, row: WorkflowRow, dev: boolean): BuildRequest {
  const p = store.pipeline(row.knot, row.rkey);
  if (!p) throw new Error(`pipeline ${row.knot}/${row.rkey} is not recorded`);
  const record = JSON.parse(p.record) as StoredPipeline;
  const t = record.triggerMetadata;
  const workflow = record.workflows.find((w) => w.name === row.name);
  const head = t.push
    ? { ref: t.push.ref, sha: t.push.newSha }
    : t.pullRequest
      ? { ref: `refs/heads/${t.pullRequest.sourceBranch}`, sha: t.pullRequest.sourceSha }
      : { ref: t.manual?.ref ?? '', sha: t.manual?.sha ?? p.commit ?? '' };
  const request: BuildRequest = {
    id: `${row.knot}/${row.rkey}/${row.name}`,
    repo: {
      did: t.repo.did,
      name: t.repo.repo,
      knot: row.knot,
      // Knots serve a repo with a DID at `/<repoDid>` (2026 spec §3.3); legacy ones at `/<owner>/<name>`.
      cloneUrl: `${dev ? 'http' : 'https'}://${row.knot}/${t.repo.repoDid ?? `${t.repo.did}/${t.repo.repo}`}`,
    },
    head,
    workflow: {
      name: row.name,
      raw: workflow?.raw ?? '',
      engine: row.engine,
      options: JSON.parse(row.options) as Record<string, unknown>,
    },
    env: {},
    metadata: { pipeline: pipelineUri(row.knot, row.rkey), trigger: t.kind },
  };
  if (t.pullRequest) request.base = { ref: `refs/heads/${t.pullRequest.targetBranch}` };
  for (const input of t.manual?.inputs ?? []) request.metadata[`input.${input.key}`] = input.value;
  return request;
}
