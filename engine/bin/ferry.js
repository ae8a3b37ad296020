#!/usr/bin/env -S node --no-node-snapshot
// The `ferry` command. Node must run with --no-node-snapshot (isolated-vm needs it on Node 20+),
// hence the `env -S` shebang; TypeScript sources run through tsx's loader, registered here so
// there is no build step.
import { register } from 'tsx/esm/api';

if (!process.execArgv.includes('--no-node-snapshot')) {
  console.error('ferry: run me as `npx ferry …` or `node --no-node-snapshot engine/bin/ferry.js …` (isolated-vm needs --no-node-snapshot)');
  process.exit(2);
}
register();
const { main } = await import('../cli.ts');
process.exitCode = await main(process.argv.slice(2));
