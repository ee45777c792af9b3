import { existsSync } from 'node:fs';
import { BuildkiteClient } from '../../providers/buildkite/client.ts';
import type { BuildkiteSettings } from '../config.ts';
import { loadConfig } from '../config.ts';
import { openDatabase } from '../db/database.ts';
import { InstanceLock } from '../db/instance-lock.ts';
import { schemaVersion } from '../db/migrate.ts';
import { MIGRATIONS } from '../db/migrations/index.ts';
import { QueueStore } from '../db/queue-store.ts';
import { ConfigError, errorMessage } from '../errors.ts';
import { createLogger } from '../logger.ts';
import { configuredRunners, routingTable } from '../pipelines/runners.ts';
import { EXIT } from './exit-codes.ts';
import type { Output } from './output.ts';

type Level = 'ok' | 'warn' | 'FAIL';

/** `treadle doctor`: checks what `serve` needs without changing anything. */
export async function doctorCommand(env: NodeJS.ProcessEnv, io: Output): Promise<number> {
  const results: Array<[Level, string]> = [];
  const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
  const nodeOk = major > 22 || (major === 22 && minor >= 19);
  results.push([nodeOk ? 'ok' : 'FAIL', `Node.js ${process.version} (treadle needs 22.19 or newer)`]);

  let dbPath: string | undefined;
  let bkSettings: BuildkiteSettings | undefined;
  try {
    const { config, warnings } = loadConfig(env);
    dbPath = config.db;
    bkSettings = config.buildkite;
    results.push([
      'ok',
      `configuration: spindle ${config.hostname} (did:web:${config.hostname}), owner ${config.owner}, listen ${config.listen.host}:${config.listen.port}`,
    ]);
    for (const w of warnings) results.push(['warn', w]);
    const runners = configuredRunners(config);
    try {
      routingTable(config, runners);
      const map = Object.entries(config.engines).map(([engine, runner]) => `${engine} → ${runner}`);
      results.push([
        'ok',
        `runners: ${runners.join(', ')}; engine map: ${map.length > 0 ? map.join(', ') : 'none (workflows route by engine name or a treadle: block)'}`,
      ]);
    } catch (err) {
      if (err instanceof ConfigError) for (const p of err.problems) results.push(['FAIL', p]);
      else throw err;
    }
  } catch (err) {
    if (err instanceof ConfigError) for (const p of err.problems) results.push(['FAIL', p]);
    else results.push(['FAIL', errorMessage(err)]);
    dbPath = env.TREADLE_DB ?? env.SPINDLE_SERVER_DB_PATH;
  }

  if (bkSettings) results.push(...(await checkBuildkite(bkSettings)));
  if (dbPath) results.push(...checkDatabase(dbPath));

  for (const [level, text] of results) io.out(`${level.padEnd(4)}  ${text}`);
  return results.some(([level]) => level === 'FAIL') ? EXIT.failure : EXIT.ok;
}

function checkDatabase(path: string): Array<[Level, string]> {
  if (!existsSync(path)) return [['ok', `database ${path} does not exist yet; serve creates it`]];
  const out: Array<[Level, string]> = [];
  try {
    const db = openDatabase(path, { mustExist: true, migrate: false });
    try {
      const version = schemaVersion(db);
      const latest = MIGRATIONS.at(-1)!.version;
      out.push([
        version === latest ? 'ok' : 'warn',
        `database ${path}: schema ${version ?? 'none'} (this treadle: ${latest}${version !== latest ? '; serve migrates it' : ''})`,
      ]);
      const holder = version ? InstanceLock.holder(db) : undefined;
      out.push([
        'ok',
        holder
          ? `served by pid ${holder.pid} on ${holder.host}, heartbeat ${Math.round((Date.now() - holder.heartbeatAt) / 1000)} s ago`
          : 'no treadle is serving this database now',
      ]);
      if (version) {
        const { dead } = new QueueStore(db).stats(Date.now());
        const total = [...dead.values()].reduce((a, b) => a + b, 0);
        if (total > 0) out.push(['warn', `${total} dead letter(s): see treadle queue stats`]);
      }
    } finally {
      db.close();
    }
  } catch (err) {
    out.push(['FAIL', `database ${path}: ${errorMessage(err)}`]);
  }
  return out;
}

/** Reads one page of the organisation's builds: proves the token, its read scope and the org. */
async function checkBuildkite(bk: BuildkiteSettings): Promise<Array<[Level, string]>> {
  if (!bk.token)
    return [['ok', 'Buildkite: not configured (set TREADLE_BUILDKITE_TOKEN to enable the buildkite runner)']];
  const out: Array<[Level, string]> = [];
  if (!bk.webhookSecret)
    out.push(['warn', 'Buildkite: no TREADLE_BUILDKITE_WEBHOOK_SECRET; builds are tracked by polling alone']);
  if (!bk.org) {
    out.push([
      'warn',
      'Buildkite: no TREADLE_BUILDKITE_ORG; every workflow must name its org in treadle.buildkite.org',
    ]);
    return out;
  }
  const client = new BuildkiteClient({
    apiUrl: bk.apiUrl,
    token: bk.token,
    requestsPerMinute: 10,
    log: createLogger('silent'),
    maxAttempts: 1,
    timeoutMs: 10_000,
  });
  try {
    await client.request({
      method: 'GET',
      path: `/organizations/${bk.org}/builds`,
      query: [['per_page', '1']],
    });
    out.push(['ok', `Buildkite: the token can read builds of organisation ${bk.org} at ${bk.apiUrl}`]);
  } catch (err) {
    out.push([
      'FAIL',
      `Buildkite: ${errorMessage(err)} (check TREADLE_BUILDKITE_TOKEN, its read_builds scope, and TREADLE_BUILDKITE_ORG)`,
    ]);
  } finally {
    await client.close();
  }
  return out;
}
