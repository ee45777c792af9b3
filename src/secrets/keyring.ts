/**
 * The keys secret values are sealed with (AES-256-GCM). From `TREADLE_SECRETS_KEY` (base64 of 32
 * bytes; a comma-separated list during a rotation, the first one sealing), or else from a key
 * file beside the database, created with mode 0600 on first use. A rotation in progress leaves
 * `<file>.next`, which is loaded too, so a crash at any point of `treadle secrets rotate-key`
 * loses nothing. Each sealed value records the id of its key (a hash prefix), never the key.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { ConfigError, PermanentError } from '../errors.ts';

const NONCE = 12;
const TAG = 16;

export interface Sealed {
  keyId: string;
  /** nonce | ciphertext | tag */
  bytes: Buffer;
}

export function keyId(key: Buffer): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 16);
}

export function parseKey(text: string, what: string): Buffer {
  const trimmed = text.trim();
  const key = Buffer.from(trimmed, 'base64');
  if (key.length !== 32 || !/^[A-Za-z0-9+/]+={0,2}$/.test(trimmed))
    throw new ConfigError(
      `${what} must be the base64 of exactly 32 bytes (e.g. \`openssl rand -base64 32\`)`,
    );
  return key;
}

export class Keyring {
  /** Seals new values. */
  readonly current: Buffer;
  private readonly byId: Map<string, Buffer>;

  constructor(keys: Buffer[]) {
    if (keys.length === 0) throw new ConfigError('no secrets key');
    this.current = keys[0]!;
    this.byId = new Map(keys.map((k) => [keyId(k), k]));
  }

  get currentId(): string {
    return keyId(this.current);
  }

  /** `aad` binds the value to where it is stored (repo and key name). */
  seal(value: string, aad: string): Sealed {
    const nonce = randomBytes(NONCE);
    const cipher = createCipheriv('aes-256-gcm', this.current, nonce);
    cipher.setAAD(Buffer.from(aad, 'utf8'));
    const body = Buffer.concat([cipher.update(value, 'utf8'), cipher.final()]);
    return { keyId: this.currentId, bytes: Buffer.concat([nonce, body, cipher.getAuthTag()]) };
  }

  open(sealed: Sealed, aad: string): string {
    const key = this.byId.get(sealed.keyId);
    if (!key) throw new PermanentError(`a secret is sealed with key ${sealed.keyId}, which is not loaded`);
    const b = sealed.bytes;
    const decipher = createDecipheriv('aes-256-gcm', key, b.subarray(0, NONCE));
    decipher.setAAD(Buffer.from(aad, 'utf8'));
    decipher.setAuthTag(b.subarray(b.length - TAG));
    try {
      return Buffer.concat([decipher.update(b.subarray(NONCE, b.length - TAG)), decipher.final()]).toString(
        'utf8',
      );
    } catch {
      throw new PermanentError(`a secret sealed with key ${sealed.keyId} does not authenticate`);
    }
  }

  has(id: string): boolean {
    return this.byId.has(id);
  }
}

export interface KeySource {
  keyring: Keyring;
  /** Where the keys came from, for logs and `doctor` (never the key). */
  source: 'env' | 'file';
  file?: string;
  /** True when this call created the key file. */
  created: boolean;
}

/** The key file used when `TREADLE_SECRETS_KEY` is unset: beside the database. */
export function keyFileFor(dbPath: string): string {
  return `${dbPath}.secrets-key`;
}

export function loadKeyring(env: string | undefined, dbPath: string): KeySource {
  if (env && env.trim() !== '') {
    const keys = env
      .split(',')
      .map((k, i) => parseKey(k, i === 0 ? 'TREADLE_SECRETS_KEY' : `TREADLE_SECRETS_KEY entry ${i + 1}`));
    return { keyring: new Keyring(keys), source: 'env', created: false };
  }
  const file = keyFileFor(dbPath);
  let created = false;
  if (!existsSync(file)) {
    writeKeyFile(file, randomBytes(32));
    created = true;
  }
  const keys: Buffer[] = [];
  // A rotation that did not finish: its new key seals from now on; both open.
  if (existsSync(`${file}.next`)) keys.push(parseKey(readFileSync(`${file}.next`, 'utf8'), `${file}.next`));
  keys.push(parseKey(readFileSync(file, 'utf8'), file));
  return { keyring: new Keyring(keys), source: 'file', file, created };
}

/** Writes a key file readable by its owner only (the mode is set at creation, then again). */
export function writeKeyFile(file: string, key: Buffer): void {
  writeFileSync(file, `${key.toString('base64')}\n`, { mode: 0o600, flag: 'w' });
  chmodSync(file, 0o600);
}
