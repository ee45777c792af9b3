/**
 * treadle's lexicons (lexicons/*.json) and validation of inbound records against them, tolerant
 * where stock peers deviate from the letter: a stock knot sends `$type: ""`.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type LexiconDoc, Lexicons } from '@atproto/lexicon';
import { InvalidRequestError } from '../errors.ts';

export const LEXICON_DIR = fileURLToPath(new URL('../../lexicons/', import.meta.url));

/** Every lexicon document in `dir` (all `*.json` files below it). */
export function readLexiconDocs(dir: string = LEXICON_DIR): LexiconDoc[] {
  const docs: LexiconDoc[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile() || !entry.name.endsWith('.json')) continue;
    const file = join(entry.parentPath, entry.name);
    try {
      docs.push(JSON.parse(readFileSync(file, 'utf8')) as LexiconDoc);
    } catch (err) {
      throw new Error(`lexicon ${file} is not valid JSON: ${(err as Error).message}`);
    }
  }
  return docs;
}

export class RecordValidator {
  readonly lexicons: Lexicons;

  constructor(docs: LexiconDoc[] = readLexiconDocs()) {
    this.lexicons = new Lexicons(docs);
  }

  /**
   * Checks `value` as a record of `nsid` and returns it with `$type` set. A missing or empty
   * `$type` is read as `nsid` (stock knots leave it empty); any other `$type` is an error.
   */
  validate<T extends object = Record<string, unknown>>(nsid: string, value: unknown): T & { $type: string } {
    const record = withType(nsid, value);
    try {
      this.lexicons.assertValidRecord(nsid, record);
    } catch (err) {
      throw new InvalidRequestError(`invalid ${nsid} record: ${(err as Error).message}`);
    }
    return record as T & { $type: string };
  }

  /**
   * Checks an XRPC procedure's JSON body against its lexicon's input schema; the error names the
   * first field at fault (400 `InvalidRequest` at the HTTP boundary).
   */
  validateInput<T>(nsid: string, body: unknown): T {
    try {
      this.lexicons.assertValidXrpcInput(nsid, body);
    } catch (err) {
      throw new InvalidRequestError(`invalid ${nsid} input: ${(err as Error).message}`);
    }
    return body as T;
  }
}

function withType(nsid: string, value: unknown): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidRequestError(`invalid ${nsid} record: not an object`);
  }
  const $type = (value as { $type?: unknown }).$type;
  if ($type === undefined || $type === '') return { ...value, $type: nsid };
  if ($type !== nsid)
    throw new InvalidRequestError(`invalid ${nsid} record: $type is ${JSON.stringify($type)}`);
  return value as Record<string, unknown>;
}
