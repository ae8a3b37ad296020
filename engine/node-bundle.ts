// Engine code that runs outside the engine's main thread — the sandbox host process, a file
// destination's writer thread — as one ES module for plain node, built once per process with
// esbuild. They run it without tsx's loader, which would cost each of them ~25 MB more memory and
// ~200 ms more to start.
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const built = new Map<string, Promise<string>>();

/**
 * `entry` and what it imports, bundled. `external` packages are loaded from node_modules at run
 * time (native addons); their importers find them from `entry`'s URL, which stands for every bundled
 * file (they all resolve as if they lived beside it).
 */
export const nodeBundle = (entry: URL, external: string[] = []): Promise<string> => {
  let code = built.get(entry.href);
  if (!code) {
    code = esbuild
      .build({
        entryPoints: [fileURLToPath(entry)],
        write: false,
        bundle: true,
        format: 'esm',
        platform: 'node',
        target: 'node20',
        legalComments: 'none',
        logLevel: 'silent',
        external,
        define: { 'import.meta.url': JSON.stringify(entry.href) },
      })
      .then((result) => result.outputFiles[0]!.text);
    // A failed build is tried again next time.
    code.catch(() => built.delete(entry.href));
    built.set(entry.href, code);
  }
  return code;
};
