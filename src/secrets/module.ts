/**
 * Repository secrets: sealed at rest (keyring), managed through the secret XRPCs, and handed to
 * runs. Other capabilities use `RunSecrets`, never the store.
 */
import type { AppContext } from '../context.ts';
import type { WorkflowKey } from '../db/pipeline-store.ts';
import { SecretStore } from '../db/secret-store.ts';
import { subsystemLogger } from '../logger.ts';
import type { Module } from '../module.ts';
import { loadKeyring } from './keyring.ts';
import { Masker } from './masker.ts';
import { SecretApi } from './secret-api.ts';

/** What a run may know of its repository's secrets. */
export interface RunSecrets {
  /** The secrets of the repository a workflow's pipeline belongs to (empty when none or unreadable). */
  forWorkflow(key: WorkflowKey): Map<string, string>;
  /** A masker for the workflow's log lines. */
  maskerFor(key: WorkflowKey): Masker;
}

export interface SecretsModule extends Module {
  runSecrets: RunSecrets;
}

export function createSecrets(ctx: AppContext): SecretsModule {
  const { config, log, repos, pipelines } = ctx;
  const keys = loadKeyring(config.secretsKey, config.db);
  if (keys.created)
    log.warn(
      { file: keys.file },
      'TREADLE_SECRETS_KEY is unset: created a secrets key file (mode 0600); back it up with the database, or secrets are lost',
    );
  const store = new SecretStore(ctx.db, keys.keyring);
  store.onMoved = (from, to, count) => log.info({ from, to, count }, 'secrets moved to the repo DID');
  const api = new SecretApi({ auth: ctx.auth, repos, secrets: store, log: subsystemLogger(log, 'secrets') });

  // A value that cannot be opened (a missing key) leaves the run without secrets, as stock does, and says so.
  const forWorkflow = (key: WorkflowKey): Map<string, string> => {
    const p = pipelines.pipeline(key.knot, key.rkey);
    if (!p) return new Map();
    const repo = p.repoDid
      ? repos.servedRepoByDid(p.repoDid)
      : repos.servedRepoByName(key.knot, p.repoOwner, p.repoName);
    if (!repo) return new Map();
    try {
      return store.values(store.keyFor(repo));
    } catch (err) {
      log.error({ ...key, err: (err as Error).message }, 'secrets could not be opened; running without them');
      return new Map();
    }
  };
  return {
    name: 'secrets',
    runSecrets: { forWorkflow, maskerFor: (key) => new Masker(forWorkflow(key).values()) },
    xrpc: (app) => api.mount(app),
  };
}
