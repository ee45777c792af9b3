/**
 * The dashboard in a real browser (Debian's chromium driven by playwright-core) against the real
 * daemon: the overview lists the repo, the branch strip shows red and green cells in push order,
 * a running workflow's log lines appear as the stub runner emits them, markup in record names
 * renders as text, the admin pages refuse without the token, a dead letter is dropped only once
 * its confirmation is accepted, nothing breaks the CSP, and a
 * 360 px wide page does not scroll sideways. Skipped, saying so, where no chromium is installed
 * (`.ci/run` installs it).
 */
import { existsSync } from 'node:fs';
import Database from 'better-sqlite3';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OWNER, onboard, pushStub, type Stack, type StubPush, startStack } from './support/stack.ts';
import { waitFor } from './support/wait.ts';

const CHROMIUM = process.env.TREADLE_TEST_CHROMIUM ?? '/usr/bin/chromium';
const HAVE = existsSync(CHROMIUM);
if (!HAVE)
  console.warn(`dashboard browser tests skipped: no chromium at ${CHROMIUM} (apt-get install -y chromium)`);

const TOKEN = 'browser-admin-token-0123456789abcdef0123456789ab';
const REPO = `${OWNER}/hello`;
let s: Stack;
let browser: Browser;
const problems: string[] = [];

let shas = 0;
function push(outcome: string, options: StubPush = {}) {
  const sha = (++shas).toString(16).padStart(40, 'd');
  return { sha, key: pushStub(s, sha, outcome, options) };
}

async function settled(sha: string): Promise<void> {
  await waitFor(
    async () => {
      const r = await fetch(
        `${s.daemon.base}/greenness/v1/status?repo=${encodeURIComponent(REPO)}&ref=main&commit=${sha}`,
      );
      const body = (await r.json()) as { status?: string };
      return body.status === 'green' || body.status === 'not_green';
    },
    `the verdict on ${sha.slice(0, 8)}`,
  );
}

async function open(path: string, width = 1280): Promise<Page> {
  const page = await browser.newPage({ viewport: { width, height: 900 } });
  page.on('console', (m) => {
    // A refused admin page is a 401 by design; anything else logged as an error is a problem.
    if (m.type() === 'error' && !/status of 401/.test(m.text())) problems.push(`${path}: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`${path}: ${e.message}`));
  page.on('dialog', (d) => {
    problems.push(`${path}: a dialog opened (${d.message()})`);
    void d.dismiss();
  });
  await page.goto(`${s.daemon.base}${path}`);
  return page;
}

describe.skipIf(!HAVE)('dashboard in chromium [needs chromium]', () => {
  beforeAll(async () => {
    s = await startStack({ TREADLE_ADMIN_TOKEN: TOKEN });
    await onboard(s);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await s?.close();
  });

  it('lists the repo on the overview, and the branch strip shows the pushes newest first', async () => {
    const pushes = [push('success'), push('failure'), push('success'), push('failure')];
    for (const p of pushes) await settled(p.sha);
    const overview = await open('/');
    expect(new URL(overview.url()).pathname).toBe('/ui/');
    await expect.poll(() => overview.locator('.repos .repo').allTextContents()).toContain('hello');
    await overview.getByRole('link', { name: 'main', exact: true }).click();
    await overview.waitForURL(/\/ui\/branch/);
    const cells = overview.locator('.strip .cell');
    const verdicts = await cells.evaluateAll((els) => els.map((e) => e.getAttribute('data-verdict')));
    expect(verdicts.slice(0, 4)).toEqual(['not_green', 'green', 'not_green', 'green']);
    const [first, second] = [await cells.nth(0).boundingBox(), await cells.nth(1).boundingBox()];
    expect(first!.x).toBeLessThan(second!.x);
    // Status is text too, not colour alone.
    expect(await cells.nth(0).textContent()).toContain(`${pushes[3]!.sha.slice(0, 8)}: not green`);
    await overview.close();
  });

  it("streams a running workflow's log lines into the page as the runner emits them", async () => {
    const { key } = push('success', {
      steps: ['one', 'two', 'three', 'four', 'five', 'six'],
      duration: '9s',
    });
    const path = `/ui/run/${encodeURIComponent(s.knot.host)}/${key}`;
    await waitFor(async () => (await fetch(`${s.daemon.base}${path}`)).status === 200, 'the run page');
    const page = await open(path);
    await page.evaluate('window.marker = 1');
    const log = page.locator('pre.terminal');
    await expect.poll(() => log.textContent(), { timeout: 10_000 }).toContain('▸ one');
    expect(await log.textContent()).not.toContain('▸ six');
    await expect.poll(() => log.textContent(), { timeout: 20_000 }).toContain('▸ six');
    // The same document all along: the lines came over the socket, not by a reload.
    expect(await page.evaluate('window.marker')).toBe(1);
    await expect
      .poll(() => page.locator('[data-part="workflows"] .status').first().textContent(), { timeout: 20_000 })
      .toContain('success');
    await page.close();
  });

  it('adds a new commit to the branch strip without a reload', async () => {
    const page = await open(`/ui/branch?repo=${encodeURIComponent(REPO)}&ref=main`);
    await expect.poll(() => page.locator('.live-state').textContent()).toBe('Live');
    await page.evaluate('window.marker = 2');
    const before = await page.locator('.strip .cell').count();
    const { sha } = push('failure');
    await settled(sha);
    await expect
      .poll(() => page.locator('.strip .cell').first().getAttribute('title'), { timeout: 10_000 })
      .toBe(`${sha.slice(0, 8)}: not green`);
    expect(await page.locator('.strip .cell').count()).toBe(before + 1);
    expect(await page.evaluate('window.marker')).toBe(2);
    await page.close();
  });

  it('renders ANSI colours in a log as coloured text, never as markup', async () => {
    const raw = [
      'engine: nixery',
      'steps:',
      '  - name: colours',
      '    command: "printf \\e[31mred\\e[0m plain \\e[1;38;5;208mbold orange\\e[0m <b>tag</b>"',
      'treadle:',
      '  stub:',
      '    outcome: success',
      '    duration: 0s',
      '',
    ].join('\n');
    const { key } = push('success', { raw });
    const path = `/ui/run/${encodeURIComponent(s.knot.host)}/${key}`;
    await waitFor(async () => (await fetch(`${s.daemon.base}${path}`)).status === 200, 'the run page');
    const page = await open(path);
    const red = page.locator('pre.terminal span.fg-red');
    await expect.poll(() => red.first().textContent(), { timeout: 10_000 }).toBe('red');
    const orange = page.locator('pre.terminal span.b');
    expect(await orange.first().textContent()).toBe('bold orange');
    expect(await orange.first().evaluate((e) => e.getAttribute('style'))).toContain('rgb(255, 135, 0)');
    expect(await page.locator('pre.terminal b').count()).toBe(0);
    expect(await page.locator('pre.terminal').textContent()).toContain('plain');
    expect(await page.locator('pre.terminal').textContent()).toContain('<b>tag</b>');
    await page.close();
  });

  it('renders markup in a workflow name as text', async () => {
    const probe = '<img src=x onerror=alert(1)>';
    const { key } = push('success', { workflow: `${probe}.yml` });
    const path = `/ui/run/${encodeURIComponent(s.knot.host)}/${key}`;
    await waitFor(async () => (await fetch(`${s.daemon.base}${path}`)).status === 200, 'the run page');
    const page = await open(path);
    await expect(page.locator('[data-part="workflows"] tbody th').first().textContent()).resolves.toBe(
      `${probe}.yml`,
    );
    expect(await page.locator('main img').count()).toBe(0);
    await page.close();
  });

  it('refuses the queue page without the token, and shows it after signing in', async () => {
    const page = await open('/ui/queue');
    await expect(page.locator('h1').textContent()).resolves.toBe('Sign in needed');
    expect(await page.locator('table').count()).toBe(0);
    await page.getByLabel('Admin token').fill('wrong');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('not the admin token');
    await page.getByLabel('Admin token').fill(TOKEN);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(/\/ui\/queue$/);
    await expect(page.locator('h1').textContent()).resolves.toBe('Queue');
    await expect.poll(() => page.locator('table code').allTextContents()).toContain('workflow.status');
    await page.close();
  });

  it('drops a dead letter from the queue page once the confirmation is accepted', async () => {
    const page = await browser.newPage();
    page.on('pageerror', (e) => problems.push(`queue actions: ${e.message}`));
    await page.goto(`${s.daemon.base}/ui/login?next=/ui/queue`);
    await page.getByLabel('Admin token').fill(TOKEN);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(/\/ui\/queue$/);
    const db = new Database(s.db);
    const letters = () =>
      db.prepare(`SELECT COUNT(*) FROM queue_messages WHERE topic = 'ui.browser_dlq'`).pluck().get();
    try {
      db.prepare(
        `INSERT INTO queue_messages (topic, partition_key, id, payload, metadata, published_at, failed_at,
           failure_count, last_error, original_topic) VALUES ('ui.browser_dlq', 'p', 'browser/1', '{}', '{}', ?, ?, 5, 'boom', 'ui.browser')`,
      ).run(Date.now(), Date.now());
      await page.reload();
      const asked: string[] = [];
      let answer = false;
      page.on('dialog', (d) => {
        asked.push(d.message());
        void (answer ? d.accept() : d.dismiss());
      });
      const drop = page.getByRole('button', { name: 'Drop browser/1' });
      await drop.click();
      await expect.poll(() => asked).toEqual(['Drop browser/1 for good?']);
      expect(letters(), 'a dismissed confirmation drops nothing').toBe(1);
      answer = true;
      await drop.click();
      await page.waitForURL(/dropped=1/);
      await expect.poll(() => page.getByRole('status').textContent()).toContain('Dropped 1 dead letter');
      expect(letters()).toBe(0);
    } finally {
      db.close();
      await page.close();
    }
  });

  it('fits a 360 px screen without sideways scrolling, is keyboard navigable, and breaks no CSP rule', async () => {
    for (const path of ['/ui/', `/ui/branch?repo=${encodeURIComponent(REPO)}&ref=main`, '/ui/about']) {
      const page = await open(path, 360);
      const wide = (await page.evaluate('document.documentElement.scrollWidth')) as number;
      expect(wide, path).toBeLessThanOrEqual(360);
      await page.keyboard.press('Tab');
      expect(await page.evaluate('document.activeElement?.textContent')).toBe('Skip to content');
      await page.close();
    }
    expect(problems).toEqual([]);
  });
});
