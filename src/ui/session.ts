/**
 * The dashboard's admin session: signing in with TREADLE_ADMIN_TOKEN sets an HttpOnly,
 * SameSite=Strict cookie holding an expiry and an HMAC of it keyed by the token. Nothing is
 * stored server-side; changing the token ends every session. The token itself never travels in
 * a URL and never sits in the cookie. A form that changes something carries a second HMAC, of
 * the session cookie (`csrf`), which a page of another site cannot read.
 */
import { createHmac } from 'node:crypto';
import type { Context } from 'hono';
import { deleteCookie, getCookie, setCookie } from 'hono/cookie';
import { sameSecret } from '../http/secret.ts';

export const COOKIE = 'treadle_session';
const TTL_MS = 12 * 3_600_000;

export class AdminSessions {
  private readonly token: string | undefined;
  private readonly clock: () => number;
  private readonly hostname: string | undefined;

  /** `hostname`: the spindle's public name (TREADLE_HOSTNAME), a site of its own forms. */
  constructor(token: string | undefined, clock: () => number = Date.now, hostname?: string) {
    this.token = token;
    this.clock = clock;
    this.hostname = hostname;
  }

  /** Whether an admin token is configured at all. */
  get enabled(): boolean {
    return this.token !== undefined;
  }

  /** Whether the request carries a valid, unexpired session. */
  isAdmin(c: Context): boolean {
    if (!this.token) return false;
    const value = getCookie(c, COOKIE);
    const m = value ? /^(\d{1,16})\.([0-9a-f]{64})$/.exec(value) : null;
    if (!m) return false;
    const expires = Number(m[1]);
    return expires > this.clock() && sameSecret(m[2]!, this.sign(expires));
  }

  /** The anti-forgery value of this request's session, for the forms of its pages. */
  csrf(c: Context): string | undefined {
    if (!this.isAdmin(c)) return undefined;
    return createHmac('sha256', this.token!)
      .update(`treadle-ui-csrf:${getCookie(c, COOKIE)}`)
      .digest('hex');
  }

  /**
   * Whether a form post may change something: a valid session, its anti-forgery value, and no
   * sign of coming from another site (`Origin` of another host, `Sec-Fetch-Site` not same-origin).
   */
  mayChange(c: Context, csrf: string): boolean {
    const origin = c.req.header('origin');
    if (origin !== undefined) {
      // Behind a proxy the Host header may be the daemon's own address: the public name is also this site.
      const ours = [c.req.header('host'), c.req.header('x-forwarded-host'), this.hostname];
      const host = hostOf(origin);
      if (host === undefined || !ours.includes(host)) return false;
    }
    const site = c.req.header('sec-fetch-site');
    if (site !== undefined && site !== 'same-origin') return false;
    const expected = this.csrf(c);
    return expected !== undefined && sameSecret(csrf, expected);
  }

  /** Checks `token` and, when it is the admin token, sets the session cookie. */
  signIn(c: Context, token: string): boolean {
    if (!this.token || !sameSecret(token, this.token)) return false;
    const expires = this.clock() + TTL_MS;
    setCookie(c, COOKIE, `${expires}.${this.sign(expires)}`, {
      path: '/ui',
      httpOnly: true,
      sameSite: 'Strict',
      secure: isHttps(c),
      maxAge: TTL_MS / 1000,
    });
    return true;
  }

  signOut(c: Context): void {
    deleteCookie(c, COOKIE, { path: '/ui', secure: isHttps(c) });
  }

  private sign(expires: number): string {
    return createHmac('sha256', this.token!).update(`treadle-ui-session:${expires}`).digest('hex');
  }
}

/** Behind Fly's proxy the daemon sees HTTP; the proxy says what the browser used. */
function isHttps(c: Context): boolean {
  return c.req.header('x-forwarded-proto') === 'https' || new URL(c.req.url).protocol === 'https:';
}

function hostOf(origin: string): string | undefined {
  try {
    return new URL(origin).host;
  } catch {
    return undefined;
  }
}
