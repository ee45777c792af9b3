/**
 * `treadle backup <file>`: a consistent online copy of the database while the daemon serves.
 * `treadle restore <file>`: puts a backup in place of the database; refused while a daemon
 * holds it. Neither copies the secrets key: the output names where it is, to be kept beside.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { loadAdminConfig } from '../config.ts';
import { backupDatabase, inspectBackup, restoreDatabase } from '../db/backup.ts';
import { openDatabase } from '../db/database.ts';
import { InstanceLock } from '../db/instance-lock.ts';
import { ConfigError } from '../errors.ts';
import { keyFileFor } from '../secrets/keyring.ts';
import { EXIT } from './exit-codes.ts';
import type { Output } from './output.ts';

export const BACKUP_USAGE = `usage:
  treadle backup <file> [--db <path>]    a consistent copy of the database, taken while treadle serves
  treadle restore <file> [--db <path>]   replace the database with a backup (stop the daemon first)

The copy is checked (integrity_check) before it is kept. The secrets key is not in it: keep the
key file (or TREADLE_SECRETS_KEY) with the backup, or the secrets in it cannot be read.
`;

function parse(args: string[]) {
  return parseArgs({
    args,
    allowPositionals: true,
    options: { db: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  });
}

function keyNote(secretsKey: string | undefined, db: string): string {
  return secretsKey
    ? 'the secrets key is TREADLE_SECRETS_KEY (not in the backup): keep it with the backup'
    : `the secrets key is ${keyFileFor(db)} (not in the backup): copy it with the backup`;
}

export async function backupCommand(args: string[], env: NodeJS.ProcessEnv, io: Output): Promise<number> {
  const { values, positionals } = parse(args);
  if (values.help) {
    io.out(BACKUP_USAGE);
    return EXIT.ok;
  }
  if (positionals.length !== 1) {
    io.err(BACKUP_USAGE);
    return EXIT.usage;
  }
  const config = loadAdminConfig(env).config;
  const path = values.db ?? config.db;
  const dest = resolve(positionals[0]!);
  if (resolve(path) === dest) throw new ConfigError('the backup file is the database itself');
  if (!existsSync(path))
    throw new ConfigError(`no treadle database at ${path} (set TREADLE_DB or pass --db)`);
  // No migration and no lock: a running daemon keeps serving; this is one more reader.
  const db = openDatabase(path, { mustExist: true, migrate: false });
  try {
    const r = await backupDatabase(db, dest);
    io.out(
      `backup written: ${dest} (${r.pages} pages, ${(r.bytes / 2 ** 20).toFixed(1)} MiB, ${(r.ms / 1000).toFixed(2)} s; integrity_check ok)\n`,
    );
    io.out(`${keyNote(config.secretsKey, path)}\n`);
    return EXIT.ok;
  } finally {
    db.close();
  }
}

export async function restoreCommand(args: string[], env: NodeJS.ProcessEnv, io: Output): Promise<number> {
  const { values, positionals } = parse(args);
  if (values.help) {
    io.out(BACKUP_USAGE);
    return EXIT.ok;
  }
  if (positionals.length !== 1) {
    io.err(BACKUP_USAGE);
    return EXIT.usage;
  }
  const config = loadAdminConfig(env).config;
  const path = values.db ?? config.db;
  const source = resolve(positionals[0]!);
  if (resolve(path) === source) throw new ConfigError('the backup file is the database itself');
  const { migrations } = inspectBackup(source);
  const db = openDatabase(path);
  const lock = new InstanceLock(db, path);
  try {
    // Throws InstanceLockedError (exit 75) while a daemon serves this database.
    lock.acquire();
    const r = await restoreDatabase(source, db);
    io.out(
      `restored ${path} from ${source} (${r.pages} pages, ${migrations} migrations; newer ones run when treadle starts)\n`,
    );
    io.out(`${keyNote(config.secretsKey, path)}\n`);
    return EXIT.ok;
  } finally {
    lock.release();
    db.close();
  }
}
