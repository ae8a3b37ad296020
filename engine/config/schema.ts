// The schema of channels.yaml, as the user writes it (before defaults, path resolution and unit
// parsing): the engine section (engine-schema.ts), and the channels with the keys each source and
// destination type declares in its connector module (engine/connectors.ts lists them). One schema
// serves two readers: the loader validates with it (config/load.ts), and engine/channels.schema.json
// is generated from it for editors (scripts/write-config-schema.ts), so every key carries a title, a
// description and its default.

import { Type, type Static, type TObject } from '@sinclair/typebox';
import { destinationConnectors, sourceConnectors } from '../connectors.ts';
import { engineSchema } from './engine-schema.ts';
import { Discriminated, Duration, Name, Path, Size, StringEnum } from './units.ts';

/** Default values in YAML terms; the schema advertises them and the loader applies them. */
export const channelDefaults = {
  scriptLimits: { memory: '64MB', timeout: '1s', maxOutputs: 1000 },
  concurrency: 1,
  maxQueued: 100_000,
  destination: {
    order: 'fifo',
    retry: { attempts: 5, backoff: 'exponential', delay: '1s', maxDelay: '5m' },
  },
} as const;

/** A smaller isolate cannot even hold the HL7 helpers plus one large message. */
export const minScriptMemoryBytes = 8 * 1024 ** 2;

/**
 * The outputs of one message are committed to the message log in one transaction (~10 µs per output
 * and destination), which holds the engine's event loop, every channel's ACKs included: 10,000
 * outputs to two destinations take ~0.1 s.
 */
const maxScriptOutputs = 10_000;

const retrySchema = Type.Object(
  {
    attempts: Type.Optional(
      Type.Integer({
        minimum: 0,
        title: 'Attempts',
        description: 'Tries in total, the first included; 0 retries forever.',
        default: channelDefaults.destination.retry.attempts,
      }),
    ),
    backoff: Type.Optional(
      StringEnum(['exponential', 'fixed'], {
        title: 'Backoff',
        description: 'exponential doubles the delay after each failure (up to maxDelay); fixed waits `delay` every time.',
        default: channelDefaults.destination.retry.backoff,
      }),
    ),
    delay: Type.Optional(
      Duration({
        title: 'Delay',
        description: 'Wait before the first retry.',
        default: channelDefaults.destination.retry.delay,
      }),
    ),
    maxDelay: Type.Optional(
      Duration({
        title: 'Maximum delay',
        description: 'Longest wait between two tries with exponential backoff.',
        default: channelDefaults.destination.retry.maxDelay,
      }),
    ),
  },
  {
    additionalProperties: false,
    title: 'Retry',
    description: 'How a failing delivery is retried.',
    default: channelDefaults.destination.retry,
  },
);

const destinationCommon = {
  name: Name({
    title: 'Name',
    description: 'Destination name, unique within its channel; part of queue names and log entries.',
  }),
  order: Type.Optional(
    StringEnum(['fifo', 'parallel'], {
      title: 'Order',
      description:
        'fifo delivers in arrival order and holds back later messages while one is retried (HL7 ADT feeds need this); parallel trades order for throughput.',
      default: channelDefaults.destination.order,
    }),
  ),
  retry: Type.Optional(retrySchema),
};

/** A source as validated: its type's keys, which only its connector reads. */
type RawSource = { type: string } & Record<string, unknown>;

/** A destination as validated: the keys every destination has, and its type's. */
type RawDestination = Static<TObject<typeof destinationCommon>> & RawSource;

/** A destination type's schema with the keys every destination has first (name, order, retry). */
const withCommonKeys = (schema: TObject): TObject => {
  const { type: _type, properties, required: _required, ...options } = schema;
  return Type.Object({ ...destinationCommon, ...properties }, options);
};

const channelSchema = Type.Object(
  {
    name: Name({
      title: 'Name',
      description: 'Channel name, unique in this file; part of queue names and file paths.',
    }),
    source: Discriminated<TObject[], RawSource>(sourceConnectors.map((connector) => connector.schema), {
      title: 'Source',
      description: 'Where messages come from; `type` selects the kind.',
    }),
    script: Type.Optional(
      Path({
        title: 'Script',
        description:
          'Translator script, relative to this file. Default: channels/<name>.ts if it exists, otherwise messages pass through unchanged.',
      }),
    ),
    scriptLimits: Type.Optional(
      Type.Object(
        {
          memory: Type.Optional(
            Size({
              title: 'Memory',
              description: 'Memory limit of the script sandbox; at least 8MB.',
              default: channelDefaults.scriptLimits.memory,
            }),
          ),
          timeout: Type.Optional(
            Duration({
              title: 'Timeout',
              description: 'Time limit for one message; a script that runs longer errors the message.',
              default: channelDefaults.scriptLimits.timeout,
            }),
          ),
          maxOutputs: Type.Optional(
            Type.Integer({
              minimum: 1,
              maximum: maxScriptOutputs,
              title: 'Maximum outputs',
              description: `Outputs one message may produce (returned and ctx.deliver calls together, at most ${maxScriptOutputs}); past it the message errors with SCRIPT_TOO_MANY_OUTPUTS and nothing is queued.`,
              default: channelDefaults.scriptLimits.maxOutputs,
            }),
          ),
        },
        {
          additionalProperties: false,
          title: 'Script limits',
          description: 'Limits of the translator sandbox.',
          default: channelDefaults.scriptLimits,
        },
      ),
    ),
    concurrency: Type.Optional(
      Type.Integer({
        minimum: 1,
        title: 'Concurrency',
        description: 'Messages translated in parallel; 1 keeps arrival order.',
        default: channelDefaults.concurrency,
      }),
    ),
    maxQueued: Type.Optional(
      Type.Integer({
        minimum: 1,
        title: 'Maximum queued',
        description:
          'Unfinished messages (received, not yet sent, filtered or errored) the channel may hold; above it intake refuses new ones with AE (MLLP) or 503 (HTTPS), error QUEUE_FULL, until the backlog drains.',
        default: channelDefaults.maxQueued,
      }),
    ),
    dedupe: Type.Optional(
      Type.Object(
        {
          window: Duration({
            title: 'Window',
            description: 'How long after a message its sender (MSH-3, MSH-4) and control id (MSH-10) count as seen.',
          }),
        },
        {
          additionalProperties: false,
          title: 'Duplicate suppression',
          description:
            'A message whose sender and MSH-10 were seen within the window is acknowledged again (AA) but not processed twice; the message log keeps it as filtered, MESSAGE_DUPLICATE with the first message id. Off when absent.',
        },
      ),
    ),
    destinations: Type.Array(
      Discriminated<TObject[], RawDestination>(destinationConnectors.map((connector) => withCommonKeys(connector.schema)), {
        title: 'Destination',
        description: 'Where translated messages go; `type` selects the kind.',
      }),
      {
        minItems: 1,
        title: 'Destinations',
        description: 'Every translated message goes to each destination, through its own queue.',
      },
    ),
  },
  {
    additionalProperties: false,
    title: 'Channel',
    description: 'One source, an optional translator script, and one or more destinations.',
  },
);

export const configSchema = Type.Object(
  {
    engine: Type.Optional(engineSchema),
    channels: Type.Array(channelSchema, {
      title: 'Channels',
      description: 'The channels this engine runs.',
    }),
  },
  {
    $schema: 'http://json-schema.org/draft-07/schema#',
    additionalProperties: false,
    title: 'Ferry channels.yaml',
    description: 'Engine settings and the channels a Ferry engine runs.',
  },
);

export type RawConfig = Static<typeof configSchema>;

/** The JSON Schema as committed in engine/channels.schema.json (scripts/write-config-schema.ts writes it). */
export const renderConfigSchema = (): string => `${JSON.stringify(configSchema, null, 2)}\n`;
