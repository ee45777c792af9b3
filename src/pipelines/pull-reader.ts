/**
 * Reading a Tangled pull request as treadle understands it: the `sh.tangled.repo.pull` record
 * (from Jetstream, or its author's PDS), validated against its lexicon, and the commit it
 * proposes — the tip commit of the last round's patch blob (bounded, gunzipped). Shared by the
 * pull intake (which runs its pipelines) and landing (which lands it).
 */
import { BlobRef, jsonToLex } from '@atproto/lexicon';
import { getBlob, getRecord, type IdentityOptions, resolvePds } from '../atproto/identity.ts';
import type { RecordValidator } from '../atproto/lexicons.ts';
import { errorMessage, InvalidRequestError, PermanentError } from '../errors.ts';
import { gunzipPatch, tipCommit } from './patch.ts';

export const PULL_NSID = 'sh.tangled.repo.pull';
/** Bounds on a patch blob: as stored (gzip), and inflated. */
export const PATCH_BLOB_MAX_BYTES = 4 * 1024 * 1024;
export const PATCH_MAX_BYTES = 32 * 1024 * 1024;
export const PULL_URI =
  /^at:\/\/(did:[a-z]+:[A-Za-z0-9._:%-]{1,2000})\/sh\.tangled\.repo\.pull\/([A-Za-z0-9._~:-]{1,512})$/;

export interface PullRecord {
  target: { repo: string; branch: string };
  source?: { branch: string; repo?: string };
  patchBlob?: BlobRef;
  rounds?: Array<{ patchBlob: BlobRef }>;
}

export interface PullReaderDeps {
  identity: IdentityOptions;
  validator: RecordValidator;
  maxBlobBytes?: number;
  maxPatchBytes?: number;
}

export class PullReader {
  private readonly d: PullReaderDeps;

  constructor(deps: PullReaderDeps) {
    this.d = deps;
  }

  /** The validated record: `raw` when given (Jetstream), else read from the author's PDS (NotFoundError if gone). */
  async record(author: string, rkey: string, raw?: unknown): Promise<PullRecord> {
    const value =
      raw ??
      (await getRecord(await resolvePds(author, this.d.identity), author, PULL_NSID, rkey, this.d.identity));
    let lex: unknown;
    try {
      lex = jsonToLex(value);
    } catch (err) {
      // Whatever cannot be read as lexicon data is bad input, never a fault to retry.
      throw new InvalidRequestError(`invalid ${PULL_NSID} record: ${errorMessage(err)}`);
    }
    // A blob reference whose CID does not parse is left a plain object and refused here.
    return this.d.validator.validate<PullRecord>(PULL_NSID, lex);
  }

  /** The commit the pull proposes: the tip of its last round's patch. */
  async tip(author: string, pull: PullRecord): Promise<string> {
    const blob = pull.rounds?.at(-1)?.patchBlob ?? pull.patchBlob;
    if (!(blob instanceof BlobRef)) throw new PermanentError('the pull record has no patch blob');
    const maxBlob = this.d.maxBlobBytes ?? PATCH_BLOB_MAX_BYTES;
    if (blob.size > maxBlob)
      throw new PermanentError(`the patch blob is ${blob.size} bytes, over the ${maxBlob}-byte bound`);
    const pds = await resolvePds(author, this.d.identity);
    const gz = await getBlob(pds, author, blob.ref.toString(), maxBlob, this.d.identity);
    return tipCommit(gunzipPatch(gz, this.d.maxPatchBytes ?? PATCH_MAX_BYTES));
  }
}
