// Ferry's own redis-server (engine.redis: embedded): started from PATH, listening only on a unix
// socket in the data folder (no TCP port to collide with or to expose), persisted with an AOF, and
// restarted with backoff if it dies. Clients (ioredis) reconnect to the same socket by themselves.
//
// Durability of `--appendfsync everysec` (checked against redis 7 src/aof.c and src/server.c):
// every write command is appended to an in-memory AOF buffer, and beforeSleep() write(2)s that buffer
// to the AOF file *before* it sends the replies of that event-loop turn ("we are required to write
// the AOF before replying to the client", aof.c). A write(2) sits in the kernel page cache, which
// survives the death of the process, so a `kill -9` of redis-server or of Ferry loses nothing Redis
// acknowledged. fsync(2) runs in a background thread about once a second, so only an OS crash or power
// loss may lose the last ~1 s of writes. One exception, by redis's design (flushAppendOnlyFile): while
// the previous background fsync is still running, redis postpones the write(2) for up to 2 s and keeps
// replying; a kill -9 inside that window loses acknowledged writes (seen once in the tests, on a
// loaded machine). `appendfsync always` would close the gap at the cost of an fsync per batch (ACKs at
// 42–67 % of the rate, measured); instead the engine resyncs its channels from the message log when it
// sees a restarted Redis (watchRedisRestarts in connection.ts, Channel.resync).

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { constants as fsConstants, existsSync } from 'node:fs';
import { access, mkdir, readFile, rm, stat } from 'node:fs/promises';
import type { Socket } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { FerryError } from '../errors.ts';
import { pingRedis } from './connection.ts';
import { classifyRedisOutput } from './server-output.ts';

export interface RedisEndpoint {
  /** The unix socket redis-server listens on. */
  path: string;
}

export interface EmbeddedRedis {
  /** Starts redis-server (replacing one a killed engine left running); resolves once it answers PING. */
  start(): Promise<RedisEndpoint>;
  /** Shuts redis-server down (fsyncing the AOF) and stops supervising it; safe to call twice. */
  stop(): Promise<void>;
  /** Set between a successful start and stop. */
  readonly endpoint: RedisEndpoint | undefined;
}

export interface EmbeddedRedisOptions {
  /** `<data>/redis`: the AOF, the pidfile and (when the path is short enough) the socket. */
  dir: string;
  logger: Logger;
  /** The redis-server to run: a path, or a name looked up on PATH. Default `redis-server`. */
  binary?: string;
  /** AOF persistence; default true. Only tests that need no durability turn it off. */
  appendonly?: boolean;
  /** Also listen on 127.0.0.1 at this port, for tests that need a redis:// URL; default socket only. */
  tcpPort?: number;
  /** How long a new redis-server may take to answer at all. Loading a large AOF (answered with LOADING) is waited out. */
  startTimeoutMs?: number;
  /** Called each time the supervisor has brought a crashed redis-server back and it answers PING. */
  onRestart?: (event: { pid: number; restarts: number }) => void;
}

const DEFAULT_START_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 10_000;
const STALE_TERM_TIMEOUT_MS = 5_000;
const POLL_MS = 50;
const PROBE_TIMEOUT_MS = 1_000;
const RESTART_FIRST_DELAY_MS = 100;
const RESTART_MAX_DELAY_MS = 5_000;
/** A server that ran this long before dying counts as healthy: its restart backoff starts over. */
const STABLE_UPTIME_MS = 30_000;
const TAIL_LINES = 20;
// sun_path is 108 bytes on Linux and 104 on macOS/BSD, the terminating NUL included; redis refuses a
// longer socket path. 103 bytes is safe on both.
const SUN_PATH_MAX_BYTES = 103;

const execFileAsync = promisify(execFile);

/** Where the socket goes: in the data folder, unless that path is too long for sun_path. */
const socketPathFor = (dir: string): string => {
  const inDir = path.join(dir, 'redis.sock');
  if (Buffer.byteLength(inDir) <= SUN_PATH_MAX_BYTES) return inDir;
  // Deep data folders are common (home directories, mounted volumes). Fall back to a short path in the
  // temp folder named by a hash of the data folder: the same folder always finds its own socket again
  // (stale-server check included) and two engines with different folders never share one. The socket
  // is created with mode 700, so other users of a shared /tmp cannot connect.
  const name = `ferry-redis-${createHash('sha256').update(dir).digest('hex').slice(0, 16)}.sock`;
  const inTmp = path.join(os.tmpdir(), name);
  return Buffer.byteLength(inTmp) <= SUN_PATH_MAX_BYTES ? inTmp : path.join('/tmp', name);
};

const notInstalled = (binary: string): FerryError =>
  new FerryError(
    'REDIS_NOT_INSTALLED',
    `${binary.includes('/') ? `${binary} does not exist or is not executable` : `${binary} was not found on PATH`}. ` +
      'Ferry keeps its queues in Redis and, with engine.redis: embedded (the default), runs its own redis-server. ' +
      'Install one (Debian/Ubuntu: sudo apt-get install redis-server; macOS: brew install redis), ' +
      'or use an existing Redis by setting engine.redis: redis://host:6379 in channels.yaml.',
    { details: { binary } },
  );

const resolveBinary = async (binary: string): Promise<string> => {
  const candidates = binary.includes('/')
    ? [path.resolve(binary)]
    : (process.env.PATH ?? '').split(path.delimiter).filter(Boolean).map((dir) => path.join(dir, binary));
  for (const candidate of candidates) {
    try {
      await access(candidate, fsConstants.X_OK);
      if ((await stat(candidate)).isFile()) return candidate;
    } catch {
      // not this one
    }
  }
  throw notInstalled(binary);
};

const hasProcfs = existsSync('/proc/self/cmdline');

/** A live process's command line, or undefined when it is gone (a zombie counts as gone). */
const commandLine = async (pid: number): Promise<string | undefined> => {
  try {
    const raw = hasProcfs
      ? await readFile(`/proc/${pid}/cmdline`, 'utf8')
      : (await execFileAsync('ps', ['-o', 'command=', '-p', String(pid)])).stdout;
    return raw.replaceAll('\0', ' ').trim() || undefined;
  } catch {
    return undefined;
  }
};

/** The promise's value, or undefined after `ms`; the timer never outlives the race. */
const within = async <T>(promise: Promise<T>, ms: number): Promise<T | undefined> => {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)))]);
  } finally {
    clearTimeout(timer);
  }
};

const waitGone = async (pid: number, timeoutMs: number): Promise<boolean> => {
  const deadline = Date.now() + timeoutMs;
  while ((await commandLine(pid)) !== undefined) {
    if (Date.now() >= deadline) return false;
    await sleep(POLL_MS);
  }
  return true;
};

interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  error?: Error;
}

/** One redis-server process and what we know of it. */
interface Server {
  child: ChildProcess;
  startedAt: number;
  /** Last lines of its stdout/stderr, for error messages. */
  tail: string[];
  exit: ExitInfo | undefined;
  exited: Promise<ExitInfo>;
  /** stdout and stderr both closed: all of its output has been read. */
  drained: Promise<void>;
}

/** One start()…stop() of the embedded server, restarts included; stop() marks it stopped. */
interface Run {
  stopped: boolean;
  binaryPath: string;
  /** The redis-server of this run, if one is running or starting. */
  current: Server | undefined;
  restartTimer: NodeJS.Timeout | undefined;
  /** Consecutive failed lives, for the restart backoff. */
  failures: number;
  restarts: number;
}

const describeExit = ({ code, signal, error }: ExitInfo): string =>
  error ? `failed to run (${error.message})` : signal ? `was killed by ${signal}` : `exited with code ${code}`;

// An engine that exits without stop() (its shutdown timed out, a second Ctrl-C) still ends its
// Redis the clean way, AOF fsynced, instead of leaving it for the next start to find as stale. One
// exit hook for all servers of the process (tests run many), each forgotten once it exits.
const running = new Set<ChildProcess>();
const endWithProcess = (): void => {
  for (const child of running) child.kill('SIGTERM');
};
const endsWithProcess = (child: ChildProcess): void => {
  if (running.size === 0) process.once('exit', endWithProcess);
  running.add(child);
  const forget = (): void => {
    running.delete(child);
    if (running.size === 0) process.off('exit', endWithProcess);
  };
  child.once('exit', forget);
  child.once('error', forget); // never started
};

export const embeddedRedis = (options: EmbeddedRedisOptions): EmbeddedRedis => {
  const { logger, binary = 'redis-server', appendonly = true, tcpPort = 0, onRestart } = options;
  const startTimeoutMs = options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
  const dir = path.resolve(options.dir);
  const socket = socketPathFor(dir);
  const pidfile = path.join(dir, 'redis.pid');
  const args = [
    ...(tcpPort === 0 ? ['--port', '0'] : ['--port', String(tcpPort), '--bind', '127.0.0.1']),
    ...['--unixsocket', socket, '--unixsocketperm', '700'],
    ...['--dir', dir, '--pidfile', pidfile, '--daemonize', 'no'],
    // No RDB snapshots: the AOF is the persistence, and forking for snapshots would only add pauses.
    ...['--save', ''],
    ...(appendonly ? ['--appendonly', 'yes', '--appendfsync', 'everysec'] : ['--appendonly', 'no']),
    // BullMQ requires noeviction: an evicted job key would be a silently lost message.
    ...['--maxmemory-policy', 'noeviction'],
    // Queued jobs are hashes of ~8 fields, one of them (the options JSON) ~150 bytes: above the
    // default 64-byte limit a hash becomes a hashtable at about twice the memory. (The older name
    // of hash-max-listpack-value, so that Redis 6 takes it too.)
    ...['--hash-max-ziplist-value', '512'],
  ];

  let run: Run | undefined;
  let endpoint: RedisEndpoint | undefined;
  let starting: Promise<RedisEndpoint> | undefined;
  let stopping: Promise<void> | undefined;

  const launch = (file: string): Server => {
    // detached: its own process group, so a Ctrl-C meant for Ferry does not take Redis down while
    // Ferry is still draining its queues; Ferry stops Redis last, in stop().
    const child = spawn(file, args, { cwd: dir, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    const tail: string[] = [];
    const drained = [child.stdout, child.stderr].map((stream) => {
      // A supervised child must not keep a process alive that has nothing else to do (tests, CLI).
      (stream as Socket).unref();
      const lines = createInterface({ input: stream! });
      lines.on('line', (line) => {
        tail.push(line);
        if (tail.length > TAIL_LINES) tail.shift();
        // Its banner is debug, its real warnings warn (server-output.ts). Its pid goes in redisPid:
        // `pid` would read, in pretty logs, as the engine's own.
        const { level, redisPid, text } = classifyRedisOutput(line);
        logger[level]({ redisPid, redis: text }, 'redis-server');
      });
      return new Promise<void>((resolve) => lines.once('close', resolve));
    });
    child.unref();
    endsWithProcess(child);
    const server: Server = {
      child,
      startedAt: Date.now(),
      tail,
      exit: undefined,
      exited: new Promise<ExitInfo>((resolve) => {
        child.once('exit', (code, signal) => resolve({ code, signal }));
        child.once('error', (error) => resolve({ code: null, signal: null, error }));
      }).then((exit) => (server.exit = exit)),
      drained: Promise.all(drained).then(() => undefined),
    };
    return server;
  };

  const startFailed = async (server: Server, reason: string): Promise<FerryError> => {
    // Let its last words arrive (bounded: a forked AOF-rewrite child may hold the pipes open).
    await within(server.drained, 300);
    const output = server.tail.join('\n');
    return new FerryError(
      'REDIS_START_FAILED',
      `redis-server (${server.child.spawnfile}, dir ${dir}) ${reason}` + (output ? `; its last output:\n${output}` : ''),
      { details: { dir, socket, output } },
    );
  };

  const probe = async (): Promise<'ready' | 'loading' | 'down'> => {
    const client = new Redis({
      path: socket,
      lazyConnect: true,
      enableReadyCheck: false,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      connectTimeout: PROBE_TIMEOUT_MS,
    });
    // A refused probe is an answer, not an event to report.
    client.on('error', () => undefined);
    try {
      await client.connect();
      await pingRedis(client, PROBE_TIMEOUT_MS);
      return 'ready';
    } catch (error) {
      const cause = (error as Error).cause;
      return cause instanceof Error && cause.message.startsWith('LOADING') ? 'loading' : 'down';
    } finally {
      // disconnect() of a connection that already failed arms a 2 s destroy timer nothing clears,
      // which would hold the event loop; a failed probe has nothing left to close.
      if (client.status !== 'end') client.disconnect();
    }
  };

  const waitReady = async (server: Server): Promise<void> => {
    let deadline = Date.now() + startTimeoutMs;
    let loadingLogged = false;
    for (;;) {
      if (server.exit) throw await startFailed(server, describeExit(server.exit));
      const state = await probe();
      if (state === 'ready') return;
      if (state === 'loading') {
        // Loading time grows with the backlog (minutes for millions of jobs): an answer, even
        // LOADING, shows progress, so the bound is on silence, not on the whole start.
        deadline = Date.now() + startTimeoutMs;
        if (!loadingLogged) logger.info({ dir }, 'redis-server is loading its AOF; waiting');
        loadingLogged = true;
      } else if (Date.now() >= deadline) {
        server.child.kill('SIGKILL');
        throw await startFailed(server, `did not answer PING on ${socket} within ${startTimeoutMs} ms`);
      }
      await Promise.race([sleep(POLL_MS), server.exited]);
    }
  };

  /** A redis-server from an engine that was killed may still be running on our files: stop it. */
  const stopStaleServer = async (): Promise<void> => {
    const pid = Number.parseInt(await readFile(pidfile, 'utf8').catch(() => ''), 10);
    if (!(pid > 0) || pid === process.pid) return;
    const cmdline = await commandLine(pid);
    if (cmdline === undefined) return;
    // redis rewrites its process title to "<argv0> unixsocket:<path>"; without that rewrite the
    // original "--unixsocket <path>" arguments show. Either way our socket path identifies our server.
    const padded = ` ${cmdline} `;
    const ours = cmdline.includes('redis-server') && (padded.includes(` unixsocket:${socket} `) || padded.includes(` ${socket} `));
    if (!ours) {
      logger.warn({ pidfilePid: pid, pidfile, cmdline }, 'the redis pidfile names an unrelated process; ignoring it');
      return;
    }
    // Its data is in the AOF (SIGTERM even fsyncs it), so replacing it loses nothing.
    logger.warn({ redisPid: pid, dir }, 'a redis-server left by an earlier engine run is still running; stopping it');
    const signal = (name: NodeJS.Signals): void => {
      try {
        process.kill(pid, name);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ESRCH') return;
        throw new FerryError('REDIS_START_FAILED', `cannot stop the stale redis-server (pid ${pid}) on ${dir}`, { cause: error });
      }
    };
    signal('SIGTERM');
    if (await waitGone(pid, STALE_TERM_TIMEOUT_MS)) return;
    logger.warn({ redisPid: pid }, 'the stale redis-server ignored SIGTERM; killing it');
    signal('SIGKILL');
    if (!(await waitGone(pid, STALE_TERM_TIMEOUT_MS))) {
      throw new FerryError('REDIS_START_FAILED', `the stale redis-server (pid ${pid}) on ${dir} does not exit`);
    }
  };

  const scheduleRestart = (r: Run): void => {
    r.failures += 1;
    const delay = Math.min(RESTART_FIRST_DELAY_MS * 2 ** (r.failures - 1), RESTART_MAX_DELAY_MS);
    logger.info({ dir, delayMs: delay, attempt: r.failures }, 'restarting redis-server');
    r.restartTimer = setTimeout(() => void restart(r), delay);
    r.restartTimer.unref();
  };

  const supervise = (r: Run, server: Server): void => {
    void server.exited.then((exit) => {
      if (r.stopped || r.current !== server) return;
      if (Date.now() - server.startedAt >= STABLE_UPTIME_MS) r.failures = 0;
      logger.error(
        { dir, redisPid: server.child.pid, code: exit.code, signal: exit.signal, output: server.tail.slice(-5) },
        `embedded redis-server ${describeExit(exit)} unexpectedly`,
      );
      scheduleRestart(r);
    });
  };

  const restart = async (r: Run): Promise<void> => {
    if (r.stopped) return;
    const server = launch(r.binaryPath);
    r.current = server;
    try {
      await waitReady(server);
    } catch (error) {
      if (r.stopped) return;
      logger.error({ err: error }, 'redis-server did not come back');
      scheduleRestart(r);
      return;
    }
    if (r.stopped) return;
    r.restarts += 1;
    supervise(r, server);
    const pid = server.child.pid!;
    logger.warn({ dir, redisPid: pid, restarts: r.restarts }, 'embedded redis-server restarted');
    onRestart?.({ pid, restarts: r.restarts });
  };

  const stoppedWhileStarting = (): FerryError =>
    new FerryError('ENGINE_SHUTTING_DOWN', 'the embedded redis-server was stopped while starting');

  const boot = async (r: Run): Promise<RedisEndpoint> => {
    r.binaryPath = await resolveBinary(binary);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await stopStaleServer();
    // redis unlinks a leftover socket itself; removing it here also covers one it cannot unlink.
    await rm(socket, { force: true });
    // Checked right before launch: stop() marks the run and then kills r.current, so a server is
    // either launched before stop() looks (and killed by it) or not at all.
    if (r.stopped) throw stoppedWhileStarting();
    const server = launch(r.binaryPath);
    r.current = server;
    try {
      await waitReady(server);
    } catch (error) {
      throw r.stopped ? stoppedWhileStarting() : error;
    }
    if (r.stopped) throw stoppedWhileStarting();
    supervise(r, server);
    endpoint = { path: socket };
    logger.info({ dir, socket, redisPid: server.child.pid, appendonly }, 'embedded redis-server ready');
    return endpoint;
  };

  const shutdown = async (r: Run | undefined, pendingStart: Promise<RedisEndpoint> | undefined): Promise<void> => {
    if (!r) return;
    r.stopped = true;
    clearTimeout(r.restartTimer);
    const server = r.current;
    r.current = undefined;
    if (server && !server.exit) {
      // SIGTERM runs redis's SHUTDOWN path: fsync the AOF, remove pidfile and socket, exit 0.
      server.child.kill('SIGTERM');
      if (!(await within(server.exited, STOP_TIMEOUT_MS))) {
        logger.warn({ dir, redisPid: server.child.pid }, 'redis-server did not exit after SIGTERM; killing it');
        server.child.kill('SIGKILL');
        await server.exited;
      }
    }
    // A start cut short by stop() rejects; the stop itself has succeeded.
    await pendingStart?.catch(() => undefined);
    logger.info({ dir }, 'embedded redis-server stopped');
  };

  return {
    start: () => {
      if (starting) return starting;
      // A start after stop() is a new run; it waits for that stop to finish with the old server.
      const previousStop = stopping;
      const r: Run = { stopped: false, binaryPath: binary, current: undefined, restartTimer: undefined, failures: 0, restarts: 0 };
      run = r;
      stopping = undefined;
      const started = (async () => {
        await previousStop;
        return boot(r);
      })();
      // A failed start may be retried by calling start() again.
      started.catch(() => {
        if (starting === started) starting = undefined;
      });
      starting = started;
      return started;
    },
    stop: () => {
      if (!stopping) {
        stopping = shutdown(run, starting);
        run = undefined;
        starting = undefined;
        endpoint = undefined;
      }
      return stopping;
    },
    get endpoint() {
      return endpoint;
    },
  };
};
