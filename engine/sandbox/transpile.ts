// Channel scripts → one self-contained script for the sandbox (esbuild: TypeScript, bundling of
// channels/lib/ helpers, a source map for mapping stack frames back to the user's file:line).
//
// A build is cached by the content hash of every file it read, which doubles as the script's version:
// the same sources always give the same version, whatever triggered the recompile.
import { createHash } from 'node:crypto';
import { readFile, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';
import { FerryError } from '../errors.ts';
import { nodeBundle } from '../node-bundle.ts';
import { scriptLocator, type SourceLocation } from './source-map.ts';

export type { SourceLocation } from './source-map.ts';

/** One esbuild error, as `details.errors` of a SCRIPT_COMPILE FerryError. */
export interface CompileError {
  /** Absolute. */
  file: string;
  /** 1-based; 0 when esbuild gives no position. */
  line: number;
  column: number;
  message: string;
}

export interface CompiledScript {
  /** Absolute path of the entry script. */
  readonly file: string;
  /** The entry as users see it in messages: `channels/adt.ts`. */
  readonly name: string;
  /** Content hash of every bundled input. */
  readonly version: string;
  /** JavaScript whose completion value is the script's module namespace (its exports). */
  readonly code: string;
  /** The source map of `code` (JSON), from which the sandbox host process rebuilds `locate`. */
  readonly map: string;
  /** Absolute paths of every file the bundle read, entry included. */
  readonly inputs: readonly string[];
  /** Maps a 1-based line/column of `code` (as in a stack frame) to the user's source. */
  locate(line: number, column: number): SourceLocation | undefined;
}

// Bump when the build settings change, so a cached version never stands for different output.
const BUILD_FORMAT = `ferry-2/esbuild-${esbuild.version}`;

// Wrapping the iife in a function keeps its `var` out of the global scope and makes the exports the
// script's completion value. The wrapper takes a line of its own, which source-map.ts accounts for.
// 'use strict' because the sources are ES modules (strict), which esbuild's iife does not restate.
const GLOBAL_NAME = '__ferryModule';
const wrap = (code: string): string => `(function () { 'use strict';\n${code}\nreturn ${GLOBAL_NAME};\n})()`;

const loaders: Record<string, esbuild.Loader> = {
  '.ts': 'ts',
  '.mts': 'ts',
  '.cts': 'ts',
  '.js': 'js',
  '.mjs': 'js',
  '.cjs': 'js',
  '.json': 'json',
};

const sha256 = (data: string | Uint8Array): string => createHash('sha256').update(data).digest('hex');

const isInside = (dir: string, file: string): boolean => {
  const rel = path.relative(dir, file);
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
};

const isRelativeSpecifier = (specifier: string): boolean => /^\.\.?(\/|$)/.test(specifier);

/**
 * Only relative imports that stay inside the channels folder are bundled: scripts run in bare V8, so
 * npm packages and node:* modules would fail there anyway, and paths outside channels/ would make a
 * channel depend on files its owners do not review.
 */
const channelsOnly = (channelsDir: string, realChannelsDir: string, hashes: Map<string, string>): esbuild.Plugin => ({
  name: 'ferry-channels-only',
  setup(build) {
    build.onResolve({ filter: /.*/ }, (args) => {
      if (args.kind === 'entry-point') return undefined;
      if (isRelativeSpecifier(args.path) && isInside(channelsDir, path.resolve(args.resolveDir, args.path))) return undefined;
      const why = isRelativeSpecifier(args.path)
        ? 'it points outside the channels folder'
        : 'scripts can only import relative files inside the channels folder (e.g. "./lib/helpers.ts"); npm packages, node:* modules and absolute paths are not available in the sandbox';
      return { errors: [{ text: `import ${JSON.stringify(args.path)} is not allowed: ${why}` }] };
    });
    build.onLoad({ filter: /.*/ }, async (args) => {
      // esbuild resolves symlinks, so this also stops a link inside channels/ that leads outside it.
      if (!isInside(realChannelsDir, args.path) && !isInside(channelsDir, args.path)) {
        return { errors: [{ text: `${args.path} is outside the channels folder` }] };
      }
      const loader = loaders[path.extname(args.path)];
      if (!loader) return { errors: [{ text: `${path.basename(args.path)}: only .ts, .js and .json files can be imported` }] };
      const contents = await readFile(args.path);
      hashes.set(args.path, sha256(contents));
      return { contents, loader };
    });
  },
});

// Paths relative to the channels folder: the same sources give the same version in any checkout.
const versionOf = (channelsDir: string, entry: string, hashes: ReadonlyMap<string, string>): string => {
  const parts = [BUILD_FORMAT, path.relative(channelsDir, entry)];
  for (const input of [...hashes.keys()].sort()) parts.push(path.relative(channelsDir, input), hashes.get(input)!);
  return sha256(parts.join('\0')).slice(0, 16);
};

/** The last successful build of each entry, with the hash of every input it read. */
const builds = new Map<string, { hashes: ReadonlyMap<string, string>; script: CompiledScript }>();

const cached = async (file: string): Promise<CompiledScript | undefined> => {
  const last = builds.get(file);
  if (!last) return undefined;
  try {
    for (const [input, hash] of last.hashes) {
      if (sha256(await readFile(input)) !== hash) return undefined;
    }
    return last.script;
  } catch {
    return undefined; // an input vanished: rebuild to get a proper error
  }
};

/**
 * The column an editor shows (1-based, in UTF-16 code units, as tsc counts) for an esbuild location,
 * whose column is 0-based and counts UTF-8 bytes. In `const s = 'ÄÖÜ'; let x = ;` the last `;` is at
 * esbuild's column 28 and an editor's 26.
 */
export const editorColumn = (location: Pick<esbuild.Location, 'column' | 'lineText'>): number =>
  Buffer.from(location.lineText, 'utf8').subarray(0, location.column).toString('utf8').length + 1;

/** One esbuild error as one line: `channels/x.ts:2:13: Unexpected ";"`. */
const formatMessage = (message: esbuild.Message, fallback: string): string => {
  const where = message.location ? `${message.location.file}:${message.location.line}:${editorColumn(message.location)}` : fallback;
  return `${where}: ${message.text}`;
};

/** What scripts and the prelude are built as: one self-contained ES2022 script for bare V8. */
const SANDBOX_BUILD = {
  write: false,
  bundle: true,
  format: 'iife',
  globalName: GLOBAL_NAME,
  platform: 'neutral',
  target: 'es2022',
  legalComments: 'none',
  charset: 'utf8',
  // A computed import() becomes a require() that fails naming the module, rather than isolated-vm's
  // bare "Not supported" (there are no modules to import in the sandbox either way).
  supported: { 'dynamic-import': false },
  logLevel: 'silent',
} as const satisfies esbuild.BuildOptions;

/**
 * Bundles a channel script (and what it imports from its folder) into one script for the sandbox.
 * Throws SCRIPT_NOT_FOUND when the file is missing, and otherwise SCRIPT_COMPILE whose message has a
 * line `channels/x.ts:LINE:COL: what` for each error (the first 10).
 */
export const compileScript = async (file: string): Promise<CompiledScript> => {
  const entry = path.resolve(file);
  const channelsDir = path.dirname(entry);
  // Paths in messages read `channels/x.ts`, whatever the engine's working directory.
  const baseDir = path.dirname(channelsDir);
  const name = path.relative(baseDir, entry);

  try {
    if (!(await stat(entry)).isFile()) throw new Error('not a file');
  } catch (cause) {
    throw new FerryError('SCRIPT_NOT_FOUND', `${name} does not exist`, { cause, details: { file: name } });
  }

  const hit = await cached(entry);
  if (hit) return hit;

  const hashes = new Map<string, string>();
  const outfile = path.join(channelsDir, `${path.basename(entry)}.bundle.js`);
  let result: esbuild.BuildResult<{ write: false }>;
  try {
    result = await esbuild.build({
      entryPoints: [entry],
      absWorkingDir: baseDir,
      outfile,
      ...SANDBOX_BUILD,
      sourcemap: 'external',
      sourcesContent: false,
      // A fixed tsconfig: the output depends on the sources alone (a channels/tsconfig.json is for editors).
      // verbatimModuleSyntax keeps unused imports, so a forbidden one is reported even when unused.
      tsconfigRaw: { compilerOptions: { verbatimModuleSyntax: true } },
      plugins: [channelsOnly(channelsDir, await realpath(channelsDir), hashes)],
    });
  } catch (error) {
    const messages = (error as esbuild.BuildFailure).errors;
    if (!Array.isArray(messages)) throw error;
    const lines = messages.slice(0, 10).map((m) => formatMessage(m, name));
    if (messages.length > lines.length) lines.push(`… and ${messages.length - lines.length} more errors`);
    const errors: CompileError[] = messages.map((m) => ({
      file: m.location ? path.resolve(baseDir, m.location.file) : entry,
      line: m.location?.line ?? 0,
      column: m.location ? editorColumn(m.location) : 0,
      message: m.text,
    }));
    throw new FerryError('SCRIPT_COMPILE', lines.join('\n'), { cause: error, details: { file: name, errors } });
  }

  const js = result.outputFiles.find((f) => f.path === outfile)!;
  const map = result.outputFiles.find((f) => f.path === `${outfile}.map`)!;
  const script: CompiledScript = {
    file: entry,
    name,
    version: versionOf(channelsDir, entry, hashes),
    code: wrap(js.text),
    map: map.text,
    inputs: [...hashes.keys()],
    locate: scriptLocator(entry, map.text),
  };
  builds.set(entry, { hashes, script });
  return script;
};

let prelude: Promise<string> | undefined;

/**
 * The code that runs in every sandbox context before a script (engine/sandbox/prelude.ts with the HL7
 * library), built once per process. Its completion value is the prelude's exports.
 */
export const preludeCode = (): Promise<string> => {
  prelude ??= esbuild
    .build({
      entryPoints: [fileURLToPath(new URL('./prelude.ts', import.meta.url))],
      ...SANDBOX_BUILD,
    })
    .then((result) => wrap(result.outputFiles[0]!.text))
    .catch((error: unknown) => {
      prelude = undefined;
      throw error;
    });
  return prelude;
};

/**
 * The sandbox host program (host.ts and what it imports), bundled for plain node (node-bundle.ts).
 * The native addon is loaded from the engine's node_modules: ivm.ts resolves it from its own URL.
 */
export const hostCode = (): Promise<string> => nodeBundle(new URL('./host.ts', import.meta.url), ['isolated-vm', 'isolated-vm-v6']);
