import type { Server } from 'node:http';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { createHmacVerifier, redisNonceStore } from './auth/hmac.ts';
import { openTokenTable } from './auth/tokens.ts';
import { watchUsers } from './auth/users.ts';
import { channelControl } from './channel-control.ts';
import { createChannel, type Channel, type ChannelDeps } from './channel.ts';
import type { FerryConfig } from './config/contract.ts';
import type { EngineServices } from './connector.ts';
import { sourceConnector } from './connectors.ts';
import { createEventBus, publishingStore } from './events.ts';
import { adminApp } from './http/admin.ts';
import { checkAdminExposure, isLoopbackHost } from './http/auth.ts';
import { httpsListener, type HttpsListener } from './http/https-listener.ts';
import { listen, urlOf } from './http/listen.ts';
import { QUEUE_PREFIX } from './pipeline/queues.ts';
import { checkEvictionPolicy, createRedis, redisConnectionOptions, watchRedisRestarts, type RedisAddress } from './redis/connection.ts';
import { embeddedRedis, type EmbeddedRedis } from './redis/embedded.ts';
import { openAdminStore } from './store/admin-store.ts';
import type { MessageStore } from './store/contract.ts';
import { openMessageStore } from './store/message-store.ts';
import { createPushHub, type PushHub } from './push/hub.ts';
import { websocketEndpoint, type WebSocketEndpoint } from './push/websocket-endpoint.ts';

// The running engine: Redis, the message log, every channel and the admin listener, started in
// dependency order and stopped in reverse.

export interface Engine {
  readonly channels: ReadonlyMap<string, Channel>;
  readonly store: MessageStore;
  /** Where the admin API listens; `url` is http:// or, with engine.admin cert and key, https://. */
  readonly admin: { host: string; port: number; url: string };
  /** The HTTPS listener of https sources, when configured. */
  readonly https: { host: string; port: number; url: string } | undefined;
  stop(): Promise<void>;
}

const RETENTION_SWEEP_MS = 60 * 60 * 1000;

export const startEngine = async (config: FerryConfig, logger: Logger): Promise<Engine> => {
  const undo: Array<() => Promise<void>> = [];
  const stopAll = async (): Promise<void> => {
    for (const step of undo.reverse().splice(0)) {
      await step().catch((error) => logger.error({ err: error }, 'error while stopping'));
    }
  };

  try {
    await mkdir(config.engine.data, { recursive: true });

    // Checked before anything starts: without users the admin API has no login, so it must not be reachable from the network.
    const users = await watchUsers(config.engine.users, logger);
    undo.push(async () => users.close());
    const loopbackOnly = isLoopbackHost(config.engine.admin.host);
    checkAdminExposure(config, users.list().length);
    const bus = createEventBus((error) => logger.warn({ err: error }, 'event listener failed'));

    let address: RedisAddress;
    if (config.engine.redis.mode === 'embedded') {
      const redis: EmbeddedRedis = embeddedRedis({ dir: join(config.engine.data, 'redis'), logger });
      address = await redis.start();
      undo.push(() => redis.stop());
    } else {
      address = { url: config.engine.redis.url };
    }
    const connection = redisConnectionOptions(address);
    const health: Redis = createRedis(address, logger);
    undo.push(async () => void health.disconnect());
    await checkEvictionPolicy(health, address, logger);

    const store = publishingStore(openMessageStore(join(config.engine.data, 'messages.db')), bus);
    undo.push(() => store.close());
    const sweep = (): void => {
      const removed = store.purge(Date.now() - config.engine.retentionMs);
      if (removed > 0) logger.info({ removed }, 'message log retention: removed old messages');
    };
    sweep();
    const sweeper = setInterval(sweep, RETENTION_SWEEP_MS).unref();
    undo.push(async () => clearInterval(sweeper));

    // The HTTPS listener exists before the channels (they mount their paths on start) and listens
    // after them, so its first request finds every running channel mounted.
    // What the sources use of it: their paths, and the tokens file for senders with a token or an HMAC key.
    const sources = config.channels.map((c) => ({ source: c.source, connector: sourceConnector(c.source) }));
    const httpsPaths = sources.flatMap(({ source, connector }) => (connector.httpsPath ? [connector.httpsPath(source)] : []));
    const credentials = sources.some(({ source, connector }) => ['token', 'hmac'].includes(connector.auth?.(source) ?? ''));
    let https: EngineServices['https'];
    let listener: HttpsListener | undefined;
    let push: PushHub | undefined;
    let websocket: WebSocketEndpoint | undefined;
    if (config.engine.https) {
      listener = httpsListener({ config: config.engine.https, paths: httpsPaths, logger });
      const needTokens = config.engine.websocket !== undefined || credentials;
      const tokens = needTokens ? openTokenTable(config.engine.tokens, logger) : undefined;
      if (tokens) undo.push(() => tokens.close());
      const hmac = tokens && createHmacVerifier({ keys: (keyId) => tokens.hmacSecret(keyId), nonces: redisNonceStore(health, `${QUEUE_PREFIX}:nonce:`) });
      https = { listener, tokens, hmac };
      if (config.engine.websocket && tokens) {
        push = createPushHub(config.engine.websocket.replay);
        const endpoint = websocketEndpoint({ config: config.engine.websocket, hub: push, tokens, logger });
        undo.push(() => endpoint.stop());
        listener.mountUpgrade(config.engine.websocket.path, endpoint.handleUpgrade);
        websocket = endpoint;
      }
    }

    const channels = new Map<string, Channel>();
    const deps: ChannelDeps = {
      store,
      connection,
      logger,
      commitTimeoutMs: config.engine.commitTimeoutMs,
      services: { intakeOf: (name: string) => channels.get(name)?.intake, https, push },
    };
    for (const channelConfig of config.channels) channels.set(channelConfig.name, createChannel(channelConfig, deps));
    undo.push(async () => {
      await Promise.all([...channels.values()].map((channel) => channel.close()));
    });
    const adminStore = openAdminStore(join(config.engine.data, 'admin.db'));
    undo.push(async () => adminStore.close());
    const control = channelControl({ channels, state: adminStore, bus, logger });
    await control.startSaved();
    // A restarted Redis may have lost its last writes (jobs queued, or completed, just before it
    // died): the message log says what is still to do, and each running channel queues it again.
    const unwatch = watchRedisRestarts(
      health,
      () => {
        logger.warn('Redis restarted: queueing again what the message log holds as unfinished and Redis may have lost');
        for (const channel of channels.values()) channel.resync().catch((error) => logger.error({ channel: channel.name, err: error }, 'could not resync the channel with Redis'));
      },
      logger,
    );
    undo.push(async () => unwatch());
    const httpsBound = await listener?.start();
    if (listener) undo.push(() => listener.stop());
    // Open WebSockets would hold the listener's close: they end first (stop is safe to call twice).
    if (websocket) undo.push(() => websocket.stop());

    const app = adminApp({ channels, store, redis: health, control, adminStore, users, bus, logger, loopbackOnly });
    const server: Server = await listen(app.callback(), config.engine.admin, logger);
    undo.push(async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // Event streams never end by themselves; cut them (and idle keep-alives) so close can finish.
      server.closeAllConnections();
      await closed;
    });
    const bound = server.address();
    const port = typeof bound === 'object' && bound ? bound.port : config.engine.admin.port;
    const admin = { host: config.engine.admin.host, port, url: urlOf(config.engine.admin.tls ? 'https' : 'http', config.engine.admin.host, port) };
    // The one place this is said (ferry start's summary lines do not repeat it).
    if (users.list().length === 0) logger.warn({ users: config.engine.users }, 'no users: the admin API needs no login and listens on loopback only (add one: ferry user add <name> --role admin)');
    else if (!loopbackOnly && !config.engine.admin.tls) {
      logger.warn(
        { admin: admin.url },
        'the admin API is reachable from the network over plain HTTP: passwords and session cookies cross it in clear; set engine.admin cert and key, or put a TLS proxy in front',
      );
    }
    logger.info({ admin: admin.url, channels: [...channels.keys()] }, 'ferry started');

    let stopped: Promise<void> | undefined;
    return {
      channels,
      store,
      admin,
      https: httpsBound,
      stop: () => (stopped ??= stopAll().then(() => logger.info('ferry stopped'))),
    };
  } catch (error) {
    await stopAll();
    throw error;
  }
};
