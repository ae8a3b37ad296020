// The validated YAML as the engine uses it (config/contract.ts): defaults applied, paths made
// absolute against the config file's folder, durations and sizes in numbers. Each source and
// destination normalises its own keys (its connector's `normalize`); the keys every destination
// has (name, order, retry) are normalised here.

import path from 'node:path';
import { destinationConnector, sourceConnector } from '../connectors.ts';
import type { DestinationConfig, FerryConfig } from './contract.ts';
import { engineDefaults as defaults } from './engine-schema.ts';
import { channelDefaults, type RawConfig } from './schema.ts';
import { durationMs, isFile, resolveOptional, sizeBytes } from './units.ts';

type RawDestination = RawConfig['channels'][number]['destinations'][number];

const normalizeDestination = (raw: RawDestination, dir: string): DestinationConfig => {
  const retry = raw.retry ?? {};
  const common = {
    name: raw.name,
    order: raw.order ?? channelDefaults.destination.order,
    retry: {
      attempts: retry.attempts ?? channelDefaults.destination.retry.attempts,
      backoff: retry.backoff ?? channelDefaults.destination.retry.backoff,
      delayMs: durationMs(retry.delay ?? channelDefaults.destination.retry.delay),
      maxDelayMs: durationMs(retry.maxDelay ?? channelDefaults.destination.retry.maxDelay),
    },
  };
  return { ...common, ...destinationConnector(raw).normalize(raw, dir) };
};

/** The validated config of file `file` in folder `dir`. */
export function normalize(raw: RawConfig, file: string, dir: string): FerryConfig {
  const engine = raw.engine ?? {};
  const redis = engine.redis ?? defaults.redis;
  return {
    file,
    dir,
    engine: {
      redis: redis === 'embedded' ? { mode: 'embedded' } : { mode: 'url', url: redis },
      data: path.resolve(dir, engine.data ?? defaults.data),
      admin: {
        host: engine.admin?.host ?? defaults.admin.host,
        port: engine.admin?.port ?? defaults.admin.port,
        ...(engine.admin?.cert !== undefined &&
          engine.admin.key !== undefined && { tls: { cert: path.resolve(dir, engine.admin.cert), key: path.resolve(dir, engine.admin.key) } }),
      },
      retentionMs: durationMs(engine.retention ?? defaults.retention),
      logLevel: engine.logLevel ?? defaults.logLevel,
      shutdownTimeoutMs: durationMs(engine.shutdownTimeout ?? defaults.shutdownTimeout),
      commitTimeoutMs: durationMs(engine.commitTimeout ?? defaults.commitTimeout),
      users: path.resolve(dir, engine.users ?? defaults.users),
      tokens: path.resolve(dir, engine.tokens ?? defaults.tokens),
      ...(engine.https && {
        https: {
          host: engine.https.host ?? defaults.https.host,
          port: engine.https.port,
          plain: engine.https.plain ?? defaults.https.plain,
          cert: resolveOptional(dir, engine.https.cert),
          key: resolveOptional(dir, engine.https.key),
          ca: resolveOptional(dir, engine.https.ca),
          clientCert: engine.https.clientCert ?? defaults.https.clientCert,
        },
      }),
      ...(engine.websocket && {
        websocket: {
          path: engine.websocket.path ?? defaults.websocket.path,
          replay: {
            size: engine.websocket.replay?.size ?? defaults.websocket.replay.size,
            ttlMs: durationMs(engine.websocket.replay?.ttl ?? defaults.websocket.replay.ttl),
            maxBytes: sizeBytes(engine.websocket.replay?.maxBytes ?? defaults.websocket.replay.maxBytes),
          },
          sendBufferBytes: sizeBytes(engine.websocket.sendBuffer ?? defaults.websocket.sendBuffer),
          maxConnections: engine.websocket.maxConnections ?? defaults.websocket.maxConnections,
          allowIps: engine.websocket.allowIps ?? [],
        },
      }),
    },
    channels: raw.channels.map((channel) => {
      const defaultScript = path.join(dir, 'channels', `${channel.name}.ts`);
      return {
        name: channel.name,
        source: sourceConnector(channel.source).normalize(channel.source, dir),
        script: channel.script !== undefined ? path.resolve(dir, channel.script) : isFile(defaultScript) ? defaultScript : undefined,
        scriptLimits: {
          memoryBytes: sizeBytes(channel.scriptLimits?.memory ?? channelDefaults.scriptLimits.memory),
          timeoutMs: durationMs(channel.scriptLimits?.timeout ?? channelDefaults.scriptLimits.timeout),
          maxOutputs: channel.scriptLimits?.maxOutputs ?? channelDefaults.scriptLimits.maxOutputs,
        },
        concurrency: channel.concurrency ?? channelDefaults.concurrency,
        maxQueued: channel.maxQueued ?? channelDefaults.maxQueued,
        dedupe: channel.dedupe && { windowMs: durationMs(channel.dedupe.window) },
        destinations: channel.destinations.map((d) => normalizeDestination(d, dir)),
      };
    }),
  };
}
