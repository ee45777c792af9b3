import { describe, expect, it } from 'vitest';
import { LogLineSplitter, parseLine } from './log-parse.ts';

const T = (ms: number) => `\x1b_bk;t=${ms}\x07`;

describe('parseLine (spec §7.5)', () => {
  it('takes the first timestamp and strips every escape', () => {
    expect(parseLine(`${T(1700000000000)}\x1b[90m$\x1b[0m npm test${T(1700000001500)} more\r`)).toEqual({
      text: '$ npm test more',
      timeMs: 1700000000000,
    });
    expect(parseLine("\x1b]1339;url='https://x';content='x'\x07link \x1b(Bok")).toEqual({ text: 'link ok' });
  });

  it('keeps the text after the last bare CR (terminal overwrite) and drops CRs before the newline', () => {
    expect(parseLine(`${T(5)}progress 10%\x1b[K${T(6)}\rprogress 100%\r\r`)).toEqual({
      text: 'progress 100%',
      timeMs: 5,
    });
  });
});

describe('LogLineSplitter', () => {
  it('yields whole lines only, across chunks that split UTF-8, escapes and lines', () => {
    const raw = Buffer.from(`${T(1)}~~~ Running script\r\n${T(2)}héllo 🚀\r\r\n${T(3)}tail`, 'utf8');
    const s = new LogLineSplitter();
    const out: Array<{ text: string; timeMs?: number }> = [];
    for (let i = 0; i < raw.length; i += 3) out.push(...s.push(raw.subarray(i, i + 3)));
    expect(out).toEqual([
      { text: '~~~ Running script', timeMs: 1 },
      { text: 'héllo 🚀', timeMs: 2 },
    ]);
    expect(s.flush()).toEqual([{ text: 'tail', timeMs: 3 }]);
    expect(s.flush()).toEqual([]);
  });
});
