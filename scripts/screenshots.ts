/**
 * `npm run screenshots`: runs `treadle demo --serve`, then photographs each dashboard page at
 * 1280 px and 360 px wide in chromium into docs/screenshots/ (signing in for landing and queue).
 * Needs Debian's chromium (`apt-get install -y chromium`; TREADLE_TEST_CHROMIUM names another).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const ROOT = new URL('../', import.meta.url).pathname;
const OUT = join(ROOT, 'docs/screenshots');
const CHROMIUM = process.env.TREADLE_TEST_CHROMIUM ?? '/usr/bin/chromium';
const WIDTHS = [1280, 360];

if (!existsSync(CHROMIUM)) {
  process.stderr.write(`no chromium at ${CHROMIUM}: apt-get install -y chromium\n`);
  process.exit(1);
}

const demo = spawn(process.execPath, [join(ROOT, 'bin/treadle.js'), 'demo', '--serve'], {
  cwd: ROOT,
  stdio: ['ignore', 'pipe', 'inherit'],
});
const { base, token } = await new Promise<{ base: string; token: string }>((resolve, reject) => {
  let out = '';
  demo.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
    const m = /dashboard: (http:\/\/[^/\s]+)\/ui\/ \(admin pages: sign in with (\S+)\)/.exec(out);
    if (m && out.includes('serving until Ctrl-C')) resolve({ base: m[1]!, token: m[2]! });
  });
  demo.on('exit', (code) => reject(new Error(`treadle demo exited (${code}) before serving:\n${out}`)));
});

mkdirSync(OUT, { recursive: true });
const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
try {
  const overview = await browser.newPage();
  await overview.goto(`${base}/ui/`);
  const branch = await overview.locator('.repos a').first().getAttribute('href');
  await overview.goto(`${base}${branch}`);
  const commit = await overview.locator('.strip .cell').first().getAttribute('href');
  await overview.goto(`${base}/ui/`);
  const run = await overview.locator('.runs tbody a').first().getAttribute('href');
  await overview.close();
  const pages: Array<[string, string, boolean]> = [
    ['overview', '/ui/', false],
    ['branch', branch!, false],
    ['commit', commit!, false],
    ['run', run!, false],
    ['landing', '/ui/landing', true],
    ['queue', '/ui/queue', true],
  ];
  for (const width of WIDTHS) {
    const context = await browser.newContext({ viewport: { width, height: 900 }, colorScheme: 'light' });
    const page = await context.newPage();
    await page.goto(`${base}/ui/login`);
    await page.getByLabel('Admin token').fill(token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(`${base}/ui/`);
    for (const [name, path] of pages) {
      await page.goto(`${base}${path}`);
      // Let live logs arrive before the picture.
      await page.waitForTimeout(name === 'run' || name === 'commit' ? 1500 : 300);
      const file = join(OUT, `${name}-${width}.png`);
      await page.screenshot({ path: file, fullPage: true });
      process.stdout.write(`${file}\n`);
    }
    await context.close();
  }
} finally {
  await browser.close();
  demo.kill('SIGINT');
}
