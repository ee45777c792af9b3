/**
 * Buildkite webhook authentication (buildkite spec §8.5–8.6): `X-Buildkite-Token` compared in
 * constant time, or `X-Buildkite-Signature: timestamp=<s>,signature=<hex>` = HMAC-SHA256 with the
 * token as key over `<timestamp>.<raw body>`, checked before a ±5 min replay window.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

export type WebhookMode = 'token' | 'signature';
export const REPLAY_WINDOW_S = 300;

export type WebhookVerdict = { ok: true } | { ok: false; reason: string };

export interface WebhookHeaders {
  token?: string | null;
  signature?: string | null;
}

export function verifyWebhook(
  mode: WebhookMode,
  secret: string,
  headers: WebhookHeaders,
  body: Buffer,
  nowS: number = Math.floor(Date.now() / 1000),
): WebhookVerdict {
  if (mode === 'token') {
    if (!headers.token) return { ok: false, reason: 'missing X-Buildkite-Token' };
    // Hashing first gives equal lengths, so the comparison leaks nothing about the secret's length.
    return equal(sha256(headers.token), sha256(secret))
      ? { ok: true }
      : { ok: false, reason: 'wrong X-Buildkite-Token' };
  }
  if (!headers.signature) return { ok: false, reason: 'missing X-Buildkite-Signature' };
  const parts = new Map<string, string>();
  const pieces = headers.signature.split(',');
  for (const piece of pieces) {
    const eq = piece.indexOf('=');
    if (eq > 0) parts.set(piece.slice(0, eq).trim(), piece.slice(eq + 1).trim());
  }
  const timestamp = parts.get('timestamp');
  const signature = parts.get('signature');
  if (pieces.length !== 2 || !timestamp || !signature)
    return { ok: false, reason: 'X-Buildkite-Signature format is incorrect' };
  if (!/^\d{1,12}$/.test(timestamp))
    return { ok: false, reason: 'X-Buildkite-Signature timestamp is not a number' };
  if (!/^[0-9a-f]{64}$/i.test(signature))
    return { ok: false, reason: 'X-Buildkite-Signature is not 64 hex digits' };
  const expected = createHmac('sha256', secret).update(`${timestamp}.`).update(body).digest();
  if (!equal(Buffer.from(signature, 'hex'), expected)) return { ok: false, reason: 'signature mismatch' };
  if (Math.abs(nowS - Number(timestamp)) > REPLAY_WINDOW_S)
    return { ok: false, reason: `timestamp outside the ±${REPLAY_WINDOW_S} s window` };
  return { ok: true };
}

/** The header a sender computes (the fake Buildkite and tests use it). */
export function signWebhook(secret: string, body: Buffer | string, timestampS: number): string {
  const mac = createHmac('sha256', secret).update(`${timestampS}.`).update(body).digest('hex');
  return `timestamp=${timestampS},signature=${mac}`;
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

function equal(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
