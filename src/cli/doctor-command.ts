import { existsSync } from 'node:fs';
import { RUNNER_MODULES } from '../../providers/index.ts';
import type { Config } from '../config.ts';
import { loadConfig } from '../config.ts';
import { openDatabase } from '../db/database.ts';
import { InstanceLock } from '../db/instance-lock.ts';
import { schemaVersion } from '../db/migrate.ts';
import { MIGRATIONS } from '../db/migrations/index.ts';
import { QueueStore } from '../db/queue-store.ts';
import { ConfigError, errorMessage } from '../errors.ts';
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
  let loaded: Config | undefined;
  try {
    const { config, warnings } = loadConfig(env);
    dbPath = config.db;
    loaded = config;
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

  if (loaded) for (const m of RUNNER_MODULES) if (m.doctor) results.push(...(await m.doctor(loaded)));
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
