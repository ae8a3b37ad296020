// A channel's translator: its script compiled and loaded into a sandbox (run in a child process, see
// process-sandbox.ts), recompiled when the script or anything it imports changes. A good edit takes
// over from the next message; a bad one is reported (status + log) while the previous version keeps
// running, so a typo never stops a channel.
import { watch, type FSWatcher } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { DestinationConfig } from '../config/contract.ts';
import { channelDefaults } from '../config/schema.ts';
import { destinationConnectors } from '../connectors.ts';
import { FerryError, type ErrorCode } from '../errors.ts';
import { createSerial } from '../serial.ts';
import type { OutputMeta } from '../message.ts';
import { checkResult } from './check-result.ts';
import { asSandboxError } from './sandbox-error.ts';
import { createProcessSandbox } from './process-sandbox.ts';
import type { ScriptLog } from './prelude.ts';
import { compileScript, type CompiledScript } from './transpile.ts';

export type { ScriptLog, ScriptLogLevel } from './prelude.ts';

export const DEFAULT_OUTPUT_BYTES = 16 * 1024 * 1024;
export const DEFAULT_MAX_OUTPUTS = channelDefaults.scriptLimits.maxOutputs;

export interface TranslatorLimits {
  memoryBytes: number;
  /** Wall time per message, awaited promises included. */
  timeoutMs: number;
  /** Cap on the UTF-8 size of all outputs of one message; DEFAULT_OUTPUT_BYTES when absent. */
  outputBytes?: number;
  /** Cap on the number of outputs of one message; DEFAULT_MAX_OUTPUTS when absent. */
  maxOutputs?: number;
}

export interface TranslatorOptions {
  channel: string;
  /** Absolute path of channels/<channel>.ts; relative imports may reach anything in its folder. */
  scriptPath: string;
  limits: TranslatorLimits;
  logger: Logger;
  /** Quiet time after a file event before recompiling (editors write in bursts). */
  debounceMs?: number;
  /** The channel's destinations: ctx.deliver options none of them follows are refused. Absent = not checked. */
  destinations?: ReadonlyArray<Pick<DestinationConfig, 'name' | 'type'>>;
}

export interface TranslatorResult {
  /** null = filtered. */
  outputs: string[] | null;
  /** Per output, where ctx.deliver sent it (url, method, headers); absent when no output has any. */
  meta?: Array<OutputMeta | null>;
  logs: ScriptLog[];
}

export interface ScriptStatus {
  /** The script as users see it: `channels/adt.ts`. */
  file: string;
  /** Content hash of the running version; '' while no version has loaded. */
  version: string;
  /** ISO time the running version was loaded; '' while no version has loaded. */
  loadedAt: string;
  /** The latest compile or load failure, cleared by the next success. */
  error?: { code: ErrorCode; message: string; at: string };
}

export interface Translator {
  /**
   * Throws a FerryError: the script's (permanent), or the sandbox's: SANDBOX_FAILED (retryable), or
   * SANDBOX_CRASHED (permanent) for a message that crashed the sandbox process each time it ran.
   */
  run(input: { id: string; text: string }): Promise<TranslatorResult>;
  /** `run` for each message, in one round trip to the sandbox: a result or that FerryError per input, in order. */
  runMany(inputs: Array<{ id: string; text: string }>): Promise<Array<TranslatorResult | FerryError>>;
  status(): ScriptStatus;
  /** Resolves once the first compile has been tried, whether or not it succeeded. */
  ready(): Promise<void>;
  close(): Promise<void>;
}

// Files whose change can change the bundle; editor swap and backup files are not among them.
const SOURCE_FILE = /\.(ts|mts|cts|js|mjs|cjs|json)$/;

export const createTranslator = (options: TranslatorOptions): Translator => {
  const { channel, logger, limits } = options;
  const scriptPath = path.resolve(options.scriptPath);
  const name = path.relative(path.dirname(path.dirname(scriptPath)), scriptPath);
  const debounceMs = options.debounceMs ?? 50;
  const outputBytes = limits.outputBytes ?? DEFAULT_OUTPUT_BYTES;
  const maxOutputs = limits.maxOutputs ?? DEFAULT_MAX_OUTPUTS;
  const sandbox = createProcessSandbox({
    channel,
    limits: { memoryBytes: limits.memoryBytes, timeoutMs: limits.timeoutMs, outputBytes, maxOutputs },
    logger,
  });

  let active: CompiledScript | undefined;
  let loadedAt = '';
  let failure: FerryError | undefined;
  let failedAt = '';
  let closed = false;
  const watchers = new Map<string, FSWatcher>();
  let debounce: NodeJS.Timeout | undefined;

  const onFileEvent = (_event: string, filename: string | Buffer | null): void => {
    if (closed || (filename !== null && !SOURCE_FILE.test(String(filename)))) return;
    clearTimeout(debounce);
    debounce = setTimeout(() => void schedule(), debounceMs);
  };

  // Directories rather than files: editors save by writing a new file and renaming it over the old
  // one, which ends a watch on the file itself.
  const watchInputs = (inputs: readonly string[]): void => {
    if (closed) return;
    const wanted = new Set([path.dirname(scriptPath), ...inputs.map((input) => path.dirname(input))]);
    for (const [dir, watcher] of watchers) {
      if (wanted.has(dir)) continue;
      watcher.close();
      watchers.delete(dir);
    }
    for (const dir of wanted) {
      if (watchers.has(dir)) continue;
      try {
        const watcher = watch(dir, onFileEvent);
        watcher.on('error', (error) => {
          logger.warn({ err: error, dir }, 'stopped watching a script folder');
          watcher.close();
          watchers.delete(dir);
        });
        watchers.set(dir, watcher);
      } catch (error) {
        logger.warn({ err: error, dir }, 'cannot watch a script folder; edits there need a channel restart');
      }
    }
  };

  const reload = async (): Promise<void> => {
    if (closed) return;
    try {
      const script = await compileScript(scriptPath);
      watchInputs(script.inputs);
      if (script.version !== active?.version) {
        await sandbox.load(script);
        logger.info({ script: name, version: script.version }, active ? 'script reloaded' : 'script loaded');
        active = script;
        loadedAt = new Date().toISOString();
      } else if (failure) {
        logger.info({ script: name, version: script.version }, 'script error cleared; the running version is unchanged');
      }
      failure = undefined;
    } catch (error) {
      if (closed) return;
      const next = asSandboxError(error);
      // Unrelated saves in the folder recompile too: report a failure once, not on every event.
      if (next.code !== failure?.code || next.message !== failure.message) {
        const what = active ? 'script reload failed; the previous version keeps running' : 'script failed to load; its messages will error until it is fixed';
        // A file that does not compile or exist is the user's to fix, and its message says where
        // (`channels/x.ts:2:13: Unexpected ";"`); esbuild's and the engine's stacks would only bury it.
        if (next.code === 'SCRIPT_COMPILE' || next.code === 'SCRIPT_NOT_FOUND') logger.error({ script: name, code: next.code }, `${what}: ${next.message}`);
        else logger.error({ script: name, code: next.code, err: next }, what);
        failedAt = new Date().toISOString();
      }
      failure = next;
      if (!active) watchInputs([]);
    }
  };

  // Reloads one after another: a save during a compile is compiled again after it. reload never rejects.
  const reloads = createSerial();
  const schedule = (): Promise<void> => reloads.run(reload);
  const started = schedule();

  /** The script version to run, once the first compile has been tried; throws when none has loaded. */
  const loadedVersion = async (): Promise<void> => {
    if (closed) throw new FerryError('ENGINE_SHUTTING_DOWN', `the translator of channel ${channel} is closed`);
    await started;
    if (!active) {
      const cause = failure ?? new FerryError('SCRIPT_COMPILE', `${name} has not loaded`);
      throw new FerryError(cause.code, cause.message, { details: cause.details });
    }
  };
  // The engine's own check of what the sandbox answered: the one that counts (check-result.ts).
  const rules = {
    script: name,
    outputBytes,
    maxOutputs,
    ...(options.destinations ? { deliverTo: { destinations: options.destinations, followers: destinationConnectors } } : {}),
  };

  return {
    async run(input) {
      await loadedVersion();
      return checkResult(await sandbox.run(input), rules);
    },

    async runMany(inputs) {
      await loadedVersion();
      const results = await sandbox.runMany(inputs);
      return results.map((result) => {
        if (result instanceof FerryError) return result;
        try {
          return checkResult(result, rules);
        } catch (error) {
          return asSandboxError(error);
        }
      });
    },

    status() {
      return {
        file: name,
        version: active?.version ?? '',
        loadedAt,
        ...(failure ? { error: { code: failure.code, message: failure.message, at: failedAt } } : {}),
      };
    },

    ready: () => started,

    async close() {
      if (closed) return;
      closed = true;
      clearTimeout(debounce);
      for (const watcher of watchers.values()) watcher.close();
      watchers.clear();
      await reloads.idle();
      await sandbox.close();
    },
  };
};
