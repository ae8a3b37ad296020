import type { ChannelDestinationConfig } from '../config.ts';
import { FerryError } from '../errors.ts';
import type { Intake } from '../intake.ts';
import { handoffMessageId } from '../wire/ids.ts';
import type { Delivery, Destination } from './destination.ts';

// Hands an output to another channel's intake, as that channel's new message. Its id is derived
// from this message's, so a hand-off replayed after a crash is recognised, not processed twice.

export const channelDestination = (config: ChannelDestinationConfig, target: Intake): Destination => ({
  async send(delivery: Delivery) {
    const result = await target.accept(delivery.content, {
      source: `channel ${delivery.channel}`,
      requireHl7: false,
      id: handoffMessageId(delivery.id, delivery.destination, delivery.output),
      parentId: delivery.id,
    });
    if (result.kind === 'rejected' || result.kind === 'failed') throw result.error;
    if (result.kind === 'ignored') {
      throw new FerryError('SCRIPT_BAD_RESULT', `channel ${config.channel} ignores ACK messages; nothing was handed over`);
    }
    return `handed to ${config.channel} as ${result.id}${result.duplicate ? ' (already there)' : ''}`;
  },
  async close() {},
});
