/**
 * Landing on one target's checkout (greenness-and-landing spec §7.3, §7.5–§7.7): provisioning,
 * making sure every commit is present and not stale, resetting to the remote tip, the three
 * transforming strategies with conflicts told apart from infrastructure errors, PROMOTE
 * (fast-forward only, or a reset with a lease), and pushing with retries under contention.
 * A check does all of it but the push and leaves the checkout at the remote tip.
 *
 * Errors: ConflictError and InvalidRequestError are answers (the handler turns them into a
 * FAILED result); anything else is retried by the queue.
 */
import { chmodSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConflictError, InvalidRequestError, RetryableError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { LandingTarget } from './config.ts';
import type { LandResult, StepResult, ValidStep } from './contract.ts';
import { LandGit, lastLines } from './land-git.ts';

export interface LandOutcome {
  result: LandResult;
  /** True when this run pushed to the remote (so the result belongs in the ledger). */
  pushed: boolean;
}

const AUTH_FILE = 'treadle-auth.config';

export class Lander {
  readonly target: LandingTarget;
  private readonly git: LandGit;
  private readonly log: Logger;
  private provisioned = false;
  /** Whether HEAD is known to be the target branch (then a reset needs no checkout). */
  private onBranch = false;

  /** `executable`: the git to run (default `git` on PATH). */
  constructor(target: LandingTarget, inherited: Record<string, string>, log: Logger, executable?: string) {
    this.target = target;
    this.log = log;
    this.git = new LandGit({
      cwd: target.checkoutPath,
      committer: target.committer,
      timeoutMs: target.gitCommandTimeoutMs,
      inherited,
      ...(executable ? { executable } : {}),
    });
  }

  private get remoteBranch(): string {
    return `refs/remotes/${this.target.remote}/${this.target.targetBranch}`;
  }

  /** §7.3 start-up provisioning; idempotent, and repeated before an operation until it succeeds. */
  async provision(): Promise<void> {
    const t = this.target;
    mkdirSync(t.checkoutPath, { recursive: true });
    if (!existsSync(join(t.checkoutPath, '.git'))) await this.git.ok(['init', '-q', '-b', t.targetBranch]);
    mkdirSync(join(t.checkoutPath, '.git', 'treadle-home'), { recursive: true });
    const authFile = join(t.checkoutPath, '.git', AUTH_FILE);
    if (t.authHeader) {
      const quoted = `"${t.authHeader.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
      writeFileSync(authFile, `[http "${t.remoteUrl}"]\n\textraheader = ${quoted}\n`, { mode: 0o600 });
      chmodSync(authFile, 0o600);
      await this.git.ok(['config', 'include.path', AUTH_FILE]);
    } else {
      rmSync(authFile, { force: true });
      await this.git.run(['config', '--unset-all', 'include.path']);
    }
    const remotes = (await this.git.ok(['remote'])).split('\n');
    if (remotes.includes(t.remote)) await this.git.ok(['remote', 'set-url', t.remote, t.remoteUrl]);
    else await this.git.ok(['remote', 'add', t.remote, t.remoteUrl]);
    await this.fetch();
    if (await this.remoteTip()) {
      await this.git.ok(['checkout', '-q', '-f', '-B', t.targetBranch, this.remoteBranch]);
      this.onBranch = true;
    }
    this.provisioned = true;
  }

  private async fetch(): Promise<void> {
    const r = await this.git.run(['fetch', '-q', '--prune', this.target.remote]);
    if (r.code !== 0)
      throw new RetryableError(`fetching ${this.target.name}'s remote failed: ${lastLines(r.stderr)}`);
  }

  /** The remote target branch's tip as last fetched, or undefined when it does not exist. */
  private async remoteTip(): Promise<string | undefined> {
    const r = await this.git.run(['rev-parse', '-q', '--verify', `${this.remoteBranch}^{commit}`]);
    return r.code === 0 ? r.stdout.trim() : undefined;
  }

  /** §7.5 step 4: the checkout at the remote tip, clean. Returns the tip (undefined: no branch yet). */
  private async resetToRemote(): Promise<string | undefined> {
    await this.fetch();
    const tip = await this.remoteTip();
    if (tip) {
      if (!this.onBranch) {
        await this.git.ok(['checkout', '-q', '-f', '-B', this.target.targetBranch, tip]);
        this.onBranch = true;
      }
      await this.git.ok(['reset', '-q', '--hard', tip]);
      await this.git.ok(['clean', '-q', '-fdx']);
    }
    return tip;
  }

  /** §7.5 step 2. */
  private async ensureObject(sha: string, ref: string): Promise<void> {
    const present = async () => (await this.git.run(['cat-file', '-e', `${sha}^{commit}`])).code === 0;
    if (await present()) return;
    await this.git.run(['fetch', '-q', this.target.remote, sha]);
    if (await present()) return;
    await this.git.run(['fetch', '-q', this.target.remote, ref]);
    if (await present()) return;
    const reachable = await this.git.run(['ls-remote', '--exit-code', this.target.remote, 'HEAD']);
    if (reachable.code !== 0 && reachable.code !== 2)
      throw new RetryableError(
        `the remote of ${this.target.name} is unreachable: ${lastLines(reachable.stderr)}`,
      );
    throw new InvalidRequestError(`commit ${sha} is not available from the remote of ${this.target.name}`);
  }

  /** §7.5 step 3. */
  private async checkStale(sha: string, ref: string): Promise<void> {
    if (!this.target.checkStaleness) return;
    // A change named by the target branch itself is what it lands on: never stale.
    if (ref === `refs/heads/${this.target.targetBranch}`) return;
    const r = await this.git.run(['ls-remote', this.target.remote, ref]);
    if (r.code !== 0) throw new RetryableError(`ls-remote ${ref} failed: ${lastLines(r.stderr)}`);
    const line = r.stdout.split('\n').find((l) => l.endsWith(`\t${ref}`));
    if (!line) return;
    const at = line.split('\t')[0];
    if (at !== sha) throw new InvalidRequestError(`change is stale: ${ref} is at ${at}, not ${sha}`);
  }

  private async ready(steps: ValidStep[]): Promise<void> {
    if (!this.provisioned) await this.provision();
    // Whether each commit is here (one at a time: a miss fetches) and whether its ref moved
    // (read-only) are independent: side by side.
    const commits = steps.flatMap((step) => step.commits);
    await Promise.all([
      (async () => {
        for (const c of commits) await this.ensureObject(c.sha, c.ref);
      })(),
      ...commits.map((c) => this.checkStale(c.sha, c.ref)),
    ]);
  }

  /** Whether the remote has the commit (fetching what is missing first). */
  async hasCommit(sha: string): Promise<boolean> {
    if (!this.provisioned) await this.provision();
    const present = async () => (await this.git.run(['cat-file', '-e', `${sha}^{commit}`])).code === 0;
    if (await present()) return true;
    await this.fetch();
    return present();
  }

  /** Runs a request; `push` false is a check. */
  async land(id: string, steps: ValidStep[], push: boolean): Promise<LandOutcome> {
    await this.ready(steps);
    if (steps[0]!.strategy === 'PROMOTE') return this.promote(id, steps[0]!, push);
    return this.transform(id, steps, push);
  }

  private async transform(id: string, steps: ValidStep[], push: boolean): Promise<LandOutcome> {
    const t = this.target;
    for (let attempt = 1; attempt <= t.maxPushAttempts; attempt++) {
      const base = await this.resetToRemote();
      if (!base)
        throw new InvalidRequestError(`branch ${t.targetBranch} does not exist on the remote of ${t.name}`);
      const results: StepResult[] = [];
      try {
        for (const step of steps) results.push(await this.applyStep(step));
      } catch (err) {
        await this.resetToRemote().catch(() => {});
        throw err;
      }
      if (!push) {
        await this.resetToRemote();
        return { result: succeeded(id, t.name, results.map(withoutOutputs)), pushed: false };
      }
      // Every commit a step creates is an output, so no outputs means HEAD is still the base.
      if (results.every((r) => r.outputs.length === 0))
        return { result: succeeded(id, t.name, results), pushed: false };
      const r = await this.git.run(['push', '-q', t.remote, `HEAD:refs/heads/${t.targetBranch}`]);
      if (r.code === 0) return { result: succeeded(id, t.name, results), pushed: true };
      await this.fetch();
      const tip = await this.remoteTip();
      if (tip === base) throw new RetryableError(`push to ${t.name} failed: ${lastLines(r.stderr)}`);
      this.log.info(
        { target: t.name, request: id, attempt },
        'the target moved during the land; trying again on its new tip',
      );
    }
    throw new RetryableError(`exceeded ${t.maxPushAttempts} merge attempts due to remote contention`);
  }

  private async applyStep(step: ValidStep): Promise<StepResult> {
    const outputs: string[] = [];
    for (const c of step.commits) {
      if (step.strategy === 'REBASE') outputs.push(...(await this.pickRange(c.sha)));
      else if (step.strategy === 'SQUASH_REBASE') {
        const out = await this.squash(step.stepId, c);
        if (out) outputs.push(out);
      } else {
        const out = await this.merge(c.sha);
        if (out) outputs.push(out);
      }
    }
    return {
      stepId: step.stepId,
      outputs: outputs.map((o) => ({ id: o })),
      ...(outputs.length === 0 ? { alreadyPresent: true } : {}),
    };
  }

  /** §7.6 pickRange: the commits of `sha` not on HEAD, cherry-picked; returns those created. */
  private async pickRange(sha: string): Promise<string[]> {
    const [mb, pre] = await Promise.all([
      this.git.run(['merge-base', 'HEAD', sha]),
      this.git.ok(['rev-parse', 'HEAD']),
    ]);
    if (mb.code === 1)
      throw new InvalidRequestError(`${sha} shares no history with ${this.target.targetBranch}: use MERGE`);
    if (mb.code !== 0) throw new RetryableError(`git merge-base failed: ${lastLines(mb.stderr)}`);
    const base = mb.stdout.trim();
    // Each commit to pick with its parents: cherry-pick cannot replay a merge commit (it would
    // need a mainline), and dropping one would lose whatever its resolution changed, so a change
    // that brings any is refused at once, naming them.
    const todo = (await this.git.ok(['rev-list', '--parents', `${base}..${sha}`]))
      .split('\n')
      .filter(Boolean);
    if (todo.length === 0) return [];
    const merges = todo
      .map((line) => line.split(' '))
      .filter((ids) => ids.length > 2)
      .map((ids) => ids[0]!);
    if (merges.length > 0) {
      const named = merges.slice(0, 3).map((m) => m.slice(0, 12));
      if (merges.length > 3) named.push('…');
      throw new InvalidRequestError(
        `${sha} brings ${merges.length} merge commit${merges.length === 1 ? '' : 's'} (${named.join(', ')}): ` +
          'REBASE and SQUASH_REBASE replay single-parent commits; land it with MERGE',
      );
    }
    let r = await this.git.run(['cherry-pick', `${base}..${sha}`]);
    while (r.code !== 0) {
      const out = `${r.stdout}\n${r.stderr}`;
      if (/previous cherry-pick is now empty|nothing to commit/.test(out)) {
        r = await this.git.run(['cherry-pick', '--skip']);
        continue;
      }
      const unmerged = await this.unmergedPaths();
      await this.git.run(['cherry-pick', '--abort']);
      if (unmerged.length > 0) throw new ConflictError(`conflict applying ${sha}: ${unmerged.join(', ')}`);
      throw new RetryableError(`git cherry-pick failed: ${lastLines(out)}`);
    }
    const created = await this.git.ok(['rev-list', '--reverse', `${pre}..HEAD`]);
    return created === '' ? [] : created.split('\n');
  }

  private async squash(stepId: string, c: ValidStep['commits'][number]): Promise<string | undefined> {
    const pre = await this.git.ok(['rev-parse', 'HEAD']);
    const created = await this.pickRange(c.sha);
    if (created.length === 0) return undefined;
    const [before, after] = await Promise.all([
      this.git.ok(['rev-parse', `${pre}^{tree}`]),
      this.git.ok(['rev-parse', 'HEAD^{tree}']),
    ]);
    if (before === after) {
      await this.git.ok(['reset', '-q', '--hard', pre]);
      return undefined;
    }
    await this.git.ok(['reset', '-q', '--soft', pre]);
    await this.git.ok(
      ['commit', '-q', '-m', `squash: ${stepId} (${c.repoPath}@${c.ref})`],
      await this.authorOf(c.sha),
    );
    return this.git.ok(['rev-parse', 'HEAD']);
  }

  private async merge(sha: string): Promise<string | undefined> {
    const contained = await this.git.run(['merge-base', '--is-ancestor', sha, 'HEAD']);
    if (contained.code === 0) return undefined;
    const args = ['merge', '-q', '--no-ff', '--no-edit'];
    if (this.target.allowUnrelatedHistories) args.push('--allow-unrelated-histories');
    const r = await this.git.run([...args, sha], await this.authorOf(sha));
    if (r.code !== 0) {
      const out = `${r.stdout}\n${r.stderr}`;
      const unmerged = await this.unmergedPaths();
      await this.git.run(['merge', '--abort']);
      if (out.includes('refusing to merge unrelated histories'))
        throw new InvalidRequestError(`${sha} shares no history with ${this.target.targetBranch}`);
      if (unmerged.length > 0) throw new ConflictError(`conflict merging ${sha}: ${unmerged.join(', ')}`);
      throw new RetryableError(`git merge failed: ${lastLines(out)}`);
    }
    return this.git.ok(['rev-parse', 'HEAD']);
  }

  /** §7.7. */
  private async promote(id: string, step: ValidStep, push: boolean): Promise<LandOutcome> {
    const t = this.target;
    const { sha } = step.commits[0]!;
    for (let attempt = 1; attempt <= t.maxPushAttempts; attempt++) {
      const tip = await this.resetToRemote();
      // Both ancestry questions at once: is the commit already there, is it ahead of the tip.
      const [contained, ahead] =
        tip === undefined || tip === sha
          ? [undefined, undefined]
          : await Promise.all([
              this.git.run(['merge-base', '--is-ancestor', sha, tip]),
              this.git.run(['merge-base', '--is-ancestor', tip, sha]),
            ]);
      if (tip !== undefined && (tip === sha || contained?.code === 0)) {
        const outputs = push ? [{ id: sha }] : [];
        return {
          result: succeeded(id, t.name, [{ stepId: step.stepId, outputs, alreadyPresent: true }]),
          pushed: false,
        };
      }
      const fastForward = tip === undefined || ahead?.code === 0;
      if (!fastForward && t.promoteMode === 'ff-only')
        throw new ConflictError(`${sha} is not a fast-forward of ${t.targetBranch} (at ${tip})`);
      if (!push)
        return { result: succeeded(id, t.name, [{ stepId: step.stepId, outputs: [] }]), pushed: false };
      const dest = `${sha}:refs/heads/${t.targetBranch}`;
      const args = fastForward
        ? ['push', '-q', t.remote, dest]
        : ['push', '-q', `--force-with-lease=refs/heads/${t.targetBranch}:${tip}`, t.remote, dest];
      const r = await this.git.run(args);
      if (r.code === 0)
        return {
          result: succeeded(id, t.name, [{ stepId: step.stepId, outputs: [{ id: sha }] }]),
          pushed: true,
        };
      this.log.info(
        { target: t.name, request: id, attempt, reason: lastLines(r.stderr) },
        'promotion push refused; trying again on the new tip',
      );
    }
    throw new RetryableError(`exceeded ${t.maxPushAttempts} promotion attempts due to remote contention`);
  }

  private async unmergedPaths(): Promise<string[]> {
    const r = await this.git.run(['ls-files', '--unmerged', '-z']);
    const paths = r.stdout
      .split('\0')
      .filter(Boolean)
      .map((l) => l.slice(l.indexOf('\t') + 1));
    return [...new Set(paths)];
  }

  /** The pinned commit's author as GIT_AUTHOR_* (§7.4); omitted when either half is empty. */
  private async authorOf(sha: string): Promise<Record<string, string>> {
    const out = await this.git.ok(['show', '-s', '--format=%an%x00%ae', sha]);
    const [name, email] = out.split('\0');
    return name && email ? { GIT_AUTHOR_NAME: name, GIT_AUTHOR_EMAIL: email } : {};
  }
}

function succeeded(id: string, target: string, steps: StepResult[]): LandResult {
  return { id, target, outcome: 'SUCCEEDED', steps };
}

function withoutOutputs(s: StepResult): StepResult {
  return { ...s, outputs: [] };
}
