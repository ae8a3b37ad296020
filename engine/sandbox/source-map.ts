// Maps positions in a bundled channel script back to the user's files. Kept apart from transpile.ts
// so the sandbox host process (host.ts) can rebuild a script's `locate` from its source map without
// loading esbuild.
import { SourceMap } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface SourceLocation {
  /** Display path, relative to the folder holding the channels folder: `channels/adt.ts`. */
  file: string;
  /** 1-based. */
  line: number;
  /** 1-based. */
  column: number;
}

/**
 * `locate` for the bundle of `entry` (an absolute path in a channels folder) with source map `map`
 * (JSON): maps a 1-based line/column of the bundle, as in a V8 stack frame, to the user's source.
 */
export const scriptLocator = (entry: string, map: string): ((line: number, column: number) => SourceLocation | undefined) => {
  const channelsDir = path.dirname(entry);
  const baseDir = path.dirname(channelsDir);
  const sourceMap = new SourceMap(JSON.parse(map));
  return (line, column) => {
    // transpile.ts wraps esbuild's output in a function whose first line precedes the mapped code.
    const found = sourceMap.findEntry(line - 2, column - 1) as Partial<{ originalSource: string; originalLine: number; originalColumn: number }> | undefined;
    if (!found?.originalSource || found.originalLine === undefined || found.originalColumn === undefined) return undefined;
    const source = found.originalSource.startsWith('file://') ? fileURLToPath(found.originalSource) : path.resolve(channelsDir, found.originalSource);
    return { file: path.relative(baseDir, source), line: found.originalLine + 1, column: found.originalColumn + 1 };
  };
};
