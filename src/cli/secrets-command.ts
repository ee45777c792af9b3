/**
 * `treadle secrets rotate-key`: reseals every repository secret under a new key while the daemon
 * is stopped (it takes the instance lock).
 *
 * With the key file, the new key is written to `<file>.next` (0600), every value is resealed in
 * one transaction, then `.next` replaces the file. The daemon loads both files while `.next`
 * exists, so a crash at any step loses nothing. With `TREADLE_SECRETS_KEY`, pass
 * `--new-key <base64>` (or let one be generated and printed). Afterwards set
 * `TREADLE_SECRETS_KEY=<new>`; the form `<new>,<old>` also works.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, renameSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { loadAdminConfig } from '../config.ts';
import { openExistingDatabase } from '../db/database.ts';
import { InstanceLock } from '../db/instance-lock.ts';
import { SecretStore } from '../db/secret-store.ts';
import { Keyring, keyFileFor, loadKeyring, parseKey, writeKeyFile } from '../secrets/keyring.ts';
import { EXIT } from './exit-codes.ts';
import type { Output } from './output.ts';

export const SECRETS_USAGE = `usage:
  treadle secrets rotate-key [--new-key <base64>] [--db <path>]

Reseals every repository secret under a new key. Stop the daemon first.
With a key file (TREADLE_SECRETS_KEY unset) the file is replaced; with TREADLE_SECRETS_KEY the new
key is --new-key or a generated one (printed), to be set as TREADLE_SECRETS_KEY afterwards.
`;

export function secretsCommand(args: string[], env: NodeJS.ProcessEnv, io: Output): number {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { 'new-key': { type: 'string' }, db: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) {
    io.out(SECRETS_USAGE);
    return EXIT.ok;
  }
  if (positionals.join(' ') !== 'rotate-key') {
    io.err(SECRETS_USAGE);
    return EXIT.usage;
  }
  const config = loadAdminConfig(env).config;
  const path = values.db ?? config.db;
  const db = openExistingDatabase(path);
  const lock = new InstanceLock(db, path);
  try {
    lock.acquire();
    const current = loadKeyring(config.secretsKey, path);
    const file = keyFileFor(path);
    if (current.source === 'file' && existsSync(`${file}.next`)) {
      // An interrupted rotation: finish it under its own new key before starting another.
      const count = new SecretStore(db, current.keyring).resealAll();
      renameSync(`${file}.next`, file);
      io.out(`finished an interrupted rotation (${count} secret(s)); run the command again for a new key\n`);
      return EXIT.ok;
    }
    const fresh = values['new-key'] ? parseKey(values['new-key'], '--new-key') : randomBytes(32);
    const old =
      current.source === 'file'
        ? []
        : config.secretsKey!.split(',').map((k) => parseKey(k, 'TREADLE_SECRETS_KEY'));
    if (current.source === 'file') writeKeyFile(`${file}.next`, fresh);
    const all =
      current.source === 'file' ? loadKeyring(undefined, path).keyring : new Keyring([fresh, ...old]);
    const count = new SecretStore(db, all).resealAll();
    if (current.source === 'file') {
      renameSync(`${file}.next`, file);
      io.out(`resealed ${count} secret(s) under a new key; ${file} replaced\n`);
    } else {
      io.out(`resealed ${count} secret(s) under the new key. Set it before starting treadle:\n`);
      io.out(
        `TREADLE_SECRETS_KEY=${values['new-key'] ? '<the key you passed>' : fresh.toString('base64')}\n`,
      );
    }
    return EXIT.ok;
  } finally {
    lock.release();
    db.close();
  }
}
