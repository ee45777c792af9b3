/**
 * A pull request round's patch: a gzip `git format-patch` series (2026 spec §3.2). Each patch
 * of a series starts with `From <commit> Mon Sep 17 00:00:00 2001` (the date is format-patch's
 * fixed mbox marker, so a commit message line starting with "From " is not mistaken for one);
 * the last such line names the series' tip, the commit a pull request pipeline builds.
 */
import { gunzipSync } from 'node:zlib';
import { PermanentError } from '../errors.ts';

/** The patch blob is unusable: not gzip, too large once inflated, or not a format-patch series. */
export class PatchError extends PermanentError {}

const FROM_LINE = /^From ([0-9a-f]{40}|[0-9a-f]{64}) Mon Sep 17 00:00:00 2001$/gm;

/** Inflates a gzip patch blob, refusing more than `maxBytes` of output. */
export function gunzipPatch(blob: Buffer, maxBytes: number): string {
  if (blob.length < 2 || blob[0] !== 0x1f || blob[1] !== 0x8b)
    throw new PatchError('the patch blob is not gzip (no gzip magic bytes)');
  try {
    return gunzipSync(blob, { maxOutputLength: maxBytes }).toString('utf8');
  } catch (err) {
    if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE')
      throw new PatchError(`the patch blob inflates to more than ${maxBytes} bytes`);
    throw new PatchError(`the patch blob is not valid gzip: ${(err as Error).message}`);
  }
}

/** The tip commit of a format-patch series: the last `From <sha>` marker line. */
export function tipCommit(patch: string): string {
  let tip: string | undefined;
  for (const m of patch.matchAll(FROM_LINE)) tip = m[1];
  if (!tip) throw new PatchError('the patch names no commit (no format-patch "From <sha>" line)');
  return tip;
}
