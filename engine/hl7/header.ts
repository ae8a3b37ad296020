// The MSH facts the intake path needs (routing, ACK, logs) without parsing the rest of the message:
// only the first segment is read, so a multi-megabyte ORU costs the same as an ADT.
import { locateMsh } from './delimiters.ts';
import { parseHl7 } from './message.ts';

export interface Hl7Header {
  /** MSH-1 */
  readonly fieldSeparator: string;
  /** MSH-2, e.g. `^~\&` (or `^~\&#` from v2.7) */
  readonly encodingCharacters: string;
  /** MSH-3 .. MSH-6 (HD: `namespace^universal id^type` kept raw when components are present) */
  readonly sendingApplication: string;
  readonly sendingFacility: string;
  readonly receivingApplication: string;
  readonly receivingFacility: string;
  /** MSH-9 as written, e.g. `ADT^A01^ADT_A01` */
  readonly messageType: string;
  /** MSH-9.1, e.g. `ADT` */
  readonly messageCode: string;
  /** MSH-9.2, e.g. `A01`; '' when absent */
  readonly triggerEvent: string;
  /** MSH-10 */
  readonly controlId: string;
  /** MSH-11.1, e.g. `P` */
  readonly processingId: string;
  /** MSH-12.1, e.g. `2.5` */
  readonly version: string;
  /** MSH-18, first repetition; '' when absent */
  readonly charset: string;
  /** The MSH segment as received, still escaped: an ACK copies fields from it verbatim. */
  readonly msh: string;
}

/**
 * Reads MSH only; values follow Hl7Message.get's rule (leaves unescaped, composite values raw).
 * Throws HL7_NOT_HL7 unless the text starts with MSH (after an optional byte order mark).
 */
export const readHeader = (text: string): Hl7Header => {
  const { start } = locateMsh(text);
  let end = start;
  while (end < text.length) {
    const code = text.charCodeAt(end);
    if (code === 13 || code === 10) break;
    end++;
  }
  const msh = text.slice(start, end);
  const message = parseHl7(msh);
  const get = (path: string): string => message.get(path);
  return {
    fieldSeparator: get('MSH-1'),
    encodingCharacters: get('MSH-2'),
    sendingApplication: get('MSH-3'),
    sendingFacility: get('MSH-4'),
    receivingApplication: get('MSH-5'),
    receivingFacility: get('MSH-6'),
    messageType: get('MSH-9'),
    messageCode: get('MSH-9.1'),
    triggerEvent: get('MSH-9.2'),
    controlId: get('MSH-10'),
    processingId: get('MSH-11.1'),
    version: get('MSH-12.1'),
    charset: get('MSH-18'),
    msh,
  };
};

/** An engine must never acknowledge an acknowledgement: true when MSH-9.1 is `ACK`. */
export const isAck = (header: Hl7Header): boolean => header.messageCode === 'ACK';
