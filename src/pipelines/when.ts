/**
 * The workflow compiler a spindle now runs itself (2026 spec §3.4, baseline §5.3): which of a
 * commit's workflow files run for a trigger, and the `workflows[]` entries of the pipeline.
 *
 * - `when` is a list of entries; any matching entry runs the workflow, and no `when` runs it always.
 * - An entry matches when the trigger kind is in `event` and:
 *   push to `refs/heads/X`: X matches a `branch` glob; to `refs/tags/X`: a `tag` glob; other refs
 *   never; pull_request: the target branch matches `branch` and the action is in `types`
 *   (default opened, reopened, synchronize; a missing action counts as opened). An absent or empty
 *   list fails the entry (stock: `event: push` alone never matches a push).
 * - `paths`, when present, needs a changed file matching one of its globs. Only pushes carry
 *   changed files, so a pull_request entry with `paths` never matches (stock quirk).
 * - Manual triggers skip every constraint (optionally limited to the named workflows).
 * - Globs are doublestar: `*` and `?` stay within a path segment, `**` spans segments, `{a,b}`
 *   and `[...]` work, dot files are not special, a leading `!` is literal.
 * - A file whose YAML does not parse, without `engine`, or with an invalid `when` is dropped with
 *   a diagnostic (stock sends diagnostics to the spindle log, not to a workflow).
 * - Clone options: `skip` false, `depth` 0 (the runner treats it as 1), `submodules` and `tags` true.
 */
import picomatch from 'picomatch';
import { parse as parseYaml } from 'yaml';
import { errorMessage } from '../errors.ts';
import type { WorkflowFile } from '../git/workflow-fetcher.ts';

export type PullAction = 'opened' | 'synchronize' | 'reopened' | 'closed' | 'merged';

export type CompileTrigger =
  | { kind: 'push'; ref: string; changedFiles: readonly string[] }
  | { kind: 'pull_request'; targetBranch: string; action?: string }
  | { kind: 'manual'; workflows?: readonly string[] };

export interface CloneOptions {
  skip: boolean;
  depth: number;
  submodules: boolean;
  tags: boolean;
}

export interface CompiledWorkflow {
  name: string;
  engine: string;
  raw: string;
  clone: CloneOptions;
}

export interface Diagnostic {
  workflow: string;
  error: string;
}

export interface Compiled {
  workflows: CompiledWorkflow[];
  diagnostics: Diagnostic[];
}

const DEFAULT_TYPES = ['opened', 'reopened', 'synchronize'];
const GLOB_OPTIONS: picomatch.PicomatchOptions = {
  dot: true,
  nonegate: true,
  noextglob: true,
  strictBrackets: true,
};

class WhenError extends Error {}

interface Entry {
  event: string[] | undefined;
  branch: string[] | undefined;
  tag: string[] | undefined;
  types: string[] | undefined;
  paths: string[] | undefined;
}

export function compileWorkflows(files: readonly WorkflowFile[], trigger: CompileTrigger): Compiled {
  const workflows: CompiledWorkflow[] = [];
  const diagnostics: Diagnostic[] = [];
  for (const file of files) {
    if (trigger.kind === 'manual' && trigger.workflows?.length && !trigger.workflows.includes(file.name))
      continue;
    try {
      const compiled = compileOne(file, trigger);
      if (compiled) workflows.push(compiled);
    } catch (err) {
      diagnostics.push({ workflow: file.name, error: errorMessage(err) });
    }
  }
  return { workflows, diagnostics };
}

function compileOne(file: WorkflowFile, trigger: CompileTrigger): CompiledWorkflow | undefined {
  if (file.unreadable) throw new WhenError(file.unreadable);
  let doc: unknown;
  try {
    doc = parseYaml(file.raw);
  } catch (err) {
    throw new WhenError(`workflow is not valid YAML: ${errorMessage(err)}`);
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc))
    throw new WhenError('workflow is not a YAML mapping');
  const def = doc as Record<string, unknown>;
  if (typeof def.engine !== 'string' || def.engine.trim() === '')
    throw new WhenError('workflow has no engine');
  const entries = parseWhen(def.when);
  if (trigger.kind !== 'manual' && entries.length > 0 && !entries.some((e) => entryMatches(e, trigger)))
    return undefined;
  return { name: file.name, engine: def.engine, raw: file.raw, clone: cloneOptions(def.clone) };
}

/** Checks shape and globs of every entry up front, so an invalid glob is reported whatever the trigger. */
function parseWhen(value: unknown): Entry[] {
  if (value === undefined || value === null) return [];
  const list = Array.isArray(value) ? value : [value];
  return list.map((raw, i) => {
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
      throw new WhenError(`when[${i}] must be a mapping`);
    const e = raw as Record<string, unknown>;
    const field = (name: string) => stringList(e[name], `when[${i}].${name}`);
    const entry = {
      event: field('event'),
      branch: field('branch'),
      tag: field('tag'),
      types: field('types'),
      paths: field('paths'),
    };
    for (const name of ['branch', 'tag', 'paths'] as const) {
      for (const glob of entry[name] ?? []) checkGlob(glob, `when[${i}].${name}`);
    }
    return entry;
  });
}

function stringList(value: unknown, where: string): string[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return [value];
  if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return value as string[];
  throw new WhenError(`${where} must be a string or a list of strings`);
}

function entryMatches(e: Entry, trigger: Exclude<CompileTrigger, { kind: 'manual' }>): boolean {
  if (!e.event?.includes(trigger.kind)) return false;
  if (trigger.kind === 'push') {
    const branch = /^refs\/heads\/(.+)$/.exec(trigger.ref)?.[1];
    const tag = /^refs\/tags\/(.+)$/.exec(trigger.ref)?.[1];
    const ok =
      branch !== undefined ? anyGlob(e.branch, branch) : tag !== undefined ? anyGlob(e.tag, tag) : false;
    if (!ok) return false;
    return e.paths === undefined || trigger.changedFiles.some((f) => anyGlob(e.paths, f));
  }
  if (!anyGlob(e.branch, trigger.targetBranch)) return false;
  if (!(e.types ?? DEFAULT_TYPES).includes(trigger.action || 'opened')) return false;
  // Pull requests carry no changed files, so an entry with `paths` never matches one.
  return e.paths === undefined;
}

function anyGlob(globs: string[] | undefined, subject: string): boolean {
  return (globs ?? []).some((g) => picomatch.isMatch(subject, doublestar(g), GLOB_OPTIONS));
}

/** Parentheses and bars are literal in doublestar, groups in picomatch. */
function doublestar(glob: string): string {
  return glob.replace(/(?<!\\)([()|])/g, '\\$1');
}

function checkGlob(glob: string, where: string): void {
  try {
    if (/(^|[^\\])(\\\\)*\\$/.test(glob)) throw new Error('it ends in an unfinished escape');
    picomatch.makeRe(doublestar(glob), GLOB_OPTIONS);
  } catch (err) {
    throw new WhenError(`${where}: invalid glob ${JSON.stringify(glob)}: ${errorMessage(err)}`);
  }
}

function cloneOptions(value: unknown): CloneOptions {
  const c =
    value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
  const bool = (v: unknown, fallback: boolean) => (typeof v === 'boolean' ? v : fallback);
  const depth = typeof c.depth === 'number' && Number.isInteger(c.depth) && c.depth >= 0 ? c.depth : 0;
  return { skip: bool(c.skip, false), depth, submodules: bool(c.submodules, true), tags: bool(c.tags, true) };
}
