/** The envelope of a knot (or spindle) event-stream frame: `{rkey, nsid, event, created?}`. */
export interface KnotFrame {
  rkey: string;
  nsid: string;
  event: Record<string, unknown>;
  /** Unix ns from the sender's clock (newer knots); exact, as BigInt. */
  created?: bigint;
}

/**
 * Parses one text frame; undefined if it is not an envelope (not JSON, not an object, `rkey` or
 * `nsid` not strings, `event` not an object). `created` is read from its source digits: as a
 * JS number it would lose its last digits.
 */
export function parseKnotFrame(text: string): KnotFrame | undefined {
  let value: unknown;
  try {
    value = JSON.parse(
      text,
      function (this: unknown, key: string, v: unknown, context?: { source?: string }) {
        const holder = this as Record<string, unknown>;
        if (
          key === 'created' &&
          'rkey' in holder &&
          'nsid' in holder &&
          typeof v === 'number' &&
          context?.source
        ) {
          return /^\d+$/.test(context.source) ? BigInt(context.source) : v;
        }
        return v;
      },
    );
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const f = value as Record<string, unknown>;
  if (typeof f.rkey !== 'string' || typeof f.nsid !== 'string') return undefined;
  if (typeof f.event !== 'object' || f.event === null || Array.isArray(f.event)) return undefined;
  const frame: KnotFrame = { rkey: f.rkey, nsid: f.nsid, event: f.event as Record<string, unknown> };
  if (typeof f.created === 'bigint') frame.created = f.created;
  return frame;
}
