// `ferry check` for scripts: everything that would stop a channel's script from loading, found without
// starting the engine. Each script is bundled (import and syntax errors), loaded into a sandbox (a
// missing default export, top-level code that throws), and all of them are type-checked together.
import path from 'node:path';
import type { FerryConfig } from '../config/contract.ts';
import { FerryError } from '../errors.ts';
import { createSandbox } from './isolate.ts';
import { DEFAULT_OUTPUT_BYTES } from './translator.ts';
import { compileScript, preludeCode, type CompileError } from './transpile.ts';
import { typecheckScripts, type ScriptDiagnostic } from './typecheck.ts';

const problemsOf = (error: unknown, script: string): ScriptDiagnostic[] => {
  if (!(error instanceof FerryError)) throw error;
  const details = (error.details ?? {}) as { errors?: CompileError[]; file?: string; line?: number; column?: number };
  if (error.code === 'SCRIPT_COMPILE' && details.errors) return details.errors;
  // Sandbox errors name the place as users see it (`channels/x.ts:3:9: …`); check reports it separately.
  const shown = details.line ? `${details.file}:${details.line}:${details.column}: ` : `${details.file}: `;
  const message = error.message.startsWith(shown) ? error.message.slice(shown.length) : error.message;
  return [
    {
      file: details.file ? path.resolve(path.dirname(path.dirname(script)), details.file) : script,
      line: details.line ?? 0,
      column: details.column ?? 0,
      message: `${error.code}: ${message}`,
    },
  ];
};

export const checkScripts = async (config: FerryConfig): Promise<ScriptDiagnostic[]> => {
  const problems: ScriptDiagnostic[] = [];
  const loadable = new Map<string, string[]>(); // channels folder → scripts that bundled
  for (const channel of config.channels) {
    if (!channel.script) continue;
    let script;
    try {
      script = await compileScript(channel.script);
    } catch (error) {
      problems.push(...problemsOf(error, channel.script));
      continue;
    }
    const dir = path.dirname(script.file);
    loadable.set(dir, [...(loadable.get(dir) ?? []), script.file]);
    // In this process, not a host process: a one-shot check has no engine to protect from a crash.
    const sandbox = createSandbox({
      channel: channel.name,
      limits: { ...channel.scriptLimits, outputBytes: DEFAULT_OUTPUT_BYTES },
      prelude: await preludeCode(),
    });
    try {
      await sandbox.load(script);
    } catch (error) {
      problems.push(...problemsOf(error, channel.script));
    } finally {
      await sandbox.close();
    }
  }
  for (const [dir, files] of loadable) problems.push(...(await typecheckScripts(files, dir)));
  return problems;
};
