// Every process the bench starts, and their clean-up: on success, on failure and on Ctrl-C. Children
// run in their own process groups (detached), so a Ctrl-C reaches only the bench, which then stops
// each of them the way it needs (an engine gets SIGTERM and time to stop its Redis).

import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const cleanups = new Set<() => Promise<void>>();

/** Runs `fn` at clean-up unless the returned function is called first (the thing was stopped normally). */
export const atCleanup = (fn: () => Promise<void>): (() => void) => {
  cleanups.add(fn);
  return () => void cleanups.delete(fn);
};

/** Newest first, each once. */
export const cleanupAll = async (): Promise<void> => {
  for (const fn of [...cleanups].reverse()) {
    cleanups.delete(fn);
    await fn().catch((error: unknown) => console.error(`bench: clean-up failed: ${String(error)}`));
  }
};

/**
 * Makes Ctrl-C, SIGTERM and a crash of the bench itself run the clean-up before exiting: the bench's
 * main program calls it once (a test importing these modules keeps its own handlers).
 */
export const cleanUpOnExit = (): void => {
  let ending = false;
  const endNow = (why: string, code: number): void => {
    if (ending) return;
    ending = true;
    console.error(`\nbench: ${why}: stopping everything it started`);
    void cleanupAll().finally(() => process.exit(code));
  };
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => endNow(signal, 130));
  process.on('uncaughtException', (error) => endNow(`uncaught ${error.stack ?? String(error)}`, 1));
  process.on('unhandledRejection', (error) => endNow(`unhandled rejection ${(error as Error)?.stack ?? String(error)}`, 1));
};

export interface Child {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Resolves with the exit code once the process has exited and its output is read. */
  readonly closed: Promise<number | null>;
  running(): boolean;
  /** Sends `signal` (default SIGKILL) unless it has exited, and waits for it. */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** Starts a process that clean-up SIGKILLs if it is still running (callers with a gentler stop register their own). */
export const spawnChild = (command: string, args: string[], options: SpawnOptions = {}): Child => {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options, detached: true });
  if (child.pid === undefined) throw new Error(`could not start ${command}`);
  const closed = once(child, 'close').then(([code]) => code as number | null, () => null);
  const running = (): boolean => child.exitCode === null && child.signalCode === null;
  const kill = async (signal: NodeJS.Signals = 'SIGKILL'): Promise<void> => {
    if (running()) child.kill(signal);
    await closed;
  };
  const forget = atCleanup(() => kill());
  void closed.then(forget);
  return { child, pid: child.pid, closed, running, kill };
};

/** A bench program (scripts/bench/<name>.ts) in its own Node process, through tsx. */
export const spawnBenchProgram = (name: string, args: string[]): Child =>
  spawnChild(process.execPath, ['--import', 'tsx', fileURLToPath(new URL(`${name}.ts`, import.meta.url)), ...args]);

/** Calls `onLine` with each JSON line the child prints on stdout; collects stderr for error messages. */
export const readJsonLines = (child: Child, onLine: (line: Record<string, unknown>) => void): { stderr(): string } => {
  let stderr = '';
  child.child.stderr?.on('data', (chunk) => (stderr = (stderr + chunk).slice(-4000)));
  createInterface({ input: child.child.stdout! }).on('line', (line) => {
    if (line.startsWith('{')) onLine(JSON.parse(line) as Record<string, unknown>);
  });
  return { stderr: () => stderr };
};
