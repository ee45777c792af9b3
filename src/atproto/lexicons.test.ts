import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { InvalidRequestError } from '../errors.ts';
import { RecordValidator, readLexiconDocs } from './lexicons.ts';

/**
 * Upstream Tangled lexicons: reference data that sits beside a development checkout (never in
 * the repository), read only by this test. A clone on its own skips the comparison, visibly;
 * `.ci/run` refuses that skip, because CI always has the reference.
 */
const REFERENCE = fileURLToPath(new URL('../../../shared/reference/lexicons/', import.meta.url));
const HAS_REFERENCE = existsSync(REFERENCE);
if (!HAS_REFERENCE)
  console.warn(
    `skipping the comparison with upstream lexicons: ${REFERENCE} does not exist (it is only beside development checkouts)`,
  );

const SHA = '1'.repeat(40);
const NOW = '2025-11-27T18:05:02Z';
const pipeline = (repo: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  $type: 'sh.tangled.pipeline',
  triggerMetadata: {
    kind: 'push',
    push: { ref: 'refs/heads/main', newSha: SHA, oldSha: '0'.repeat(40) },
    repo: { knot: 'knot.example.com', did: 'did:plc:alice', repo: 'hello', defaultBranch: '', ...repo },
  },
  workflows: [
    {
      name: 'ci.yml',
      engine: 'nixery',
      clone: { skip: false, depth: 0, submodules: false },
      raw: 'steps: []',
    },
  ],
  ...extra,
});
const status = (extra: Record<string, unknown>) => ({
  $type: 'sh.tangled.pipeline.status',
  pipeline: 'at://did:web:knot.example.com/sh.tangled.pipeline/3m6abcxyz2k2a',
  workflow: 'at://did:web:knot.example.com/sh.tangled.pipeline/3m6abcxyz2k2a',
  status: 'pending',
  createdAt: NOW,
  ...extra,
});
const repo = (extra: Record<string, unknown>) => ({
  $type: 'sh.tangled.repo',
  name: 'hello',
  knot: 'knot.example.com',
  spindle: 'spindle.example.com',
  createdAt: NOW,
  ...extra,
});

interface Fixture {
  name: string;
  nsid: string;
  record: unknown;
  valid: boolean;
  /** Set where treadle deliberately disagrees with upstream: the reference's verdict, and why. */
  reference?: { valid: boolean; why: string };
}

const FIXTURES: Fixture[] = [
  { name: 'stock push pipeline', nsid: 'sh.tangled.pipeline', record: pipeline({}), valid: true },
  {
    name: 'pull request pipeline',
    nsid: 'sh.tangled.pipeline',
    record: {
      ...pipeline({}),
      triggerMetadata: {
        kind: 'pull_request',
        pullRequest: { sourceBranch: 'feat', targetBranch: 'main', sourceSha: SHA, action: 'create' },
        repo: { knot: 'k', did: 'did:plc:alice', repo: 'hello', defaultBranch: '' },
      },
    },
    valid: true,
  },
  {
    name: 'pipeline without workflows',
    nsid: 'sh.tangled.pipeline',
    record: pipeline({}, { workflows: undefined }),
    valid: false,
  },
  {
    name: 'workflow without clone options',
    nsid: 'sh.tangled.pipeline',
    record: pipeline({}, { workflows: [{ name: 'ci.yml', engine: 'nixery', raw: '' }] }),
    valid: false,
  },
  {
    name: 'unknown trigger kind',
    nsid: 'sh.tangled.pipeline',
    record: { ...pipeline({}), triggerMetadata: { ...pipeline({}).triggerMetadata, kind: 'tag' } },
    valid: false,
  },
  {
    name: 'short sha',
    nsid: 'sh.tangled.pipeline',
    record: {
      ...pipeline({}),
      triggerMetadata: {
        ...pipeline({}).triggerMetadata,
        push: { ref: 'refs/heads/main', newSha: 'abc', oldSha: SHA },
      },
    },
    valid: false,
  },
  {
    name: 'owner that is not a DID',
    nsid: 'sh.tangled.pipeline',
    record: pipeline({ did: 'alice' }),
    valid: false,
  },
  {
    name: 'trigger repo with a repo DID and no name (spindle-built pipeline)',
    nsid: 'sh.tangled.pipeline',
    record: pipeline({ repo: undefined, repoDid: 'did:plc:repo123' }),
    valid: true,
    reference: { valid: false, why: '2026: `repo` became optional once repos have DIDs' },
  },
  {
    name: 'trigger repo DID that is not a DID',
    nsid: 'sh.tangled.pipeline',
    record: pipeline({ repoDid: 'repo123' }),
    valid: false,
    reference: {
      valid: true,
      why: '2026: `repoDid` is a DID; upstream at this commit does not know the field',
    },
  },
  {
    name: 'status with an AT-URI workflow',
    nsid: 'sh.tangled.pipeline.status',
    record: status({}),
    valid: true,
  },
  {
    name: 'stock status: workflow as a plain name',
    nsid: 'sh.tangled.pipeline.status',
    record: status({ workflow: 'ci.yml' }),
    valid: true,
    reference: {
      valid: false,
      why: 'the lexicon says at-uri, but every spindle sends the plain workflow name',
    },
  },
  {
    name: 'stock failed status',
    nsid: 'sh.tangled.pipeline.status',
    record: status({ status: 'failed', error: 'workflow failed', exitCode: -1 }),
    valid: true,
  },
  {
    name: 'status with an unknown status',
    nsid: 'sh.tangled.pipeline.status',
    record: status({ status: 'ok' }),
    valid: false,
  },
  {
    name: 'status with a bad createdAt',
    nsid: 'sh.tangled.pipeline.status',
    record: status({ createdAt: 'yesterday' }),
    valid: false,
  },
  { name: 'repo', nsid: 'sh.tangled.repo', record: repo({}), valid: true },
  {
    name: 'repo with a repo DID',
    nsid: 'sh.tangled.repo',
    record: repo({ repoDid: 'did:plc:repo123' }),
    valid: true,
  },
  {
    name: 'repo with a repo DID that is not a DID',
    nsid: 'sh.tangled.repo',
    record: repo({ repoDid: 'nope' }),
    valid: false,
    reference: {
      valid: true,
      why: '2026: `repoDid` is a DID; upstream at this commit does not know the field',
    },
  },
  { name: 'repo without knot', nsid: 'sh.tangled.repo', record: repo({ knot: undefined }), valid: false },
  {
    name: 'repo with a 141-grapheme description',
    nsid: 'sh.tangled.repo',
    record: repo({ description: 'x'.repeat(141) }),
    valid: false,
  },
  {
    name: 'collaborator by repo AT-URI',
    nsid: 'sh.tangled.repo.collaborator',
    record: { subject: 'did:plc:bob', repo: 'at://did:plc:alice/sh.tangled.repo/3m6abc', createdAt: NOW },
    valid: true,
  },
  {
    name: 'collaborator by repo DID',
    nsid: 'sh.tangled.repo.collaborator',
    record: { subject: 'did:plc:bob', repo: 'did:plc:repo123', createdAt: NOW },
    valid: true,
    reference: { valid: false, why: '2026: collaborator records name the repo by its DID' },
  },
  {
    name: 'collaborator without subject',
    nsid: 'sh.tangled.repo.collaborator',
    record: { repo: 'did:plc:r', createdAt: NOW },
    valid: false,
  },
  { name: 'spindle', nsid: 'sh.tangled.spindle', record: { createdAt: NOW }, valid: true },
  {
    name: 'member',
    nsid: 'sh.tangled.spindle.member',
    record: { subject: 'did:plc:bob', instance: 'spindle.example.com', createdAt: NOW },
    valid: true,
  },
  {
    name: 'member with a handle as subject',
    nsid: 'sh.tangled.spindle.member',
    record: { subject: 'bob.example.com', instance: 'spindle.example.com', createdAt: NOW },
    valid: false,
  },
];

function verdict(v: RecordValidator, f: Fixture): boolean {
  try {
    v.validate(f.nsid, f.record);
    return true;
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidRequestError);
    return false;
  }
}

describe('RecordValidator', () => {
  const ours = new RecordValidator();

  it.each(FIXTURES)('$name: valid=$valid', (f) => {
    expect(verdict(ours, f)).toBe(f.valid);
  });

  it('reads an empty or missing $type as the record type, and refuses another type', () => {
    const { $type: _, ...bare } = pipeline({});
    expect(ours.validate('sh.tangled.pipeline', { ...bare, $type: '' }).$type).toBe('sh.tangled.pipeline');
    expect(ours.validate('sh.tangled.pipeline', bare).$type).toBe('sh.tangled.pipeline');
    expect(() => ours.validate('sh.tangled.pipeline', { ...bare, $type: 'sh.tangled.repo' })).toThrow(
      /\$type is/,
    );
    expect(() => ours.validate('sh.tangled.pipeline', 'text')).toThrow(/not an object/);
  });

  it('names what is wrong', () => {
    expect(() => ours.validate('sh.tangled.pipeline.status', status({ status: 'ok' }))).toThrow(
      /invalid sh\.tangled\.pipeline\.status record: .*status must be one of/,
    );
  });
});

describe.skipIf(!HAS_REFERENCE)('treadle lexicons against the upstream reference [needs ../shared]', () => {
  const ours = new RecordValidator();
  // Read only when the suite runs: a skipped describe still evaluates its body.
  const reference = HAS_REFERENCE ? new RecordValidator(readLexiconDocs(REFERENCE)) : new RecordValidator();

  it('defines every upstream record type treadle reads', () => {
    for (const nsid of new Set(FIXTURES.map((f) => f.nsid))) {
      expect(ours.lexicons.getDef(nsid), nsid).toBeDefined();
      expect(reference.lexicons.getDef(nsid), nsid).toBeDefined();
    }
    expect(ours.lexicons.getDef('sh.tangled.owner')).toMatchObject({ type: 'query' });
  });

  it.each(FIXTURES)('$name: same verdict as upstream, or a documented difference', (f) => {
    expect(verdict(reference, f), f.reference?.why ?? 'same verdict').toBe(f.reference?.valid ?? f.valid);
  });
});
