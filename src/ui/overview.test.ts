/** The overview's "Needs a person" rules, which the daemon tests cannot reach in real time. */
import { describe, expect, it } from 'vitest';
import { needsAPerson } from './overview.ts';

const MIN = 60_000;
const text = async (lines: ReturnType<typeof needsAPerson>) => (await Promise.all(lines)).map(String);

describe('needsAPerson', () => {
  it('names a knot down for 10 minutes, not one down for 9 or one connected', async () => {
    const lines = await text(
      needsAPerson({
        knots: [
          { knot: 'knot.down.example', state: 'backoff', downForMs: 11 * MIN },
          { knot: 'knot.blip.example', state: 'connecting', downForMs: 9 * MIN },
          { knot: 'knot.up.example', state: 'connected', downForMs: 0 },
        ],
        deadTotal: 0,
        runners: new Map(),
      }),
    );
    expect(lines).toEqual([
      '<li>Knot knot.down.example has been disconnected for over 10 minutes: new pushes there are not seen.</li>',
    ]);
  });

  it('counts several knots down, escapes a knot name, and warns of dead letters and a runner near its budget', async () => {
    const lines = await text(
      needsAPerson({
        knots: [
          { knot: 'a.example', state: 'backoff', downForMs: 10 * MIN },
          { knot: '<b>x</b>', state: 'connecting', downForMs: 60 * MIN },
        ],
        deadTotal: 1,
        runners: new Map([
          ['buildkite', { budgetUsed: () => 0.85 }],
          ['stub', {}],
          ['calm', { budgetUsed: () => 0.5 }],
        ]),
      }),
    );
    expect(lines[0]).toContain('2 knots have been disconnected for over 10 minutes');
    expect(lines[1]).toContain('1 dead letter in the queue');
    expect(lines[2]).toContain('Runner buildkite has used 85% of its API rate limit');
    expect(lines).toHaveLength(3);
    const one = await text(
      needsAPerson({
        knots: [{ knot: '<b>x</b>', state: 'backoff', downForMs: 10 * MIN }],
        deadTotal: 0,
        runners: new Map(),
      }),
    );
    expect(one[0]).toContain('Knot &lt;b&gt;x&lt;/b&gt; has');
    expect(await text(needsAPerson({ knots: [], deadTotal: 0, runners: new Map() }))).toEqual([]);
  });
});
