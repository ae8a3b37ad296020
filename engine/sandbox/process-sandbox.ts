// One channel's sandbox, run in a child process (host.ts) so that a catastrophic failure of V8 or of
// isolated-vm costs the message in flight, not the engine. The engine keeps compiling and watching
// files; the host gets the compiled script and one message at a time over IPC, and answers with the
// outputs or a FerryError as data.
//
// The engine side stays in charge of time: a host that does not answer by the script's time limit
// plus a margin is killed (its own watchdog answers first unless the host itself is stuck). A host
// that dies is started again, after a backoff while it keeps dying; a message that was in flight
// each time it died is given up after MAX_CRASHES, so a poison message cannot crash-loop a channel.
import { spawn as spawnProcess, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { FerryError, errorCodes, type ErrorCode } from '../errors.ts';
import { createSerial } from '../serial.ts';
import { OVER_MEMORY, type HostReply, type HostRequest } from './host-protocol.ts';
import type { Sandbox, SandboxLimits, SandboxResult } from './isolate.ts';
import { asSandboxError } from './sandbox-error.ts';
import type { ScriptInput } from './prelude.ts';
import { hostCode, preludeCode, type CompiledScript } from './transpile.ts';

export interface ProcessSandboxOptions {
  channel: string;
  limits: SandboxLimits;
  logger: Logger;
}

export interface ProcessSandbox extends Sandbox {
  /** The host process's pid; undefined while none runs (before the first load, after a crash). */
  pid(): number | undefined;
}

/** Crashes of the host with the same message in flight before that message is given up. */
export const MAX_CRASHES = 3;
/** How long past the script's time limit the host may take to answer before it is killed. */
const WATCHDOG_MARGIN_MS = 2_000;
/** Loading also compiles the bundle, which the script's time limit does not cover. */
const LOAD_MARGIN_MS = 10_000;
/** Starting takes ~0.1 s; this much means the machine is in trouble. */
const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 2_000;
const RESTART_BACKOFF_MS = 100;
const MAX_RESTART_BACKOFF_MS = 5_000;
/** Message ids remembered with their crash counts (a few poison messages, not a backlog). */
const MAX_TRACKED_CRASHES = 1_000;
const STDERR_TAIL_CHARS = 8_192;
/** How long an exit waits for the rest of the host's stderr (V8 writes its last words there). */
const STDERR_DRAIN_MS = 500;

// V8's out-of-memory report (Node's OOM handler prints it before aborting). The host's own heap holds
// little more than one message, so a heap OOM is the isolate's: a memory overrun isolated-vm could not
// turn into an exception (a Map or an array grown past the limit in one step).
const V8_HEAP_OOM = /is_heap_oom = 1|JavaScript heap out of memory/;
/**
 * A host may use this much beyond the isolate's limit (node itself, a message and its outputs in
 * transit) before it ends itself: memory V8 allocates outside the isolate heap (Intl's ICU objects)
 * is not covered by the isolate's limit.
 */
const HOST_MEMORY_MARGIN_BYTES = 256 * 1024 * 1024;

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The last lines the host wrote to stderr. */
  stderr: string;
}

interface Host {
  child: ChildProcess;
  /** The script version loaded in it; '' before the first load. */
  version: string;
  /** Resolves once the process is gone, its stderr read. */
  exited: Promise<Exit>;
  /** Killed or stopped by us: its exit is not a crash. */
  stopping: boolean;
  /** The call in flight (calls are one at a time): its request's seq, and what settles it. */
  pending?: { seq: number; settle: (result: CallResult) => void };
}

type CallResult = { kind: 'reply'; reply: HostReply } | { kind: 'timeout' } | { kind: 'exit'; exit: Exit };

const describeExit = ({ code, signal }: Exit): string => (signal ? `killed by ${signal}` : `exit code ${code}`);

const fromHostError = (error: { code: string; message: string; permanent: boolean; details?: Record<string, unknown> }): FerryError =>
  error.code in errorCodes
    ? new FerryError(error.code as ErrorCode, error.message, { permanent: error.permanent, ...(error.details ? { details: error.details } : {}) })
    : new FerryError('SANDBOX_FAILED', `the sandbox host answered with an unknown error code ${error.code}: ${error.message}`);

export const createProcessSandbox = ({ channel, limits, logger }: ProcessSandboxOptions): ProcessSandbox => {
  const memoryMb = Math.max(8, Math.ceil(limits.memoryBytes / (1024 * 1024)));
  const memoryCapBytes = limits.memoryBytes + HOST_MEMORY_MARGIN_BYTES;
  let host: Host | undefined;
  /** The version runs use; loaded again into each new host. */
  let current: CompiledScript | undefined;
  let closed = false;
  /** Cuts a restart backoff short when the sandbox closes. */
  const closing = new AbortController();
  let seq = 0;
  /** Crashes in a row, whatever the message: sets the restart backoff. */
  let crashesInARow = 0;
  let restartAt = 0;
  const crashesOf = new Map<string, number>();

  // One request at a time: the isolate runs one message at a time anyway, and a message's deadline
  // starts when it is sent, not while it waits behind another.
  const exclusive = createSerial();

  const noteCrash = (): void => {
    crashesInARow++;
    restartAt = Date.now() + Math.min(RESTART_BACKOFF_MS * 2 ** (crashesInARow - 1), MAX_RESTART_BACKOFF_MS);
  };

  const refuseIfClosed = (): void => {
    if (closed) throw new FerryError('ENGINE_SHUTTING_DOWN', `the sandbox of channel ${channel} is closed`);
  };

  /** Sends one request; settled by the host's reply, its exit, or the deadline (which kills it). */
  const call = (target: Host, request: HostRequest, deadlineMs: number): Promise<CallResult> =>
    new Promise((resolve) => {
      const pending = {
        seq: request.seq,
        settle: (result: CallResult): void => {
          if (target.pending !== pending) return;
          target.pending = undefined;
          clearTimeout(timer);
          resolve(result);
        },
      };
      const timer = setTimeout(() => {
        target.stopping = true;
        target.child.kill('SIGKILL');
        if (host === target) host = undefined;
        pending.settle({ kind: 'timeout' });
      }, deadlineMs);
      target.pending = pending;
      // A failed send means the process is going away: its exit settles the call.
      target.child.send(request, () => undefined);
    });

  const spawn = async (): Promise<Host> => {
    const wait = restartAt - Date.now();
    if (wait > 0) await sleep(wait, undefined, { signal: closing.signal }).catch(() => undefined);
    refuseIfClosed();
    const [program, prelude] = await Promise.all([hostCode(), preludeCode()]);
    // The program comes on stdin (`-`); the arguments after it only name the process in `ps`.
    // isolated-vm needs --no-node-snapshot, as in the engine (engine/bin/ferry.js).
    const flags = ['--no-node-snapshot', '--input-type=module'];
    const child = spawnProcess(process.execPath, [...flags, '-', 'ferry-sandbox', channel], {
      // V8's serializer: 3× faster than JSON for a 1 MB message (8× for non-ASCII text), ~17 µs slower for 0.5 KB.
      serialization: 'advanced',
      stdio: ['pipe', 'ignore', 'pipe', 'ipc'],
    });
    child.stdin!.on('error', () => undefined); // a host that dies at once; its exit tells why
    child.stdin!.end(program);
    let stderr = '';
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-STDERR_TAIL_CHARS)));
    const stderrClosed = once(child.stderr!, 'close');
    const exited = new Promise<Exit>((resolve) => {
      // Also raised when a kill fails: only a process that never started ends here (it emits no 'exit').
      child.on('error', (error) => {
        if (child.pid === undefined) resolve({ code: null, signal: null, stderr: error.message });
      });
      child.once('exit', (code, signal) => {
        // No new request may go to it while its stderr drains.
        if (host === started) host = undefined;
        void Promise.race([stderrClosed, sleep(STDERR_DRAIN_MS)]).then(() => resolve({ code, signal, stderr }));
      });
    });
    const started: Host = { child, version: '', exited, stopping: false };
    child.on('message', (reply: HostReply) => {
      if (reply.seq === started.pending?.seq) started.pending.settle({ kind: 'reply', reply });
    });
    void exited.then((exit) => {
      started.pending?.settle({ kind: 'exit', exit });
      if (started.stopping) return;
      noteCrash();
      logger.warn({ hostPid: child.pid, code: exit.code, signal: exit.signal, stderr: exit.stderr.slice(-2_000) }, `sandbox process died (${describeExit(exit)})`);
    });
    const init = await call(started, { op: 'init', seq: ++seq, channel, limits, prelude, memoryCapBytes }, START_TIMEOUT_MS);
    let why: string;
    if (init.kind === 'reply') {
      if (init.reply.ok) return started;
      why = init.reply.error.message;
    } else if (init.kind === 'timeout') {
      why = `it did not start within ${START_TIMEOUT_MS} ms`;
    } else {
      why = `${describeExit(init.exit)}: ${init.exit.stderr.trim().split('\n').slice(-3).join(' | ')}`;
    }
    if (init.kind !== 'exit') {
      // (A host that exited was reported and counted as it went.)
      started.stopping = true;
      started.child.kill('SIGKILL');
      noteCrash();
    }
    throw new FerryError('SANDBOX_FAILED', `could not start the sandbox process of channel ${channel}: ${why}`);
  };

  const ensureHost = async (): Promise<Host> => (host ??= await spawn());

  /** The error for a call that got no answer; the host is gone either way. */
  const lost = (result: Exclude<CallResult, { kind: 'reply' }>, script: CompiledScript, what: string, id?: string): FerryError => {
    if (result.kind === 'timeout') {
      if (id !== undefined) crashesOf.delete(id);
      logger.warn({ script: script.name, id, marginMs: WATCHDOG_MARGIN_MS }, `sandbox process stopped answering ${what}; killed it`);
      return new FerryError('SCRIPT_TIMEOUT', `${script.name} ran past its ${limits.timeoutMs} ms time limit and its sandbox process stopped answering`, {
        details: { file: script.name },
      });
    }
    const { exit } = result;
    const reason = describeExit(exit);
    const overMemory = exit.stderr.includes(OVER_MEMORY);
    if (overMemory || V8_HEAP_OOM.test(exit.stderr)) {
      if (id !== undefined) crashesOf.delete(id);
      const how = overMemory
        ? `outside the isolate heap: its sandbox process grew past ${Math.round(memoryCapBytes / (1024 * 1024))} MB and was ended`
        : `V8 gave up and ended its sandbox process: ${reason}`;
      return new FerryError('SCRIPT_MEMORY', `${script.name} exceeded its ${memoryMb} MB memory limit (${how})`, {
        details: { file: script.name, exitCode: exit.code, signal: exit.signal },
      });
    }
    const details = { file: script.name, exitCode: exit.code, signal: exit.signal, stderr: exit.stderr.slice(-2_000) };
    if (id === undefined) return new FerryError('SANDBOX_FAILED', `the sandbox process of ${script.name} died ${what} (${reason})`, { details });
    const crashes = (crashesOf.get(id) ?? 0) + 1;
    crashesOf.delete(id);
    if (crashes >= MAX_CRASHES) {
      return new FerryError('SANDBOX_CRASHED', `the sandbox process of ${script.name} died ${crashes} times while translating this message (last: ${reason}); it is not retried`, {
        details: { ...details, crashes },
      });
    }
    crashesOf.set(id, crashes);
    if (crashesOf.size > MAX_TRACKED_CRASHES) crashesOf.delete(crashesOf.keys().next().value!);
    return new FerryError('SANDBOX_FAILED', `the sandbox process of ${script.name} died ${what} (${reason}); the message will be retried`, {
      details: { ...details, crashes },
    });
  };

  /** Loads `script` into `target`; the host keeps its previous version when this fails. */
  const loadInto = async (target: Host, script: CompiledScript): Promise<void> => {
    const { file, name, version, code, map } = script;
    const result = await call(target, { op: 'load', seq: ++seq, script: { file, name, version, code, map } }, limits.timeoutMs + LOAD_MARGIN_MS);
    if (result.kind !== 'reply') throw lost(result, script, 'while loading the script');
    if (!result.reply.ok) throw fromHostError(result.reply.error);
    target.version = script.version;
  };

  /** The script runs use and a host with it loaded. */
  const ready = async (): Promise<{ script: CompiledScript; target: Host }> => {
    refuseIfClosed();
    if (!current) throw new FerryError('SANDBOX_FAILED', 'no script is loaded in the sandbox');
    const script = current;
    const target = await ensureHost();
    if (target.version !== script.version) await loadInto(target, script);
    return { script, target };
  };

  const runOne = async (input: ScriptInput): Promise<SandboxResult> => {
    const { script, target } = await ready();
    const result = await call(target, { op: 'run', seq: ++seq, input }, limits.timeoutMs + WATCHDOG_MARGIN_MS);
    if (result.kind !== 'reply') throw lost(result, script, 'while translating the message', input.id);
    crashesInARow = 0;
    crashesOf.delete(input.id);
    if (!result.reply.ok) throw fromHostError(result.reply.error);
    if (!result.reply.result) throw new FerryError('SANDBOX_FAILED', `the sandbox process of ${script.name} returned no result`);
    return result.reply.result;
  };

  return {
    load: (script) =>
      exclusive.run(async () => {
        refuseIfClosed();
        await loadInto(await ensureHost(), script);
        current = script;
      }),

    run: (input: ScriptInput) => exclusive.run(() => runOne(input)),

    runMany: (inputs: ScriptInput[]) =>
      exclusive.run(async (): Promise<Array<SandboxResult | FerryError>> => {
        if (inputs.length === 1) return [await runOne(inputs[0]!).catch(asSandboxError)];
        const { script, target } = await ready();
        // Each message has its own time limit inside the host; this is the backstop for a host that hangs.
        const deadline = inputs.length * limits.timeoutMs + WATCHDOG_MARGIN_MS;
        const result = await call(target, { op: 'runMany', seq: ++seq, inputs }, deadline);
        if (result.kind !== 'reply') {
          // The host died or hung on one of them: run each alone, so the crash is charged to its message.
          logger.warn({ script: script.name, messages: inputs.length }, 'sandbox process lost a batch; translating its messages one at a time');
          const results: Array<SandboxResult | FerryError> = [];
          for (const input of inputs) results.push(await runOne(input).catch(asSandboxError));
          return results;
        }
        crashesInARow = 0;
        if (!result.reply.ok) throw fromHostError(result.reply.error);
        const items = result.reply.results;
        if (items?.length !== inputs.length) throw new FerryError('SANDBOX_FAILED', `the sandbox process of ${script.name} answered a batch of ${inputs.length} with ${items?.length ?? 'no'} results`);
        return items.map((item, i) => {
          crashesOf.delete(inputs[i]!.id);
          return item.ok ? item.result : fromHostError(item.error);
        });
      }),

    pid: () => host?.child.pid,

    async close() {
      if (closed) return;
      closed = true;
      closing.abort();
      await exclusive.idle();
      const stopping = host;
      host = undefined;
      if (!stopping) return;
      stopping.stopping = true;
      // Disconnecting asks the host to exit; one that does not is killed.
      if (stopping.child.connected) stopping.child.disconnect();
      const exit = await Promise.race([stopping.exited, sleep(STOP_TIMEOUT_MS).then(() => undefined)]);
      if (exit) return;
      stopping.child.kill('SIGKILL');
      await stopping.exited;
    },
  };
};
