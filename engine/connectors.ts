// The source and destination types a channel can use, one line each. The config schema, the loader's
// checks and normalisation, channels, `ferry start` and `ferry token`, the engine's services and the
// admin API all find a type here by its `type:` value (connector.ts says what each provides).
//
// The order is the order of the types in the schema, in editors and in "must be one of …".
import type { SourceConfig } from './config/contract.ts';
import type { DestinationConnector, SourceConnector } from './connector.ts';
import { channelDestinationConnector } from './destinations/channel.ts';
import { fileDestinationConnector } from './destinations/file.ts';
import { httpsDestinationConnector } from './destinations/https.ts';
import { mllpDestinationConnector } from './destinations/mllp.ts';
import { postgresDestinationConnector } from './destinations/postgres.ts';
import { websocketDestinationConnector } from './destinations/websocket.ts';
import { FerryError } from './errors.ts';
import { channelSourceConnector } from './sources/channel.ts';
import { fileSourceConnector } from './sources/file.ts';
import { httpsSourceConnector } from './sources/https.ts';
import { mllpSourceConnector } from './sources/mllp.ts';
import { pusherSourceConnector } from './sources/pusher.ts';

export const sourceConnectors: readonly SourceConnector[] = [
  mllpSourceConnector,
  channelSourceConnector,
  httpsSourceConnector,
  fileSourceConnector,
  pusherSourceConnector,
];

export const destinationConnectors: readonly DestinationConnector[] = [
  fileDestinationConnector,
  channelDestinationConnector,
  httpsDestinationConnector,
  postgresDestinationConnector,
  mllpDestinationConnector,
  websocketDestinationConnector,
];

const sourcesByType = new Map(sourceConnectors.map((c) => [c.type, c]));
const destinationsByType = new Map(destinationConnectors.map((c) => [c.type, c]));

/** The connector of a source or destination type, or undefined (before validation: the schema reports it). */
export const findSource = (type: unknown): SourceConnector | undefined => (typeof type === 'string' ? sourcesByType.get(type) : undefined);
export const findDestination = (type: unknown): DestinationConnector | undefined =>
  typeof type === 'string' ? destinationsByType.get(type) : undefined;

/** The connector of a loaded config's source: its type passed validation, so it exists. */
export const sourceConnector = (config: SourceConfig): SourceConnector => {
  const connector = findSource(config.type);
  if (!connector) throw new FerryError('CONFIG_INVALID', `no source type ${config.type}`);
  return connector;
};

export const destinationConnector = (config: { type: string }): DestinationConnector => {
  const connector = findDestination(config.type);
  if (!connector) throw new FerryError('CONFIG_INVALID', `no destination type ${config.type}`);
  return connector;
};
