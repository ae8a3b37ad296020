import type { Logger } from 'pino';
import { buildAck, buildRejectForNonHl7 } from '../hl7/ack.ts';
import { encodeHl7 } from '../hl7/charset.ts';
import type { Hl7Header } from '../hl7/header.ts';
import type { Intake } from '../intake.ts';
import type { MllpPeer } from './mllp.ts';

// How an MLLP listener answers each frame (HL7 v2 ch.2, original acknowledgment mode):
//   AA — after the message is committed (message log + queue): the ACK is a promise;
//   AE — the commit failed, or the channel is full (QUEUE_FULL): the sender keeps the message and retries;
//   AR — the frame is not HL7 (or undecodable): retrying it unchanged cannot help;
//   nothing — the frame is itself an ACK: an engine must never ACK an ACK.

export const mllpHandler =
  (intake: Intake, logger: Logger) =>
  async (payload: Buffer, peer: MllpPeer): Promise<Uint8Array | null> => {
    const source = `mllp ${peer.remoteAddress}:${peer.remotePort}${peer.clientName === undefined ? '' : ` CN=${peer.clientName}`}`;
    const result = await intake.accept(payload, { source, requireHl7: true });
    switch (result.kind) {
      case 'accepted':
        return encodeHl7(buildAck(result.header!, 'AA'), result.charset);
      case 'ignored':
        logger.warn({ source, controlId: result.header.controlId }, 'received an ACK as a message; not acknowledged');
        return null;
      case 'rejected':
        return nak(result.header, result.charset, 'AR', result.error.message, '102');
      case 'failed': {
        const text = result.error.code === 'QUEUE_FULL' ? 'channel is full, please resend later' : 'message not stored, please resend';
        return nak(result.header, result.charset, 'AE', text, '207');
      }
    }
  };

const nak = (header: Hl7Header | undefined, charset: string, code: 'AE' | 'AR', text: string, errorCode: string): Uint8Array =>
  header
    ? encodeHl7(buildAck(header, code, { text, errorCode }), charset)
    : Buffer.from(buildRejectForNonHl7(text), 'latin1');
