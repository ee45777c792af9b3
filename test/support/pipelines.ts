/** A push pipeline with one workflow, recorded straight into a PipelineStore (unit tests). */
import type { PipelineStore, WorkflowKey } from '../../src/db/pipeline-store.ts';

export function recordPushPipeline(
  store: PipelineStore,
  key: WorkflowKey,
  options: { runner: string; repoDid?: string | null; sha?: string },
): void {
  const sha = options.sha ?? 'a'.repeat(40);
  store.insertPipeline({
    knot: key.knot,
    rkey: key.rkey,
    repoOwner: 'did:plc:owner',
    repoName: 'hello',
    repoDid: options.repoDid ?? null,
    kind: 'push',
    commit: sha,
    created: 1n,
    origin: 'knot',
    record: JSON.stringify({
      triggerMetadata: {
        kind: 'push',
        push: { ref: 'refs/heads/main', newSha: sha, oldSha: '0'.repeat(40) },
        repo: { knot: key.knot, did: 'did:plc:owner', repo: 'hello' },
      },
      workflows: [{ name: key.name, engine: 'nixery', raw: 'steps: []' }],
    }),
    receivedAt: 0,
  });
  store.insertWorkflow({ ...key, engine: 'nixery', runner: options.runner, options: '{}' });
}
