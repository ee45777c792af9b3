/**
 * Reading a Dockerfile without a Docker engine: instructions (with `\` continuations joined and
 * comments dropped) grouped into stages, and a small builder that carries out the subset treadle's
 * Dockerfile uses (WORKDIR, COPY from the context or an earlier stage, RUN, ENV) into a directory
 * per stage, so a test can run an image's install and start steps on this machine.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';

export interface Instruction {
  op: string;
  args: string;
  line: number;
}

export interface Stage {
  from: string;
  name: string | undefined;
  instructions: Instruction[];
}

export function parseDockerfile(text: string): { args: Map<string, string>; stages: Stage[] } {
  const args = new Map<string, string>();
  const stages: Stage[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const start = i;
    let line = lines[i]!;
    if (/^\s*(#|$)/.test(line)) continue;
    while (line.endsWith('\\') && i + 1 < lines.length) {
      i++;
      const next = lines[i]!;
      if (/^\s*#/.test(next)) continue;
      line = `${line.slice(0, -1)} ${next.trim()}`;
    }
    const m = /^\s*([A-Za-z]+)\s+(.*)$/.exec(line);
    if (!m) throw new Error(`Dockerfile line ${start + 1}: cannot read ${JSON.stringify(line)}`);
    const op = m[1]!.toUpperCase();
    const rest = m[2]!.trim();
    if (op === 'FROM') {
      const [image, as, name] = rest.split(/\s+/);
      stages.push({
        from: image!.replace(/\$\{(\w+)\}/g, (_, k: string) => args.get(k) ?? ''),
        name: as?.toUpperCase() === 'AS' ? name : undefined,
        instructions: [],
      });
    } else if (op === 'ARG' && stages.length === 0) {
      const [k, v] = rest.split('=');
      args.set(k!, v ?? '');
    } else {
      const stage = stages.at(-1);
      if (!stage) throw new Error(`Dockerfile line ${start + 1}: ${op} before FROM`);
      stage.instructions.push({ op, args: rest, line: start + 1 });
    }
  }
  return { args, stages };
}

/** `ENV a=b c=d` (the only form this project uses) as pairs. */
export function envPairs(args: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of args.matchAll(/(\w+)=("[^"]*"|\S+)/g)) out[m[1]!] = m[2]!.replace(/^"|"$/g, '');
  return out;
}

/** The JSON (exec) form of CMD/ENTRYPOINT, or undefined for the shell form. */
export function execForm(args: string): string[] | undefined {
  try {
    const v = JSON.parse(args);
    return Array.isArray(v) && v.every((x) => typeof x === 'string') ? v : undefined;
  } catch {
    return undefined;
  }
}

export interface BuiltStage {
  root: string;
  workdir: string;
  env: Record<string, string>;
}

/**
 * Carries out the stages under `out/<n>`: WORKDIR and COPY into that root, RUN through `sh -c`
 * in the workdir when `run(command)` says so (system steps such as apt-get are for the caller
 * to check by reading), ENV collected. `skip` names files the context's .dockerignore leaves out.
 */
export function buildStages(
  stages: Stage[],
  context: string,
  out: string,
  options: {
    run: (command: string) => boolean;
    env: Record<string, string>;
    skip: (path: string) => boolean;
  },
): BuiltStage[] {
  const built: BuiltStage[] = [];
  stages.forEach((stage, n) => {
    const root = join(out, String(n));
    let workdir = '/';
    const env: Record<string, string> = {};
    const inRoot = (p: string) => join(root, isAbsolute(p) ? p : join(workdir, p));
    for (const ins of stage.instructions) {
      if (ins.op === 'WORKDIR') {
        workdir = isAbsolute(ins.args) ? ins.args : join(workdir, ins.args);
        mkdirSync(inRoot('.'), { recursive: true });
      } else if (ins.op === 'ENV') Object.assign(env, envPairs(ins.args));
      else if (ins.op === 'COPY') {
        const parts = ins.args.split(/\s+/);
        const from = parts[0]!.startsWith('--from=') ? parts.shift()!.slice('--from='.length) : undefined;
        const dest = parts.pop()!;
        const source = from ? built[stages.findIndex((s) => s.name === from)]?.root : context;
        if (!source) throw new Error(`Dockerfile line ${ins.line}: no stage ${from}`);
        for (const p of parts) {
          const target = dest.endsWith('/') ? join(inRoot(dest), p.split('/').pop()!) : inRoot(dest);
          cpSync(join(source, p), target, {
            recursive: true,
            filter: (src) => from !== undefined || !options.skip(src.slice(context.length + 1)),
          });
        }
      } else if (ins.op === 'RUN' && options.run(ins.args))
        execFileSync('sh', ['-c', ins.args], {
          cwd: inRoot('.'),
          env: { ...options.env, ...env },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
    }
    built.push({ root, workdir, env });
  });
  return built;
}
