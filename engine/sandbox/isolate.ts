// One channel's script sandbox: an isolated-vm isolate with memory and time limits, one context per
// loaded script version, and a watchdog that kills the isolate when a run (async work included) passes
// its deadline. Only copies cross the boundary: the input goes in as a copy, the prelude hands back
// plain strings, and no Reference or host function is ever put where the script can reach it. The
// engine runs this inside a sandbox host process (host.ts, process-sandbox.ts), `ferry check` in its own.
//
// Per-message state: the context of a version is reused for every message. A fresh context per message
// would reset globals, but measured on the 2-core dev VM it costs ~0.85–1.1 ms a message (creating the
// context alone is ~0.35–0.45 ms, even from an ivm snapshot; then the prelude and the script's top level
// run again), against ~50–130 µs for a small ADT transform in a reused context. So module and global
// state persists between the messages of one version; it resets when the script is reloaded and when
// the isolate is recreated after a timeout, a memory overrun or a crash.
import { ivm, type IsolatedVM } from './ivm.ts';
import { FerryError } from '../errors.ts';
import { createSerial } from '../serial.ts';
import type { OutputMeta } from '../message.ts';
import type { Invoke, Outcome, PrepareOptions, ScriptInput, ScriptLog } from './prelude.ts';
import type { CompiledScript, SourceLocation } from './transpile.ts';
import { tooManyOutputs } from './check-result.ts';
import { asSandboxError } from './sandbox-error.ts';

export interface SandboxLimits {
  memoryBytes: number;
  timeoutMs: number;
  /** Cap on the UTF-8 size of all outputs of one message. */
  outputBytes: number;
  /** Cap on the number of outputs of one message (scriptLimits.maxOutputs). */
  maxOutputs: number;
}

export interface SandboxOptions {
  channel: string;
  limits: SandboxLimits;
  /** The prelude's code (transpile.ts preludeCode), passed in so this file needs no esbuild. */
  prelude: string;
}

export interface SandboxResult {
  /** null = filtered. */
  outputs: string[] | null;
  /** Per output, what ctx.deliver chose (url, method, headers); absent when no output has any. */
  meta?: Array<OutputMeta | null>;
  logs: ScriptLog[];
}

export interface Sandbox {
  /**
   * Makes `script` the version later runs use, running its top-level code and checking its default
   * export first. When that fails (SCRIPT_THREW, SCRIPT_NO_DEFAULT_EXPORT, …) the previous version stays.
   */
  load(script: CompiledScript): Promise<void>;
  /** Runs the loaded version on one message. Errors are FerryErrors; the sandbox recovers by itself. */
  run(input: ScriptInput): Promise<SandboxResult>;
  /**
   * Runs the loaded version on each message in turn, each under its own time limit: one result or
   * FerryError per input, in order (a batch costs one round trip to a sandbox process, not one each).
   */
  runMany(inputs: ScriptInput[]): Promise<Array<SandboxResult | FerryError>>;
  /** Lets the run in progress finish (it is bounded by the time limit), then frees the isolate. */
  close(): Promise<void>;
}

// Stack frames name these files; frames in the script are mapped through its source map.
const SCRIPT_FILE = 'ferry-script.js';
const PRELUDE_FILE = 'ferry-prelude.js';
const FRAME = /(ferry-script|ferry-prelude)\.js:(\d+):(\d+)/;
const IVM_TIMEOUT = 'Script execution timed out.';
const ARRAY_BUFFER_REFUSED = 'RangeError: Array buffer allocation failed';

const MB = 1024 * 1024;

interface Loaded {
  script: CompiledScript;
  context: IsolatedVM.Context;
  invoke: IsolatedVM.Reference<Invoke>;
}

/** Rewrites bundle positions in a V8 stack to the user's files; frames inside the prelude are dropped. */
const mapStack = (script: CompiledScript, stack: string): { stack: string; at: SourceLocation | undefined } => {
  let at: SourceLocation | undefined;
  const lines: string[] = [];
  for (const line of stack.split('\n')) {
    const frame = FRAME.exec(line);
    if (!frame) {
      lines.push(line);
      continue;
    }
    if (frame[1] === 'ferry-prelude') continue;
    const location = script.locate(Number(frame[2]), Number(frame[3]));
    if (!location) continue;
    at ??= location;
    lines.push(line.replace(FRAME, `${location.file}:${location.line}:${location.column}`));
  }
  return { stack: lines.join('\n'), at };
};

const where = (script: CompiledScript, at: SourceLocation | undefined): string =>
  at ? `${at.file}:${at.line}:${at.column}` : script.name;

/** A FerryError that names where in the script it happened (the first frame of `stack` in the script). */
const located = (
  code: 'SCRIPT_THREW' | 'SCRIPT_BAD_RESULT',
  script: CompiledScript,
  message: string,
  stack: string | undefined,
  extra: Record<string, unknown>,
): FerryError => {
  const mapped = stack === undefined ? undefined : mapStack(script, stack);
  // V8's stack repeats the message on its first line; keep only the frames.
  const frames = mapped?.stack.split('\n').filter((line) => /^\s+at /.test(line)).join('\n');
  return new FerryError(code, `${where(script, mapped?.at)}: ${message}`, {
    details: { ...extra, ...(mapped?.at ?? { file: script.name }), stack: frames ? `${message}\n${frames}` : message },
  });
};

const threw = (script: CompiledScript, message: string, stack: string | undefined, extra: Record<string, unknown>): FerryError =>
  located('SCRIPT_THREW', script, message, stack, extra);

const toResult = (script: CompiledScript, outcome: Outcome, limits: { memoryLimit: number; maxOutputs: number }): SandboxResult => {
  if (outcome.ok) {
    // Passed on as it came: the engine checks all of it (check-result.ts) before it records anything.
    const { outputs, meta, logs } = outcome;
    return meta === undefined ? { outputs, logs } : { outputs, meta, logs };
  }
  if (outcome.kind === 'threw' && outcome.message.startsWith(ARRAY_BUFFER_REFUSED)) {
    // The isolate's allocator refuses buffers past the memory limit with a catchable RangeError.
    throw new FerryError('SCRIPT_MEMORY', `${script.name} exceeded its ${limits.memoryLimit} MB memory limit (${outcome.message})`, {
      details: { file: script.name, logs: outcome.logs },
    });
  }
  if (outcome.kind === 'too-many-outputs') throw tooManyOutputs(script.name, limits.maxOutputs, outcome.logs);
  if (outcome.kind === 'bad-result') {
    // Refused where the script called (ctx.deliver): that line; refused after it returned: the file.
    throw located('SCRIPT_BAD_RESULT', script, outcome.message, outcome.stack, { logs: outcome.logs });
  }
  throw threw(script, outcome.message, outcome.stack, { code: outcome.code, logs: outcome.logs });
};

export const createSandbox = ({ channel, limits, prelude: preludeSource }: SandboxOptions): Sandbox => {
  const memoryLimit = Math.max(8, Math.ceil(limits.memoryBytes / MB));
  const prepareOptions: PrepareOptions = { channel, outputBytes: limits.outputBytes, maxOutputs: limits.maxOutputs };

  let isolate: IsolatedVM.Isolate | undefined;
  let prelude: IsolatedVM.Script | undefined;
  let loaded: Loaded | undefined;
  /** The version runs use; re-instantiated after the isolate is recreated. */
  let current: CompiledScript | undefined;
  let closed = false;

  // One isolate runs one thing at a time; queueing here also means a run's deadline starts when it
  // starts, not while it waits behind another message.
  const exclusive = createSerial();

  const discardIsolate = (): void => {
    if (isolate && !isolate.isDisposed) isolate.dispose();
    isolate = undefined;
    prelude = undefined;
    loaded = undefined;
  };

  const ensureIsolate = async (): Promise<{ isolate: IsolatedVM.Isolate; prelude: IsolatedVM.Script }> => {
    if (isolate && prelude && !isolate.isDisposed) return { isolate, prelude };
    discardIsolate();
    const fresh = new ivm.Isolate({ memoryLimit });
    try {
      const script = await fresh.compileScript(preludeSource, { filename: PRELUDE_FILE });
      isolate = fresh;
      prelude = script;
      return { isolate, prelude };
    } catch (cause) {
      fresh.dispose();
      throw new FerryError('SANDBOX_FAILED', `could not start the sandbox: ${(cause as Error).message}`, { cause });
    }
  };

  /** Failures of the sandbox rather than of the script's logic; undefined when `error` is the script's own. */
  const sandboxFailure = (script: CompiledScript, error: unknown, target: IsolatedVM.Isolate, expired: boolean): FerryError | undefined => {
    const message = error instanceof Error ? error.message : String(error);
    if (expired || message === IVM_TIMEOUT) {
      return new FerryError('SCRIPT_TIMEOUT', `${script.name} ran past its ${limits.timeoutMs} ms time limit`, { details: { file: script.name } });
    }
    if (/memory limit/.test(message) && target.isDisposed) {
      return new FerryError('SCRIPT_MEMORY', `${script.name} exceeded its ${memoryLimit} MB memory limit`, { details: { file: script.name } });
    }
    if (target.isDisposed) {
      return new FerryError('SANDBOX_FAILED', `the sandbox of ${script.name} died: ${message}`, { cause: error });
    }
    return undefined;
  };

  /**
   * Runs `work` against the isolate under the time limit. isolated-vm's own `timeout` only covers
   * synchronous execution, so a watchdog disposes the isolate when the deadline passes (a promise
   * that never settles, a loop after an `await`). Any isolate that timed out or died is replaced.
   */
  const guarded = async <T>(script: CompiledScript, work: (target: IsolatedVM.Isolate, script: IsolatedVM.Script) => Promise<T>): Promise<T> => {
    if (closed) throw new FerryError('ENGINE_SHUTTING_DOWN', `the sandbox of ${script.name} is closed`);
    const { isolate: target, prelude: preludeScript } = await ensureIsolate();
    let expired = false;
    const watchdog = setTimeout(() => {
      expired = true;
      target.dispose();
    }, limits.timeoutMs);
    try {
      return await work(target, preludeScript);
    } catch (error) {
      const failure = sandboxFailure(script, error, target, expired);
      if (failure) {
        // A timed-out script may have left its globals half-updated: start the next message clean.
        if (isolate === target) discardIsolate();
        throw failure;
      }
      throw error;
    } finally {
      clearTimeout(watchdog);
    }
  };

  const instantiate = (script: CompiledScript): Promise<Loaded> =>
    guarded(script, async (target, preludeScript) => {
      const code = await target.compileScript(script.code, { filename: SCRIPT_FILE });
      const context = await target.createContext();
      const handles: Array<{ release(): void }> = [code];
      try {
        // Scripts have no use for WebAssembly, whose memories the isolate's memory limit does not
        // cover: it is gone before any code runs (V8 dropped the --no-expose-wasm flag in Node 24).
        await context.eval('delete globalThis.WebAssembly');
        const preludeExports = await preludeScript.run(context, { reference: true });
        handles.push(preludeExports);
        let scriptExports: IsolatedVM.Reference<unknown>;
        try {
          scriptExports = await code.run(context, { reference: true, timeout: limits.timeoutMs });
        } catch (error) {
          if (target.isDisposed || (error instanceof Error && error.message === IVM_TIMEOUT)) throw error;
          // Top-level code threw while loading; isolated-vm hands over Errors as Errors, other values as is.
          if (error instanceof Error) throw threw(script, `${error.name}: ${error.message}`, error.stack, { phase: 'load' });
          throw threw(script, `threw ${typeof error === 'string' ? `a string: ${error}` : String(error)}`, undefined, { phase: 'load' });
        }
        handles.push(scriptExports);
        // Exports of an esbuild bundle are getters, which References cannot read: call inside the context.
        const invoke = (await context.evalClosure(
          'return $0.prepare($1, $2)',
          [preludeExports.derefInto(), scriptExports.derefInto(), new ivm.ExternalCopy(prepareOptions).copyInto()],
          { result: { reference: true } },
        )) as IsolatedVM.Reference<Invoke | string>;
        if (invoke.typeof !== 'function') {
          const reason = String(await invoke.copy());
          invoke.release();
          throw new FerryError('SCRIPT_NO_DEFAULT_EXPORT', `${script.name}: ${reason}`, { details: { file: script.name } });
        }
        return { script, context, invoke: invoke as IsolatedVM.Reference<Invoke> };
      } catch (error) {
        context.release();
        throw error;
      } finally {
        for (const handle of handles) handle.release();
      }
    });

  const replace = (next: Loaded): void => {
    if (loaded && loaded !== next) {
      loaded.invoke.release();
      loaded.context.release();
    }
    loaded = next;
  };

  const runOne = async (input: ScriptInput): Promise<SandboxResult> => {
    if (!current) throw new FerryError('SANDBOX_FAILED', 'no script is loaded in the sandbox');
    const script = current;
    if (!loaded || loaded.script !== script) replace(await instantiate(script));
    const { invoke } = loaded!;
    const outcome = (await guarded(script, () =>
      invoke.apply(undefined, [input], {
        arguments: { copy: true },
        result: { promise: true, copy: true },
        timeout: limits.timeoutMs,
      }),
    )) as Outcome | undefined;
    if (typeof outcome !== 'object' || outcome === null) {
      // Only a broken prelude gets here: retryable, unlike anything the script itself does.
      throw new FerryError('SANDBOX_FAILED', `the sandbox of ${script.name} returned no outcome`);
    }
    return toResult(script, outcome, { memoryLimit, maxOutputs: limits.maxOutputs });
  };

  return {
    load: (script) =>
      exclusive.run(async () => {
        replace(await instantiate(script));
        current = script;
      }),

    run: (input) => exclusive.run(() => runOne(input)),

    runMany: (inputs) =>
      exclusive.run(async () => {
        const results: Array<SandboxResult | FerryError> = [];
        for (const input of inputs) results.push(await runOne(input).catch((error: unknown) => asSandboxError(error)));
        return results;
      }),

    async close() {
      if (closed) return;
      closed = true;
      await exclusive.idle();
      discardIsolate();
    },
  };
};
