/**
 * `sh.tangled.knot.version` on a knot: newer knots report `capabilities`, which say which
 * generation they are without waiting to see what they send (2026 spec §4). Best effort:
 * bounded in time and size; undefined when the knot does not answer or reports none.
 */
import type { Logger } from '../logger.ts';

const MAX_BYTES = 64 * 1024;

export interface KnotVersion {
  version?: string;
  capabilities?: string[];
}

/** The capability that marks a knot of the 2026 generation: repos named by DID. */
export const REPO_DID_CAPABILITY = 'repo-did-input';

export async function knotVersion(
  knot: string,
  options: { dev: boolean; log: Logger; timeoutMs?: number },
): Promise<KnotVersion | undefined> {
  try {
    const res = await fetch(`${options.dev ? 'http' : 'https'}://${knot}/xrpc/sh.tangled.knot.version`, {
      signal: AbortSignal.timeout(options.timeoutMs ?? 3000),
      redirect: 'error',
    });
    if (!res.ok || Number(res.headers.get('content-length') ?? 0) > MAX_BYTES) {
      await res.body?.cancel();
      return undefined;
    }
    const text = await res.text();
    if (text.length > MAX_BYTES) return undefined;
    const body = JSON.parse(text) as { version?: unknown; capabilities?: unknown };
    const out: KnotVersion = {};
    if (typeof body.version === 'string') out.version = body.version.slice(0, 100);
    if (Array.isArray(body.capabilities))
      out.capabilities = body.capabilities.filter((c): c is string => typeof c === 'string').slice(0, 100);
    return out;
  } catch (err) {
    options.log.debug({ knot, err: String(err) }, 'knot version unknown');
    return undefined;
  }
}
