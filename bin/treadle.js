#!/usr/bin/env -S node --max-semi-space-size=2
// treadle's command-line entry. The sources are TypeScript run directly by Node's type stripping
// (Node.js 22.18+; package.json asks for 22.19+), so there is no build step.
if (!process.features.typescript) {
  process.stderr.write(
    `treadle: needs Node.js 22.19 or newer (this is ${process.version}); see README "Node.js 22"\n`,
  );
  process.exit(1);
}
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
// Everything is closed by now; should a stray handle keep the event loop alive, do not hang.
setTimeout(() => process.exit(), 2000).unref();
