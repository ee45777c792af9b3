/** Parsers for the value kinds that configuration uses, shared by env and YAML sources. */
import { z } from 'zod';

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "1500", 1500, "1.5s", "5m", "1h30m", "7d" → milliseconds. */
export function parseDurationMs(input: string | number): number | undefined {
  if (typeof input === 'number') return Number.isInteger(input) && input >= 0 ? input : undefined;
  const text = input.trim();
  if (/^\d+$/.test(text)) return Number(text);
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/gy;
  let total = 0;
  let consumed = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    total += Number(m[1]) * (DURATION_UNITS[m[2]!] ?? Number.NaN);
    consumed = re.lastIndex;
  }
  if (consumed === 0 || consumed !== text.length || !Number.isFinite(total)) return undefined;
  return Math.round(total);
}

const TRUE_WORDS = new Set(['1', 't', 'true', 'yes', 'y', 'on']);
const FALSE_WORDS = new Set(['0', 'f', 'false', 'no', 'n', 'off', '']);

export const boolValue = z.union([z.boolean(), z.string()]).transform((v, ctx) => {
  if (typeof v === 'boolean') return v;
  const word = v.trim().toLowerCase();
  if (TRUE_WORDS.has(word)) return true;
  if (FALSE_WORDS.has(word)) return false;
  ctx.addIssue({ code: 'custom', message: 'not a boolean' });
  return z.NEVER;
});

export const durationValue = z.union([z.number(), z.string()]).transform((v, ctx) => {
  const ms = parseDurationMs(v);
  if (ms === undefined) {
    ctx.addIssue({ code: 'custom', message: 'not a duration' });
    return z.NEVER;
  }
  return ms;
});

export function intValue(min: number, max = Number.MAX_SAFE_INTEGER) {
  return z.union([z.number(), z.string()]).transform((v, ctx) => {
    const n = typeof v === 'number' ? v : /^\s*-?\d+\s*$/.test(v) ? Number(v) : Number.NaN;
    if (!Number.isInteger(n) || n < min || n > max) {
      ctx.addIssue({ code: 'custom', message: 'out of range' });
      return z.NEVER;
    }
    return n;
  });
}

export function numberValue(min: number) {
  return z.union([z.number(), z.string()]).transform((v, ctx) => {
    const n = typeof v === 'number' ? v : v.trim() === '' ? Number.NaN : Number(v);
    if (!Number.isFinite(n) || n < min) {
      ctx.addIssue({ code: 'custom', message: 'out of range' });
      return z.NEVER;
    }
    return n;
  });
}

export interface ListenAddress {
  host: string;
  port: number;
}

/** "host:port", "[::1]:port" or ":port" (all interfaces, as Go's net.Listen reads it). */
export function parseListen(text: string): ListenAddress | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]*)):(\d{1,5})$/.exec(text.trim());
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  const host = m[1] ?? (m[2] || '0.0.0.0');
  return { host, port };
}

export const listenValue = z.string().transform((v, ctx) => {
  const parsed = parseListen(v);
  if (!parsed) {
    ctx.addIssue({ code: 'custom', message: 'not a listen address' });
    return z.NEVER;
  }
  return parsed;
});

export function urlValue(protocols: readonly string[]) {
  return z.string().transform((v, ctx) => {
    let url: URL;
    try {
      url = new URL(v.trim());
    } catch {
      ctx.addIssue({ code: 'custom', message: 'not a URL' });
      return z.NEVER;
    }
    if (!protocols.includes(url.protocol)) {
      ctx.addIssue({ code: 'custom', message: `scheme ${url.protocol} not allowed` });
      return z.NEVER;
    }
    return url.toString().replace(/\/$/, url.pathname === '/' ? '' : '/');
  });
}

export const didValue = z
  .string()
  .transform((v) => v.trim())
  .pipe(z.string().regex(/^did:[a-z]+:[a-zA-Z0-9._:%-]*[a-zA-Z0-9._-]$/));

/** The spindle identity string: a host name with an optional port, no scheme or path. */
export const hostnameValue = z
  .string()
  .transform((v) => v.trim())
  .pipe(z.string().regex(/^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?(?::\d{1,5})?$/));

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** "nixery=stub,docker=buildkite" or a YAML mapping → {engine: runner}. */
export const enginesValue = z.union([z.string(), z.record(z.string(), z.string())]).transform((v, ctx) => {
  const pairs: Array<[string, string]> =
    typeof v === 'string'
      ? v
          .split(',')
          .map((p) => p.trim())
          .filter((p) => p !== '')
          .map((p) => {
            const eq = p.indexOf('=');
            return eq < 0 ? [p, ''] : [p.slice(0, eq).trim(), p.slice(eq + 1).trim()];
          })
      : Object.entries(v).map(([k, r]) => [k.trim(), r.trim()]);
  const map: Record<string, string> = {};
  for (const [engine, runner] of pairs) {
    if (!NAME.test(engine) || !NAME.test(runner)) {
      ctx.addIssue({ code: 'custom', message: `bad pair ${engine}=${runner}` });
      return z.NEVER;
    }
    map[engine] = runner;
  }
  return map;
});
