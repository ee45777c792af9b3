/**
 * The dashboard's page shell and the small pieces every page uses. Pages are built with hono's
 * `html` tagged template, which escapes every interpolated string: record-derived text (repo and
 * workflow names, refs, errors) is never trusted as markup. Status is always an icon and a word,
 * never colour alone; times are relative with the absolute time on hover.
 */
import { html } from 'hono/html';
import type { HtmlEscapedString } from 'hono/utils/html';

export type Html = HtmlEscapedString | Promise<HtmlEscapedString>;

/** The Content-Security-Policy of every dashboard response: nothing inline, nothing foreign. */
export const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "form-action 'self'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join('; ');

export interface PageOptions {
  title: string;
  /** The nav item to mark as current. */
  nav: 'overview' | 'landing' | 'queue' | 'about' | 'login' | 'none';
  /** Whether the page re-renders itself when /events says something changed. */
  live?: boolean;
  admin: boolean;
}

export function page(o: PageOptions, body: Html): Html {
  const item = (key: PageOptions['nav'], href: string, label: string) =>
    html`<a href="${href}"${o.nav === key ? html` aria-current="page"` : ''}>${label}</a>`;
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${o.title} · treadle</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/ui/static/ui.css">
<script type="module" src="/ui/static/ui.js"></script>
</head>
<body${o.live ? html` data-live="1"` : ''}>
<a class="skip" href="#main">Skip to content</a>
<header class="top">
<a class="brand" href="/ui/">treadle</a>
<nav aria-label="Main">
${item('overview', '/ui/', 'Overview')}
${item('landing', '/ui/landing', 'Landing')}
${item('queue', '/ui/queue', 'Queue')}
${item('about', '/ui/about', 'About')}
${
  o.admin
    ? html`<form method="post" action="/ui/logout" class="inline"><button type="submit">Sign out</button></form>`
    : item('login', '/ui/login', 'Sign in')
}
</nav>
</header>
<main id="main" tabindex="-1">
${body}
</main>
<footer><span class="live-state" aria-live="polite"></span><noscript>Reload the page to see changes.</noscript></footer>
</body>
</html>`;
}

const ICONS: Record<string, [string, string]> = {
  success: ['✓', 'success'],
  green: ['✓', 'green'],
  succeeded: ['✓', 'green'],
  SUCCEEDED: ['✓', 'succeeded'],
  failed: ['✗', 'failed'],
  not_green: ['✗', 'not green'],
  FAILED: ['✗', 'failed'],
  timeout: ['⏱', 'timed out'],
  expired: ['⏱', 'expired'],
  cancelled: ['⊘', 'cancelled'],
  pending: ['◌', 'pending'],
  running: ['▶', 'running'],
  unknown: ['?', 'unknown'],
  connected: ['●', 'connected'],
  connecting: ['◌', 'connecting'],
  backoff: ['↻', 'reconnecting'],
  stopped: ['■', 'stopped'],
};

/** The CSS class a status is drawn with. */
export function tone(status: string): string {
  if (['success', 'green', 'succeeded', 'SUCCEEDED', 'connected'].includes(status)) return 'ok';
  if (['failed', 'not_green', 'FAILED', 'timeout', 'expired'].includes(status)) return 'bad';
  if (['running', 'pending', 'connecting', 'backoff'].includes(status)) return 'busy';
  return 'muted';
}

/** A status as icon and word. */
export function status(s: string | null | undefined): Html {
  const key = s ?? 'pending';
  const [icon, word] = ICONS[key] ?? ['?', key];
  return html`<span class="status ${tone(key)}"><span aria-hidden="true">${icon}</span> ${word}</span>`;
}

/** A time as "3 min ago", with the absolute time on hover and for machines. */
export function when(ms: number | null | undefined, now = Date.now()): Html {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return html`<span class="muted">—</span>`;
  const iso = new Date(ms).toISOString();
  return html`<time datetime="${iso}" title="${iso.replace('T', ' ').replace(/\.\d+Z$/, ' UTC')}">${ago(now - ms)}</time>`;
}

export function ago(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 5) return 'just now';
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86_400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86_400)} d ago`;
}

/** A duration in seconds, in the largest unit that reads well. */
export function duration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || seconds < 0) return '—';
  if (seconds < 60) return `${Math.round(seconds)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} min`;
}

export function shortSha(sha: string | null | undefined): string {
  return sha ? sha.slice(0, 8) : '—';
}

export function branchName(ref: string): string {
  return ref.replace(/^refs\/heads\//, '');
}

/** A query string from parameters (values encoded). */
export function qs(params: Record<string, string | number | undefined>): string {
  const parts = Object.entries(params)
    .filter(([, v]) => v !== undefined && v !== '')
    .map(([k, v]) => `${k}=${encodeURIComponent(String(v))}`);
  return parts.length ? `?${parts.join('&')}` : '';
}

/** An explanation panel for an empty list or a page that cannot show anything yet. */
export function empty(text: string): Html {
  return html`<p class="empty">${text}</p>`;
}
