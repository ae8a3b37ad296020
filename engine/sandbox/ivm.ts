import { createRequire } from 'node:module';
import type IsolatedVM from 'isolated-vm';
import { FerryError } from '../errors.ts';

// isolated-vm is a native addon and no single release builds on every Node LTS: 5.0.4 builds on
// Node 20 (C++17 headers), 6.2 on Node 22 and 24 (C++20, newer V8 APIs; it ships prebuilt binaries).
// package.json lists both as optional dependencies, under two names; npm keeps whichever installed,
// and this loads the one meant for the running Node first. Order matters: a binary built for another
// Node is loaded before Node refuses it, and its static initializers then break the other release in
// the same process (seen: Node 24 with a Node 20 build of 5.0.4 left in node_modules, because npm's
// nodedir pointed at Node 20's headers, aborted on the first isolate). (tsconfig.json maps the types
// to whichever is installed the same way.)

const NODE_MAJOR = Number(process.versions.node.split('.')[0]);
const CANDIDATES = NODE_MAJOR >= 22 ? ['isolated-vm-v6', 'isolated-vm'] : ['isolated-vm', 'isolated-vm-v6'];

const load = (): typeof IsolatedVM => {
  const require = createRequire(import.meta.url);
  const failures: string[] = [];
  for (const name of CANDIDATES) {
    try {
      return require(name) as typeof IsolatedVM;
    } catch (error) {
      failures.push(`${name}: ${(error as Error).message.split('\n')[0]}`);
    }
  }
  throw new FerryError(
    'SANDBOX_FAILED',
    `isolated-vm is not built for Node ${process.version}; run \`npm ci\` (or \`npm rebuild\`) with this Node.\n${failures.join('\n')}`,
  );
};

export const ivm = load();
export type { IsolatedVM };
