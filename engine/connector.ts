// What a source or destination type is to the engine: one module (engine/sources/<type>.ts,
// engine/destinations/<type>.ts) exporting a plain object of this shape, listed in connectors.ts.
// Everything the engine knows about a type is asked of that object: its keys in channels.yaml, their
// checks and defaults, how it describes itself, which engine services it uses, and how to make one.
// Nothing outside a connector's module looks at its `type` string or its keys.
//
// Types only.

import type { Static, TObject } from '@sinclair/typebox';
import type { Logger } from 'pino';
import type { HmacVerifier } from './auth/hmac.ts';
import type { TokenTable } from './auth/tokens.ts';
import type { DestinationConfig, KeyPath, SourceConfig } from './config/contract.ts';
import type { Entry } from './config/units.ts';
import type { Destination } from './destinations/destination.ts';
import type { HttpsMount } from './http/https-listener.ts';
import type { Intake, IntakeOptions } from './intake.ts';
import type { OutputMeta } from './message.ts';
import type { PushHub } from './push/hub.ts';

/** What the engine runs for connectors, the same for every channel. */
export interface EngineServices {
  /** Another channel's intake, for hand-offs (every channel exists before any starts). */
  intakeOf(channel: string): Intake | undefined;
  /** The engine HTTPS listener, and what checks tokens and signatures; absent without engine.https. */
  https?: { listener: HttpsMount; tokens?: TokenTable; hmac?: HmacVerifier };
  /** The topics of engine.websocket; absent without it. */
  push?: PushHub;
}

/** What `create` gets: one shape for every source and destination; each takes what it uses. */
export interface ConnectorContext extends EngineServices {
  channel: string;
  /** The channel's logger: its lines name the channel. */
  logger: Logger;
  /** The channel's own intake: where a source hands what it receives. */
  intake: Intake;
  /** The channel a stored message id belongs to, if any (the message log). */
  channelOf(id: string): string | undefined;
}

/** A running source: listens, polls or mounts a path while its channel runs. */
export interface Source {
  start(): Promise<unknown>;
  /** Stops taking messages, lets those under way finish; safe to call twice. */
  stop(): Promise<void>;
  /** A listener's bound port (the real one when configured as 0). */
  readonly port?: number;
}

/** What a connector's `check` gets: where to report, and what it may look at. */
export interface ConfigCheck {
  /** Reports CONFIG_INVALID at a key path inside this source or destination; [] is the whole of it. */
  fail(at: KeyPath, message: string): void;
  /** Reports `file not found` at `at` when `value` names (relative to the config file) no file. */
  checkFile(value: unknown, at: KeyPath): void;
  /** The config file's folder, which relative paths resolve against. */
  dir: string;
  /** The engine services as configured (read before validation, defaults applied). */
  engine: {
    /** engine.https, when present. */
    https?: { plain: boolean; clientCert: unknown };
    websocket: boolean;
  };
}

/**
 * What a source or destination takes that no other may, checked across every channel by the config
 * loader (with the engine's own listeners): two claims on one thing are a config error.
 */
export type Claim =
  /** A TCP port it listens on; a clash is the same port on an overlapping host. Port 0 is always free. */
  | { kind: 'port'; host: string; port: unknown; at: KeyPath }
  /** A path on the engine HTTPS listener. */
  | { kind: 'https-path'; path: string; at: KeyPath }
  /** A folder it reads files from, and removes them. */
  | { kind: 'watched-folder'; dir: string; at: KeyPath }
  /** A folder it moves the files it read to: no source may watch it, or they would be read again. */
  | { kind: 'moves-to'; dir: string; at: KeyPath }
  /** The channel it hands messages to: it must exist, take hand-offs, and close no cycle. */
  | { kind: 'hand-off'; channel: string; at: KeyPath };

/**
 * What source and destination types share; `S` is the schema of its keys (`type` first). Members
 * are methods (checked bivariantly) so that the registry can hold every type in one list.
 */
interface Connector<S extends TObject> {
  /** The value of `type:` in channels.yaml. */
  readonly type: string;
  /** Its keys, with titles, descriptions and defaults: validation, editors' schema and docs. */
  readonly schema: S;
  /** What the schema cannot say, on the YAML as written (before validation: read it defensively). */
  check?(raw: Entry, check: ConfigCheck): void;
  /** What it takes that no other may (see Claim), from the YAML as written; `dir` is the config folder. */
  claims?(raw: Entry, dir: string): Claim[];
}

export interface SourceConnector<S extends TObject = TObject, C extends SourceConfig = SourceConfig> extends Connector<S> {
  /** The validated keys as the engine uses them: defaults applied, paths resolved against `dir`, units parsed. */
  normalize(raw: Static<S>, dir: string): C;
  /** Short, for the admin API and the log: "mllp 127.0.0.1:6661". */
  describe(config: C): string;
  /** What `ferry start` says of the running channel: "listening on MLLP port 6661". */
  activity(config: C, running: { port: number | undefined; httpsUrl: string | undefined }): string;
  /** How intake takes what it receives, and an operator's resend of it: only HL7? in which character set? */
  intakeOptions(config: C): Pick<IntakeOptions, 'requireHl7' | 'charset'>;
  /** For sources that check the tokens file's credentials: how its senders authenticate (token, hmac, mtls, none). */
  auth?(config: C): string;
  /** The path it mounts on the engine HTTPS listener, for sources that use it. */
  httpsPath?(config: C): string;
  /** Whether other channels may hand messages to it (their channel destinations). */
  readonly takesHandoffs?: boolean;
  /** The source of a channel; undefined when nothing needs to run (messages arrive by hand-off). */
  create(config: C, context: ConnectorContext): Source | undefined;
}

/** A destination's own config: the keys every destination has (name, order, retry) are the loader's. */
export type OwnKeys<C extends DestinationConfig> = Omit<C, 'name' | 'order' | 'retry'>;

export interface DestinationConnector<S extends TObject = TObject, C extends DestinationConfig = DestinationConfig> extends Connector<S> {
  /** Its validated keys as the engine uses them (the loader adds name, order and retry). */
  normalize(raw: Static<S>, dir: string): OwnKeys<C>;
  /** The ctx.deliver options it follows; a script that sets one no destination of its channel follows errors. */
  readonly follows?: ReadonlyArray<keyof OutputMeta>;
  create(config: C, context: ConnectorContext): Destination;
}
