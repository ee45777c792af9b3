/** The stub runner as a module: always configured, no store, no routes. */
import type { RunnerModule } from '../index.ts';
import { StubRunner } from './stub-runner.ts';

export const stubModule: RunnerModule = {
  name: 'stub',
  configured: () => true,
  create: () => ({ runner: new StubRunner() }),
};
