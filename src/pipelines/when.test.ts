import { describe, expect, it } from 'vitest';
import { type CompileTrigger, compileWorkflows } from './when.ts';

const push = (ref: string, changedFiles: string[] = []): CompileTrigger => ({
  kind: 'push',
  ref,
  changedFiles,
});
const pr = (targetBranch: string, action?: string): CompileTrigger => ({
  kind: 'pull_request',
  targetBranch,
  action,
});
const manual: CompileTrigger = { kind: 'manual' };

/** Does a workflow with this `when:` (YAML) run for the trigger? */
function runs(when: string | undefined, trigger: CompileTrigger): boolean {
  const raw = `${when === undefined ? '' : `when:\n${when}\n`}engine: nixery\nsteps: []\n`;
  const out = compileWorkflows([{ name: 'w.yml', raw }], trigger);
  expect(out.diagnostics).toEqual([]);
  return out.workflows.length === 1;
}

describe('when: matching (2026 spec §3.4, baseline §5.3)', () => {
  const cases: Array<[string, string | undefined, CompileTrigger, boolean]> = [
    ['no when runs always (push)', undefined, push('refs/heads/x'), true],
    ['no when runs always (PR)', undefined, pr('main'), true],
    ['empty list runs always', '  []', push('refs/heads/x'), true],
    ['branch glob matches a push to it', '  - event: push\n    branch: main', push('refs/heads/main'), true],
    ['branch glob misses another branch', '  - event: push\n    branch: main', push('refs/heads/dev'), false],
    ['event must list the kind', '  - event: pull_request\n    branch: main', push('refs/heads/main'), false],
    [
      'event alone never matches a push (empty branch list fails)',
      '  - event: push',
      push('refs/heads/main'),
      false,
    ],
    [
      'any entry matching is enough',
      '  - event: push\n    branch: dev\n  - event: push\n    branch: main',
      push('refs/heads/main'),
      true,
    ],
    ['event as a list', '  - event: [push, pull_request]\n    branch: [main]', pr('main'), true],
    [
      '* stays in one segment',
      '  - event: push\n    branch: "feature/*"',
      push('refs/heads/feature/a/b'),
      false,
    ],
    ['** spans segments', '  - event: push\n    branch: "feature/**"', push('refs/heads/feature/a/b'), true],
    [
      '* alone misses a branch with a slash',
      '  - event: push\n    branch: "*"',
      push('refs/heads/a/b'),
      false,
    ],
    ['braces', '  - event: push\n    branch: "{main,release}"', push('refs/heads/release'), true],
    ['character class', '  - event: push\n    branch: "release-[0-9]*"', push('refs/heads/release-2x'), true],
    [
      'a leading ! is literal, not negation',
      '  - event: push\n    branch: "!main"',
      push('refs/heads/dev'),
      false,
    ],
    ['parentheses are literal', '  - event: push\n    branch: "fix(ui)"', push('refs/heads/fix(ui)'), true],
    ['dot files are not special', '  - event: push\n    branch: "*"', push('refs/heads/.hidden'), true],
    ['tags match tag globs', '  - event: push\n    tag: "v*"', push('refs/tags/v1.2.0'), true],
    ['tags do not match branch globs', '  - event: push\n    branch: "**"', push('refs/tags/v1'), false],
    ['branches do not match tag globs', '  - event: push\n    tag: "**"', push('refs/heads/main'), false],
    [
      'other refs never match',
      '  - event: push\n    branch: "**"\n    tag: "**"',
      push('refs/notes/commits'),
      false,
    ],
    [
      'paths: a changed file matches',
      '  - event: push\n    branch: main\n    paths: ["src/**"]',
      push('refs/heads/main', ['README.md', 'src/a/b.ts']),
      true,
    ],
    [
      'paths: no changed file matches',
      '  - event: push\n    branch: main\n    paths: ["src/**"]',
      push('refs/heads/main', ['docs/x.md']),
      false,
    ],
    [
      'paths: a push with no changed files',
      '  - event: push\n    branch: main\n    paths: "**"',
      push('refs/heads/main'),
      false,
    ],
    ['PR: target branch matches', '  - event: pull_request\n    branch: main', pr('main', 'opened'), true],
    [
      'PR: the source branch does not count',
      '  - event: pull_request\n    branch: feat',
      pr('main', 'opened'),
      false,
    ],
    [
      'PR: synchronize is a default type',
      '  - event: pull_request\n    branch: main',
      pr('main', 'synchronize'),
      true,
    ],
    [
      'PR: reopened is a default type',
      '  - event: pull_request\n    branch: main',
      pr('main', 'reopened'),
      true,
    ],
    ['PR: closed is opt-in', '  - event: pull_request\n    branch: main', pr('main', 'closed'), false],
    ['PR: merged is opt-in', '  - event: pull_request\n    branch: main', pr('main', 'merged'), false],
    [
      'PR: merged when listed',
      '  - event: pull_request\n    branch: main\n    types: [merged]',
      pr('main', 'merged'),
      true,
    ],
    [
      'PR: types limit the defaults',
      '  - event: pull_request\n    branch: main\n    types: closed',
      pr('main', 'opened'),
      false,
    ],
    [
      'PR: a missing action counts as opened',
      '  - event: pull_request\n    branch: main\n    types: [opened]',
      pr('main'),
      true,
    ],
    [
      'PR: an entry with paths never matches (stock quirk)',
      '  - event: pull_request\n    branch: main\n    paths: "**"',
      pr('main', 'opened'),
      false,
    ],
    ['manual bypasses event', '  - event: push\n    branch: main', manual, true],
    ['manual bypasses everything', '  - event: pull_request\n    branch: nope\n    paths: x', manual, true],
  ];
  it.each(cases)('%s', (_name, when, trigger, expected) => {
    expect(runs(when, trigger)).toBe(expected);
  });

  it('limits a manual run to the named workflows', () => {
    const files = ['a.yml', 'b.yml'].map((name) => ({ name, raw: 'engine: nixery\n' }));
    const out = compileWorkflows(files, { kind: 'manual', workflows: ['b.yml'] });
    expect(out.workflows.map((w) => w.name)).toEqual(['b.yml']);
  });
});

describe('compiled workflows', () => {
  it('keeps name, engine and the raw YAML; clone defaults submodules and tags to true', () => {
    const raw = 'engine: nixery\nsteps: []\n';
    expect(compileWorkflows([{ name: 'ci.yml', raw }], push('refs/heads/main')).workflows).toEqual([
      {
        name: 'ci.yml',
        engine: 'nixery',
        raw,
        clone: { skip: false, depth: 0, submodules: true, tags: true },
      },
    ]);
  });

  it('takes clone options from the YAML', () => {
    const raw = 'engine: nixery\nclone:\n  skip: true\n  depth: 5\n  submodules: false\n  tags: false\n';
    expect(compileWorkflows([{ name: 'ci.yml', raw }], manual).workflows[0]!.clone).toEqual({
      skip: true,
      depth: 5,
      submodules: false,
      tags: false,
    });
  });

  it('drops, with a diagnostic each, a workflow without engine, unparsable YAML, a bad when and an invalid glob', () => {
    const files = [
      { name: 'no-engine.yml', raw: 'steps: []\n' },
      { name: 'blank-engine.yml', raw: 'engine: "  "\n' },
      { name: 'broken.yml', raw: 'engine: [unclosed\n' },
      { name: 'scalar.yml', raw: 'just text\n' },
      { name: 'bad-when.yml', raw: 'engine: nixery\nwhen:\n  - event: {push: 1}\n' },
      {
        name: 'bad-glob.yml',
        raw: 'engine: nixery\nwhen:\n  - event: pull_request\n    branch: "release-[0-9"\n',
      },
      { name: 'bad-escape.yml', raw: 'engine: nixery\nwhen:\n  - event: push\n    branch: "main\\\\"\n' },
      { name: 'ok.yml', raw: 'engine: nixery\n' },
    ];
    const out = compileWorkflows(files, push('refs/heads/main'));
    expect(out.workflows.map((w) => w.name)).toEqual(['ok.yml']);
    const why = Object.fromEntries(out.diagnostics.map((d) => [d.workflow, d.error]));
    expect(why['no-engine.yml']).toBe('workflow has no engine');
    expect(why['blank-engine.yml']).toBe('workflow has no engine');
    expect(why['broken.yml']).toMatch(/^workflow is not valid YAML: /);
    expect(why['scalar.yml']).toBe('workflow is not a YAML mapping');
    expect(why['bad-when.yml']).toBe('when[0].event must be a string or a list of strings');
    // The glob is checked even though this push could never reach the pull_request entry.
    expect(why['bad-glob.yml']).toMatch(/^when\[0\]\.branch: invalid glob "release-\[0-9"/);
    expect(why['bad-escape.yml']).toMatch(/invalid glob/);
  });
});
