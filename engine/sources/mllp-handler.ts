import type { Logger } from 'pino';
import { buildAck, buildRejectForNonHl7 } from '../hl7/ack.ts';
import { encodeHl7 } from '../hl7/charset.ts';
import type { Hl7Header } from '../hl7/header.ts';
import type { Intake } from '../intake.ts';
import { logThrottle } from '../log-throttle.ts';
import type { MllpPeer } from './mllp-listener.ts';

// How an MLLP listener answers each frame (HL7 v2 ch.2, original acknowledgment mode):
//   AA — after the message is committed (message log + queue): the ACK is a promise;
//   AE — the commit failed, or the channel is full (QUEUE_FULL): the sender keeps the message and retries;
//   AR — the frame is not HL7 (or undecodable): retrying it unchanged cannot help;
//   nothing — the frame is itself an ACK: an engine must never ACK an ACK. Nor is it a message, so it
//             does not keep the connection from idling (sources/mllp-listener.ts).

// An ACK sent to a listener means a sender is misconfigured (or probing): worth a warning that names
// the sender's address and the ACK's MSH-10. But a sender can send them as fast as it likes, so only
// the first of each interval is a warning, followed by a count of the rest, each of which is logged
// at debug level. Misconfigured senders ACK steadily, hence a longer interval than for refusals.
const IGNORED_LOG_INTERVAL_MS = 60_000;

export const mllpHandler = (intake: Intake, logger: Logger) => {
  const ignoredLog = logThrottle(IGNORED_LOG_INTERVAL_MS, ({ count, keys }) =>
    logger.warn(
      { code: 'MLLP_ACK_IGNORED', ignored: count, addresses: keys },
      `${count} more ACKs received as messages and not acknowledged in the last ${IGNORED_LOG_INTERVAL_MS / 1000} s (from ${keys.join(', ')})`,
    ),
  );
  return async (payload: Buffer, peer: MllpPeer): Promise<Uint8Array | null> => {
    const source = `mllp ${peer.remoteAddress}:${peer.remotePort}${peer.clientName === undefined ? '' : ` CN=${peer.clientName}`}`;
    const result = await intake.accept(payload, { source, requireHl7: true });
    switch (result.kind) {
      case 'accepted':
        return encodeHl7(buildAck(result.header!, 'AA'), result.charset);
      case 'ignored': {
        const fields = { code: 'MLLP_ACK_IGNORED', source, controlId: result.header.controlId };
        const message = 'received an ACK as a message; not acknowledged';
        if (ignoredLog.admit(peer.remoteAddress)) logger.warn(fields, message);
        else logger.debug(fields, message);
        return null;
      }
      case 'rejected':
        return nak(result.header, result.charset, 'AR', result.error.message, '102');
      case 'failed': {
        const text = result.error.code === 'QUEUE_FULL' ? 'channel is full, please resend later' : 'message not stored, please resend';
        return nak(result.header, result.charset, 'AE', text, '207');
      }
    }
  };
};

const nak = (header: Hl7Header | undefined, charset: string, code: 'AE' | 'AR', text: string, errorCode: string): Uint8Array =>
  header
    ? encodeHl7(buildAck(header, code, { text, errorCode }), charset)
    : Buffer.from(buildRejectForNonHl7(text), 'latin1');
