// A loaded channels.yaml, as the engine codes against it: defaults applied, paths absolute,
// durations and sizes in numbers (config/load.ts makes it; nothing past the loader sees raw YAML).
//
// Types only. A source or destination is known here by its `type` alone: the rest of its keys are
// its connector's (engine/sources/<type>.ts, engine/destinations/<type>.ts, listed in
// engine/connectors.ts), and only that module reads them.

/** A key path in channels.yaml: ['channels', 0, 'source', 'port']; inside a source or destination, from there. */
export type KeyPath = Array<string | number>;

export interface RetryPolicy {
  /** Total tries including the first; 0 = retry forever. */
  attempts: number;
  backoff: 'exponential' | 'fixed';
  delayMs: number;
  maxDelayMs: number;
}

/** A channel's source: `type` selects its connector, which defines the other keys. */
export interface SourceConfig {
  type: string;
}

/** The keys every destination has; `type` selects its connector, which defines the others. */
export interface DestinationConfig {
  type: string;
  name: string;
  order: 'fifo' | 'parallel';
  retry: RetryPolicy;
}

export interface ChannelConfig {
  name: string;
  source: SourceConfig;
  /** Absolute path of the translator script, or undefined for a pass-through channel. */
  script: string | undefined;
  /** maxOutputs: outputs one message may produce (returned and ctx.deliver together). */
  scriptLimits: { memoryBytes: number; timeoutMs: number; maxOutputs: number };
  /** Parallel translator jobs for this channel; 1 keeps order. */
  concurrency: number;
  /** Unfinished messages the channel may hold before intake refuses with QUEUE_FULL. */
  maxQueued: number;
  /** Duplicate suppression by sender + MSH-10 within this window; undefined = off. */
  dedupe: { windowMs: number } | undefined;
  destinations: DestinationConfig[];
}

export interface HttpsListenerConfig {
  host: string;
  port: number;
  /** Plain HTTP, no TLS: only when configured explicitly. */
  plain: boolean;
  /** Absolute paths of PEM files; cert and key are set unless plain. */
  cert: string | undefined;
  key: string | undefined;
  ca: string | undefined;
  clientCert: 'none' | 'request' | 'require';
}

export interface WebSocketConfig {
  /** URL path of the endpoint on the HTTPS listener. */
  path: string;
  replay: { size: number; ttlMs: number; maxBytes: number };
  /** Unsent bytes a connection may hold before it is disconnected as too slow. */
  sendBufferBytes: number;
  maxConnections: number;
  /** Addresses and CIDR ranges admitted; empty = any. */
  allowIps: string[];
}

export interface EngineConfig {
  redis: { mode: 'embedded' } | { mode: 'url'; url: string };
  /** Absolute data folder: message log, embedded Redis files. */
  data: string;
  /** With `tls` (absolute PEM paths) the admin API and web UI are served over HTTPS. */
  admin: { host: string; port: number; tls?: { cert: string; key: string } };
  retentionMs: number;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';
  shutdownTimeoutMs: number;
  /** How long intake waits for Redis before refusing (AE / 503) rather than holding the sender. */
  commitTimeoutMs: number;
  /** Absolute path of the admin users file (`ferry user` writes it; it may not exist). */
  users: string;
  /** Absolute path of the tokens file for https sources (`ferry token` writes it; it may not exist). */
  tokens: string;
  /** The HTTPS listener for https sources; absent when not configured. */
  https?: HttpsListenerConfig;
  /** WebSocket push on the HTTPS listener; absent when not configured. */
  websocket?: WebSocketConfig;
}

export interface FerryConfig {
  /** Absolute path of the config file and its folder (relative paths resolve against `dir`). */
  file: string;
  dir: string;
  engine: EngineConfig;
  channels: ChannelConfig[];
}
