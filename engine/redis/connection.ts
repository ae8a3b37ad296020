// The engine's one way to reach Redis, embedded (a unix socket) or external (a redis:// URL): the
// ioredis/BullMQ options, a client that logs its connection state, and a bounded PING for health.

import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import { FerryError, isFerryError } from '../errors.ts';

/** Where Redis listens: the embedded server's socket, or an external server's URL. */
export type RedisAddress = { path: string } | { url: string };

// Reconnect forever, 50 ms doubling to 2 s: Redis being away is an outage to ride out (the embedded
// supervisor restarts it within 5 s), never a reason for the engine to give up on its queues.
const reconnectDelay = (attempt: number): number => Math.min(50 * 2 ** (attempt - 1), 2000);

const DEFAULT_PORT = 6379;

const urlOptions = (url: string): RedisOptions => {
  // Messages below never quote the URL: it may carry a password.
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (cause) {
    throw new FerryError('CONFIG_INVALID', 'engine.redis is not a valid URL', { cause });
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw new FerryError('CONFIG_INVALID', `engine.redis must be "embedded" or a redis:// or rediss:// URL, not ${parsed.protocol}//…`);
  }
  const dbText = parsed.pathname.replace(/^\//, '');
  const db = dbText === '' ? 0 : Number(dbText);
  if (!Number.isInteger(db) || db < 0) {
    throw new FerryError('CONFIG_INVALID', `engine.redis URL path must be a database number such as /0, not /${dbText}`);
  }
  return {
    // URL keeps IPv6 brackets in hostname; sockets want the bare address.
    host: parsed.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: parsed.port === '' ? DEFAULT_PORT : Number(parsed.port),
    db,
    ...(parsed.username === '' ? {} : { username: decodeURIComponent(parsed.username) }),
    ...(parsed.password === '' ? {} : { password: decodeURIComponent(parsed.password) }),
    // Node verifies the certificate against the host name by default; rediss:// means exactly that.
    ...(parsed.protocol === 'rediss:' ? { tls: {} } : {}),
  };
};

/** ioredis options for BullMQ queues and workers (also fine for plain clients). */
export const redisConnectionOptions = (address: RedisAddress): RedisOptions => ({
  ...('path' in address ? { path: address.path } : urlOptions(address.url)),
  // BullMQ workers block on Redis and must never see a command fail for "too many retries".
  maxRetriesPerRequest: null,
  // Hold commands until Redis has finished loading its AOF, instead of failing them with LOADING.
  enableReadyCheck: true,
  retryStrategy: reconnectDelay,
});

/** For logs: the socket path or the URL without credentials. */
export const describeRedisAddress = (address: RedisAddress): string => {
  if ('path' in address) return `unix:${address.path}`;
  try {
    const { protocol, host, pathname } = new URL(address.url);
    return `${protocol}//${host}${pathname === '/' ? '' : pathname}`;
  } catch {
    return '(invalid URL)';
  }
};

/**
 * A client that logs each transition once (connected, lost, reconnected, closed) and only the first
 * error of an outage, not one line per reconnect attempt.
 */
export const createRedis = (address: RedisAddress, logger: Logger): Redis => {
  const redis = new Redis(redisConnectionOptions(address));
  const where = describeRedisAddress(address);
  let up = false;
  let downSince: number | undefined;
  let errorLogged = false;

  redis.on('ready', () => {
    if (downSince === undefined) logger.info({ redis: where }, 'redis connected');
    else logger.info({ redis: where, downMs: Date.now() - downSince }, 'redis reconnected');
    up = true;
    downSince = undefined;
    errorLogged = false;
  });
  redis.on('error', (error: Error) => {
    if (errorLogged) return;
    errorLogged = true;
    logger.error({ redis: where, err: error }, up ? 'redis connection error' : 'cannot reach redis; retrying');
  });
  redis.on('reconnecting', () => {
    if (!up) return;
    up = false;
    downSince = Date.now();
    logger.warn({ redis: where }, 'redis connection lost; reconnecting');
  });
  redis.on('end', () => {
    up = false;
    logger.info({ redis: where }, 'redis connection closed');
  });
  return redis;
};

/**
 * Calls `onRestart` when `redis` (re)connects to a server other than the one it last saw — its
 * run_id changed: a restart or a failover, either of which may have lost the server's last writes
 * (the embedded server's appendfsync everysec can lose up to ~2 s of them to a kill -9 while an
 * fsync stalls). A server that hides INFO is not watched. Returns what stops the watch.
 */
export const watchRedisRestarts = (redis: Redis, onRestart: () => void, logger: Logger): (() => void) => {
  let known: string | undefined;
  const check = async (): Promise<void> => {
    const runId = /^run_id:(\w+)/m.exec(await redis.info('server'))?.[1];
    if (runId === undefined) return;
    if (known !== undefined && runId !== known) onRestart();
    known = runId;
  };
  const onReady = (): void => void check().catch((error: Error) => logger.debug({ err: error }, 'cannot read the Redis run_id'));
  redis.on('ready', onReady);
  onReady(); // the client may be connected already
  return () => void redis.off('ready', onReady);
};

/**
 * Queued jobs are Redis keys: under maxmemory, any policy but noeviction lets Redis delete them
 * silently — lost messages that were acknowledged. Throws REDIS_EVICTION_POLICY for such a server;
 * only warns when the server will not say (CONFIG and INFO disabled, as on some managed services).
 * Waits, like every other command, while Redis cannot be reached.
 */
export const checkEvictionPolicy = async (redis: Redis, address: RedisAddress, logger: Logger): Promise<void> => {
  const where = describeRedisAddress(address);
  let policy: string | undefined;
  try {
    policy = ((await redis.config('GET', 'maxmemory-policy')) as string[])[1];
  } catch {
    policy = await redis.info('memory').then(
      (info) => /^maxmemory_policy:(\S+)/m.exec(info)?.[1],
      () => undefined,
    );
  }
  if (policy === undefined) {
    logger.warn({ redis: where }, 'cannot read maxmemory-policy from Redis; make sure it is noeviction, or queued messages may be evicted');
    return;
  }
  if (policy !== 'noeviction') {
    throw new FerryError(
      'REDIS_EVICTION_POLICY',
      `Redis at ${where} has maxmemory-policy ${policy}: when it reaches maxmemory it would delete queued messages. ` +
        'Set maxmemory-policy noeviction (in redis.conf, or CONFIG SET maxmemory-policy noeviction); Ferry then refuses new messages instead (AE / 503).',
      { details: { policy } },
    );
  }
};

/** Round trip of one PING in milliseconds; REDIS_UNAVAILABLE if it fails or takes over `timeoutMs`. */
export const pingRedis = async (redis: Redis, timeoutMs: number): Promise<number> => {
  const started = performance.now();
  const ping = redis.ping();
  // The race below may leave this promise behind; its late rejection must not go unhandled.
  ping.catch(() => undefined);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new FerryError('REDIS_UNAVAILABLE', `Redis did not answer PING within ${timeoutMs} ms`)),
      timeoutMs,
    );
  });
  try {
    await Promise.race([ping, timeout]);
    return performance.now() - started;
  } catch (error) {
    if (isFerryError(error)) throw error;
    throw new FerryError('REDIS_UNAVAILABLE', `Redis PING failed: ${(error as Error).message}`, { cause: error });
  } finally {
    clearTimeout(timer);
  }
};
