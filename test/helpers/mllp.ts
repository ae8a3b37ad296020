import type { ExecutionContext } from 'ava';
import { mllpClient, type MllpClient } from '../../engine/clients/mllp.ts';
import { readAck, type AckReport } from '../../engine/hl7/ack.ts';

// Tests send HL7 to an engine the way an interface does: over MLLP to its loopback listener, one
// message at a time, and judge each message by the ACK that comes back. The 10 s ACK timeout is
// generous on purpose: the machine running the tests is slow and shared.

const ACK_TIMEOUT_MS = 10_000;

/** An MLLP client to 127.0.0.1:`port`, closed when the test (or whatever owns `t`) ends. */
export const openMllpClient = (t: Pick<ExecutionContext, 'teardown'>, port: number): MllpClient => {
  const client = mllpClient({ host: '127.0.0.1', port, ackTimeoutMs: ACK_TIMEOUT_MS });
  t.teardown(() => client.close());
  return client;
};

/** Sends one message on `client` and reads the ACK it gets back (Ferry writes ACKs in latin1). */
export const sendForAck = async (client: MllpClient, message: string | Uint8Array): Promise<AckReport> =>
  readAck((await client.send(message)).toString('latin1'));

/** Sends `messages` to 127.0.0.1:`port` on a connection of their own, closed afterwards; their ACKs in order. */
export const sendOnConnection = async (port: number, ...messages: Array<string | Uint8Array>): Promise<AckReport[]> => {
  const client = mllpClient({ host: '127.0.0.1', port, ackTimeoutMs: ACK_TIMEOUT_MS });
  try {
    const acks: AckReport[] = [];
    for (const message of messages) acks.push(await sendForAck(client, message));
    return acks;
  } finally {
    await client.close();
  }
};

/** One message on a connection of its own: connect, send, read the ACK, close. */
export const sendOnce = async (port: number, message: string | Uint8Array): Promise<AckReport> => (await sendOnConnection(port, message))[0]!;
