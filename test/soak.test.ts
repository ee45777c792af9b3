/**
 * The soak (`npm run soak`) for two minutes: the daemon as a child process against every fake,
 * SIGKILLed and restarted, the knot dropping, Buildkite failing, webhooks lost; the script checks
 * its invariants itself and exits non-zero on any violation.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from './support/process.ts';

describe('soak', () => {
  it('holds every invariant for two minutes of faults', async () => {
    const child = spawn(
      process.execPath,
      [join(ROOT, 'soak/run.ts'), '--minutes', '2', '--kill-min', '15', '--kill-max', '30'],
      {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      out += d.toString();
    });
    const code = await new Promise((resolve) => child.on('exit', resolve));
    expect(out).toMatch(/faults survived: [1-9]\d* SIGKILLs/);
    expect(out).toContain('all invariants held');
    expect(code, out).toBe(0);
  }, 420_000);
});
