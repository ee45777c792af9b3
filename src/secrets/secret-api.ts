/**
 * `sh.tangled.repo.addSecret`, `removeSecret` and `listSecrets` (spindle protocol §10.3–10.5):
 * service auth first (403 `Auth`), then the body, the key's syntax and the lexicon's lengths
 * (400 `Generic`, which stock does not check), the repo AT-URI (400 `InvalidRepo`), and the
 * caller's rights: the repo's owner or a collaborator as discovery recorded them (401
 * `AccessControl`, with stock's spelling). Success is stock's: 200 with an empty body for the
 * writes, `{"secrets":[…]}` without values for the list. Secrets are keyed by the repo's DID
 * when it has one, else by `<ownerDid>/<name>` (2026 spec §3.8).
 */
import type { Hono } from 'hono';
import type { ServiceAuth } from '../atproto/service-auth.ts';
import type { RepoRow, RepoStore } from '../db/repo-store.ts';
import type { SecretStore } from '../db/secret-store.ts';
import { XrpcError } from '../errors.ts';
import { jsonObjectBody } from '../http/body.ts';
import type { Logger } from '../logger.ts';

const KEY = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
/** A `sh.tangled.repo` record's AT-URI: owner DID and rkey. */
export const REPO_URI =
  /^at:\/\/(did:[a-z]+:[A-Za-z0-9._:%-]{1,2048})\/sh\.tangled\.repo\/([A-Za-z0-9._~:-]{1,512})$/;
const MAX_KEY = 50;
const MAX_VALUE_BYTES = 200;
const MAX_BODY = 16 * 1024;

export interface SecretApiDeps {
  auth: ServiceAuth;
  repos: RepoStore;
  secrets: SecretStore;
  log: Logger;
}

const generic = (message: string) => new XrpcError(400, 'Generic', message);

export class SecretApi {
  private readonly d: SecretApiDeps;

  constructor(deps: SecretApiDeps) {
    this.d = deps;
  }

  mount(app: Hono): void {
    app.post('/xrpc/sh.tangled.repo.addSecret', async (c) => {
      const caller = await this.d.auth.verify(c.req.header('authorization'), 'sh.tangled.repo.addSecret');
      const body = await jsonObjectBody(c, MAX_BODY, generic);
      const key = str(body.key);
      const value = body.value;
      if (!KEY.test(key)) throw generic('key is not a valid identifier');
      if (key.length > MAX_KEY) throw generic(`key is longer than ${MAX_KEY} characters`);
      if (typeof value !== 'string') throw generic('value must be a string');
      const bytes = Buffer.byteLength(value, 'utf8');
      if (bytes < 1 || bytes > MAX_VALUE_BYTES)
        throw generic(`value must be 1 to ${MAX_VALUE_BYTES} bytes (got ${bytes})`);
      const repo = this.d.secrets.keyFor(this.authorise(str(body.repo), caller.did));
      if (!this.d.secrets.add(repo, key, value, caller.did))
        throw new XrpcError(500, 'Generic', 'key already present');
      this.d.log.info({ repo, key, by: caller.did }, 'secret added');
      return c.body(null, 200);
    });
    app.post('/xrpc/sh.tangled.repo.removeSecret', async (c) => {
      const caller = await this.d.auth.verify(c.req.header('authorization'), 'sh.tangled.repo.removeSecret');
      const body = await jsonObjectBody(c, MAX_BODY, generic);
      const repo = this.d.secrets.keyFor(this.authorise(str(body.repo), caller.did));
      const key = str(body.key);
      if (!this.d.secrets.remove(repo, key)) throw new XrpcError(500, 'Generic', 'key not found');
      this.d.log.info({ repo, key, by: caller.did }, 'secret removed');
      return c.body(null, 200);
    });
    app.get('/xrpc/sh.tangled.repo.listSecrets', async (c) => {
      const caller = await this.d.auth.verify(c.req.header('authorization'), 'sh.tangled.repo.listSecrets');
      const uri = c.req.query('repo');
      if (!uri) throw generic('empty params');
      const repo = this.authorise(uri, caller.did);
      const secrets = this.d.secrets
        .list(this.d.secrets.keyFor(repo))
        .map((s) => ({ createdAt: s.createdAt, createdBy: s.createdBy, key: s.key, repo: uri }));
      return c.json({ secrets });
    });
    for (const m of ['addSecret', 'removeSecret'])
      app.all(`/xrpc/sh.tangled.repo.${m}`, (c) => c.body(null, 405));
    app.all('/xrpc/sh.tangled.repo.listSecrets', (c) => c.body(null, 405));
  }

  /** The served repo `uri` names, if `did` may manage its secrets. */
  private authorise(uri: string, did: string): RepoRow {
    const m = REPO_URI.exec(uri);
    if (!m) throw new XrpcError(400, 'InvalidRepo', `supplied at-uri is not a repo: ${uri.slice(0, 300)}`);
    const repo = this.d.repos.servedRepo(m[1]!, m[2]!);
    if (!repo || !this.d.repos.hasPushRights(repo, did))
      throw new XrpcError(
        401,
        'AccessControl',
        `DID does not have sufficent access permissions for this operation: ${did}`,
      );
    return repo;
  }
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : '';
}
