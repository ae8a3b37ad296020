import type { ExecutionContext } from 'ava';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { eventually } from './temp.ts';

// Runs `ferry` as a real process, the way a user does: `ferry start` so tests can SIGTERM and
// kill -9 it, and one-shot commands (`ferry check`, `ferry send`) for their output and exit code.

const execFileAsync = promisify(execFile);

/** A process's command line, '' when it is gone. */
const commandOf = (pid: number): Promise<string> =>
  readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() =>
    execFileAsync('ps', ['-o', 'command=', '-p', String(pid)]).then(
      (result) => result.stdout,
      () => '',
    ),
  );

const BIN = fileURLToPath(new URL('../../engine/bin/ferry.js', import.meta.url));

export interface FerryRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs one `ferry <args…>` to completion (`input` piped to its stdin); SIGKILLed (and rejected) after `timeoutMs`. */
export const runFerry = (args: string[], options: { cwd: string; timeoutMs?: number; input?: string }): Promise<FerryRun> =>
  new Promise((resolve, reject) => {
    const timeoutMs = options.timeoutMs ?? 60_000;
    const stdin = options.input === undefined ? 'ignore' : 'pipe';
    const child = spawn(process.execPath, ['--no-node-snapshot', BIN, ...args], { cwd: options.cwd, stdio: [stdin, 'pipe', 'pipe'] });
    if (options.input !== undefined) child.stdin!.end(options.input);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (chunk) => (stdout += chunk));
    child.stderr!.on('data', (chunk) => (stderr += chunk));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`ferry ${args.join(' ')} did not finish within ${timeoutMs} ms:\n${stdout}${stderr}`));
    }, timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    // 'close', not 'exit': all of its output has been read.
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });

export interface EngineProcess {
  readonly child: ChildProcess;
  readonly adminUrl: string;
  output(): string;
  /** SIGTERM, then waits for the exit code; SIGKILLs and throws if it takes over `timeoutMs` (default 30 s). */
  stop(timeoutMs?: number): Promise<number | null>;
  /** kill -9: no cleanup at all, as in a crash. */
  kill(): Promise<void>;
  api<T = unknown>(path: string): Promise<{ status: number; body: T }>;
}

/**
 * `ferry start -c configFile …args`. `t` is a test's context, or anything with a teardown (e.g.
 * collected for a shared engine's `test.after.always`). The clean-up after a kill finds the embedded
 * redis-server in the JSON log lines (the default off a terminal): with `--log pretty`, end the engine
 * with stop().
 */
export const startEngineProcess = async (t: Pick<ExecutionContext, 'teardown'>, configFile: string, cwd: string, args: string[] = []): Promise<EngineProcess> => {
  const child = spawn(process.execPath, ['--no-node-snapshot', BIN, 'start', '-c', configFile, ...args], {
    cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk) => (output += chunk));
  child.stderr!.on('data', (chunk) => (output += chunk));
  // 'close', not 'exit': by then all of its output has been read, last log lines included.
  const exited = once(child, 'close');
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
    // The embedded redis-server runs detached, so a killed engine (or one killed above) leaves it
    // running; stop each one this engine reported, if that pid is still a redis-server.
    const pids = [...output.matchAll(/"redisPid":(\d+),[^\n]*"msg":"embedded redis-server (?:ready|restarted)"/g)].map((match) => Number(match[1]));
    // Not JSON lines (--log pretty): the pidfile in ./data, where the test projects keep their data.
    if (pids.length === 0) pids.push(Number.parseInt(await readFile(join(cwd, 'data', 'redis', 'redis.pid'), 'utf8').catch(() => ''), 10));
    for (const pid of pids) {
      if (pid > 0 && (await commandOf(pid)).includes('redis-server')) process.kill(pid, 'SIGKILL');
    }
  });

  const adminUrl = await eventually(
    () => {
      if (child.exitCode !== null) throw new Error(`ferry exited with ${child.exitCode}:\n${output}`);
      return /admin API on (http:\/\/\S+)/.exec(output)?.[1];
    },
    60_000,
    'ferry to start',
  );

  return {
    child,
    adminUrl,
    output: () => output,
    async stop(timeoutMs = 30_000) {
      child.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), timeoutMs)));
      const result = await Promise.race([exited, late]);
      clearTimeout(timer);
      if (result === 'late') {
        child.kill('SIGKILL');
        await exited;
        throw new Error(`ferry did not exit within ${timeoutMs} ms of SIGTERM:\n${output.slice(-3000)}`);
      }
      return result[0] as number | null;
    },
    async kill() {
      child.kill('SIGKILL');
      await exited;
    },
    async api(path) {
      const response = await fetch(adminUrl + path);
      return { status: response.status, body: await response.json() };
    },
  };
};
