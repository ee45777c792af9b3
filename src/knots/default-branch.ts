/**
 * `sh.tangled.repo.getDefaultBranch` on a repo's knot, for the trigger repo block of pipelines
 * treadle builds (2026 spec §3.2). Best effort: empty on any failure, as stock does, bounded in
 * time, and remembered for a minute so a burst of pushes asks once.
 */
import type { Logger } from '../logger.ts';

const TTL_MS = 60_000;

export class DefaultBranches {
  private readonly cache = new Map<string, { name: string; at: number }>();
  private readonly dev: boolean;
  private readonly log: Logger;
  private readonly timeoutMs: number;

  constructor(options: { dev: boolean; log: Logger; timeoutMs?: number }) {
    this.dev = options.dev;
    this.log = options.log;
    this.timeoutMs = options.timeoutMs ?? 2000;
  }

  async get(knot: string, repoDid: string): Promise<string> {
    const key = `${knot} ${repoDid}`;
    const hit = this.cache.get(key);
    if (hit && Date.now() - hit.at < TTL_MS) return hit.name;
    let name = '';
    try {
      const url = `${this.dev ? 'http' : 'https'}://${knot}/xrpc/sh.tangled.repo.getDefaultBranch?repo=${encodeURIComponent(repoDid)}`;
      const res = await fetch(url, { signal: AbortSignal.timeout(this.timeoutMs), redirect: 'error' });
      if (res.ok) {
        const body = (await res.json()) as { name?: unknown };
        if (typeof body.name === 'string' && body.name.length <= 256) name = body.name;
      } else {
        await res.body?.cancel();
      }
    } catch (err) {
      this.log.debug({ knot, repoDid, err: String(err) }, 'default branch unknown');
    }
    this.cache.set(key, { name, at: Date.now() });
    if (this.cache.size > 10_000) this.cache.delete(this.cache.keys().next().value!);
    return name;
  }
}
