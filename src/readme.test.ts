import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CONFIG_FILE_ENV, SETTINGS } from './config.ts';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

describe('README', () => {
  it('documents every configuration variable, alias and YAML key', () => {
    for (const s of [{ env: CONFIG_FILE_ENV, aliases: [], key: undefined }, ...SETTINGS]) {
      expect(readme, s.env).toContain(`\`${s.env}\``);
      for (const alias of s.aliases ?? []) expect(readme, alias).toContain(`\`${alias}\``);
      if (s.key) expect(readme, s.key).toContain(`\`${s.key}\``);
    }
  });

  it('starts with the two-command quick start', () => {
    expect(readme).toContain('npm ci && npm run demo');
    expect(readme).toContain('npm test');
  });
});
