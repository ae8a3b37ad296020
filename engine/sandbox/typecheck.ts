// Type-checks channel scripts with the project's TypeScript (for `ferry check`), against the same
// ambient types editors see (channels/ferry.d.ts) and the same rules as channels/tsconfig.json:
// ES2022 only, so Node and DOM globals such as `process` or `fetch` are type errors, as in the sandbox.
import { execFile } from 'node:child_process';
import { access, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FerryError } from '../errors.ts';

export interface ScriptDiagnostic {
  /** Absolute; '' for errors about the whole check (e.g. a bad compiler option). */
  file: string;
  /** 1-based; 0 when the diagnostic has no position. */
  line: number;
  column: number;
  /** `TS2322: Type 'string' is not assignable to type 'number'.` */
  message: string;
}

const SHIPPED_TYPES = fileURLToPath(new URL('../../channels/ferry.d.ts', import.meta.url));
const TSC_TIMEOUT_MS = 120_000;

// Mirrors channels/tsconfig.json, which editors use.
const compilerOptions = {
  strict: true,
  noEmit: true,
  target: 'es2022',
  lib: ['es2022'],
  types: [],
  module: 'preserve',
  moduleResolution: 'bundler',
  allowImportingTsExtensions: true,
  verbatimModuleSyntax: true,
  noFallthroughCasesInSwitch: true,
};

const tscPath = (): string => {
  const pkg = createRequire(import.meta.url).resolve('typescript/package.json');
  return path.join(path.dirname(pkg), 'bin', 'tsc');
};

// `file(line,col): error TS1234: text`, continuation lines indented; `error TS5023: text` without a file.
const located = /^(.+?)\((\d+),(\d+)\): (?:error|warning) (TS\d+: .*)$/;
const global = /^(?:error|warning) (TS\d+: .*)$/;

const parseTscOutput = (output: string, cwd: string): ScriptDiagnostic[] => {
  const diagnostics: ScriptDiagnostic[] = [];
  for (const line of output.split(/\r?\n/)) {
    const withFile = located.exec(line);
    const withoutFile = withFile ? null : global.exec(line);
    if (withFile) {
      diagnostics.push({
        file: path.resolve(cwd, withFile[1]!),
        line: Number(withFile[2]),
        column: Number(withFile[3]),
        message: withFile[4]!,
      });
    } else if (withoutFile) {
      diagnostics.push({ file: '', line: 0, column: 0, message: withoutFile[1]! });
    } else if (/^\s+\S/.test(line) && diagnostics.length > 0) {
      diagnostics[diagnostics.length - 1]!.message += `\n${line}`;
    }
  }
  return diagnostics;
};

const exists = (file: string): Promise<boolean> =>
  access(file).then(
    () => true,
    () => false,
  );

/**
 * Runs `tsc` over `files` (absolute or relative to the working directory) plus the Ferry script types
 * (`<channelsDir>/ferry.d.ts` when present, else the copy shipped with the engine). Returns [] when
 * they type-check; throws SCRIPT_TYPECHECK only when tsc itself cannot run.
 */
export const typecheckScripts = async (files: string[], channelsDir: string): Promise<ScriptDiagnostic[]> => {
  const dir = path.resolve(channelsDir);
  const baseDir = path.dirname(dir);
  const localTypes = path.join(dir, 'ferry.d.ts');
  const types = (await exists(localTypes)) ? localTypes : SHIPPED_TYPES;
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'ferry-tsc-'));
  try {
    const config = path.join(tmp, 'tsconfig.json');
    const all = [...new Set([...files.map((file) => path.resolve(file)), types])];
    await writeFile(config, JSON.stringify({ compilerOptions, files: all }, null, 2));
    const { code, output } = await new Promise<{ code: number | null; output: string }>((resolve, reject) => {
      execFile(
        process.execPath,
        [tscPath(), '-p', config, '--pretty', 'false'],
        { cwd: baseDir, timeout: TSC_TIMEOUT_MS, maxBuffer: 64 * 1024 * 1024 },
        (error, stdout, stderr) => {
          const exitCode = error ? (typeof error.code === 'number' ? error.code : null) : 0;
          if (error && exitCode === null) reject(error);
          else resolve({ code: exitCode, output: `${stdout}${stderr}` });
        },
      );
    }).catch((cause: unknown) => {
      throw new FerryError('SCRIPT_TYPECHECK', `could not run tsc: ${(cause as Error).message}`, { cause });
    });
    const diagnostics = parseTscOutput(output, baseDir);
    if (code !== 0 && diagnostics.length === 0) {
      throw new FerryError('SCRIPT_TYPECHECK', `tsc exited with code ${code}: ${output.trim().slice(0, 2000)}`);
    }
    return diagnostics;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
};
