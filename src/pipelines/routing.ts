/**
 * Routing a workflow to a runner (first match wins): the first key of a top-level `treadle:`
 * block (or `tack:`), a runner named like the workflow's `engine`, the configured engine map;
 * otherwise the workflow fails as on a stock spindle: `unknown engine "<engine>"`.
 */
import { parse as parseYaml } from 'yaml';

export type Route =
  | { ok: true; runner: string; options: Record<string, unknown> }
  | { ok: false; error: string };

export interface RoutingTable {
  /** Names of the configured runners. */
  runners: ReadonlySet<string>;
  /** Engine name → runner name (TREADLE_ENGINES). */
  engines: Readonly<Record<string, string>>;
}

const BLOCK_KEYS = ['treadle', 'tack'] as const;

export function routeWorkflow(raw: string, engine: string, table: RoutingTable): Route {
  const byEngine = table.runners.has(engine) ? engine : table.engines[engine];
  let doc: unknown;
  try {
    doc = parseYaml(raw);
  } catch (err) {
    // A stock spindle looks the engine up before it parses: keep its error for unknown engines.
    if (byEngine === undefined) return unknownEngine(engine);
    return { ok: false, error: `workflow is not valid YAML: ${firstLine((err as Error).message)}` };
  }
  if (doc !== null && doc !== undefined && !isMapping(doc)) {
    if (byEngine === undefined) return unknownEngine(engine);
    return { ok: false, error: 'workflow is not valid: the top level must be a mapping' };
  }
  const top = (doc ?? {}) as Record<string, unknown>;
  for (const key of BLOCK_KEYS) {
    const block = top[key];
    if (block === undefined || block === null) continue;
    if (!isMapping(block) || Object.keys(block).length === 0) {
      return { ok: false, error: `workflow's ${key}: block must map a runner name to its options` };
    }
    const [runner, options] = Object.entries(block)[0]!;
    if (!table.runners.has(runner)) {
      return { ok: false, error: `unknown runner ${goQuote(runner)} in the workflow's ${key}: block` };
    }
    if (options !== null && options !== undefined && !isMapping(options)) {
      return { ok: false, error: `workflow's ${key}.${runner} must be a mapping of options` };
    }
    return { ok: true, runner, options: (options ?? {}) as Record<string, unknown> };
  }
  if (byEngine === undefined) return unknownEngine(engine);
  return { ok: true, runner: byEngine, options: {} };
}

function unknownEngine(engine: string): Route {
  return { ok: false, error: `unknown engine ${goQuote(engine)}` };
}

/** A string in Go's %q form, which stock uses for this message (JSON's form, for printable text). */
export function goQuote(s: string): string {
  return JSON.stringify(s);
}

function isMapping(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function firstLine(s: string): string {
  return s.split('\n')[0]!.trim();
}
