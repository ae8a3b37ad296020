// HL7 v2 acknowledgements, original mode (ch.2): building the ACK/NAK a receiver answers with, and
// reading the one a peer answered with.
import { FerryError } from '../errors.ts';
import { type Delimiters, defaultDelimiters, encodingCharacters, locateMsh } from './delimiters.ts';
import { escapeHl7 } from './escape.ts';
import type { Hl7Header } from './header.ts';
import { parseHl7 } from './message.ts';

export { isAck } from './header.ts';

export type AckCode = 'AA' | 'AE' | 'AR';

export interface AckOptions {
  /** Human-readable reason: ERR-8 for AE/AR (and MSA-3 before v2.7, where that field still exists). */
  text?: string;
  /** HL7 table 0357 code for ERR-3; 207 (application internal error) when not given. */
  errorCode?: string;
  /** MSH-10 of the ACK; generated when not given. */
  controlId?: string;
  /** MSH-7 of the ACK; the current time when not given. */
  now?: Date;
}

// HL7 table 0357 (message error condition codes), for ERR-3.2.
const errorNames: Record<string, string> = {
  '0': 'Message accepted',
  '100': 'Segment sequence error',
  '101': 'Required field missing',
  '102': 'Data type error',
  '103': 'Table value not found',
  '104': 'Value too long',
  '200': 'Unsupported message type',
  '201': 'Unsupported event code',
  '202': 'Unsupported processing id',
  '203': 'Unsupported version id',
  '204': 'Unknown key identifier',
  '205': 'Duplicate key identifier',
  '206': 'Application record locked',
  '207': 'Application internal error',
};

interface AckParts {
  readonly d: Delimiters;
  /** Raw (already escaped) MSH-3 .. MSH-6 of the ACK. */
  readonly sendingApplication: string;
  readonly sendingFacility: string;
  readonly receivingApplication: string;
  readonly receivingFacility: string;
  readonly triggerEvent: string;
  /** Raw MSA-2: the control id being acknowledged. */
  readonly acknowledgedId: string;
  readonly processingId: string;
  readonly version: string;
  /** Raw MSH-18, '' to leave it out. */
  readonly charset: string;
}

/**
 * The ACK for an inbound message: its delimiters, version, processing id and charset; sender and
 * receiver swapped; MSA-2 its control id. AE/AR add an ERR segment (v2.5+ ERR-3/4/8; ERR-1 before v2.5).
 * Each segment ends with CR.
 */
export const buildAck = (inbound: Hl7Header, code: AckCode, options: AckOptions = {}): string => {
  const { delimiters: d } = locateMsh(inbound.msh);
  // Copied from the raw MSH so values keep their exact escaping and components.
  const fields = inbound.msh.split(d.field);
  const raw = (n: number): string => (fields[n - 1] ?? '').split(d.repetition)[0]!;
  return assemble(
    {
      d,
      sendingApplication: raw(5),
      sendingFacility: raw(6),
      receivingApplication: raw(3),
      receivingFacility: raw(4),
      triggerEvent: escapeHl7(inbound.triggerEvent, d),
      acknowledgedId: raw(10),
      processingId: raw(11) || 'P',
      version: fields[11] || '2.5',
      charset: fields[17] ?? '',
    },
    code,
    options,
  );
};

/** An AR for a frame that is not HL7 at all: nothing to copy, so default delimiters, v2.5, empty MSA-2. */
export const buildRejectForNonHl7 = (text = 'not an HL7 message', options: Omit<AckOptions, 'text' | 'errorCode'> = {}): string =>
  assemble(
    {
      d: defaultDelimiters,
      sendingApplication: '',
      sendingFacility: '',
      receivingApplication: '',
      receivingFacility: '',
      triggerEvent: '',
      acknowledgedId: '',
      processingId: 'P',
      version: '2.5',
      charset: '',
    },
    'AR',
    { ...options, text, errorCode: '100' },
  );

const assemble = (parts: AckParts, code: AckCode, options: AckOptions): string => {
  const { d } = parts;
  const f = d.field;
  const c = d.component;
  const text = options.text === undefined ? '' : escapeHl7(options.text, d);
  const [major, minor] = versionNumber(parts.version);
  const before = (maj: number, min: number): boolean => major < maj || (major === maj && minor < min);
  const messageType = parts.triggerEvent === '' ? 'ACK' : `ACK${c}${parts.triggerEvent}${c}ACK`;
  const msh = [
    `MSH${f}${encodingCharacters(d)}`,
    parts.sendingApplication,
    parts.sendingFacility,
    parts.receivingApplication,
    parts.receivingFacility,
    timestamp(options.now ?? new Date()),
    '',
    messageType,
    escapeHl7(options.controlId ?? newControlId(), d),
    parts.processingId,
    parts.version,
    ...(parts.charset === '' ? [] : ['', '', '', '', '', parts.charset]),
  ];
  // MSA-3 was withdrawn in v2.7; before that it is where older receivers look for the text.
  const msa = ['MSA', code, parts.acknowledgedId, ...(text !== '' && before(2, 7) ? [text] : [])];
  const segments = [msh.join(f), msa.join(f)];
  if (code !== 'AA') {
    const errorCode = options.errorCode ?? '207';
    const name = errorNames[errorCode] ?? '';
    if (before(2, 5)) {
      // ERR-1 (ELD): segment^sequence^field^code as a CE in subcomponents.
      const s = d.subcomponent;
      segments.push(['ERR', `${c}${c}${c}${escapeHl7(errorCode, d)}${s}${escapeHl7(name, d)}${s}HL70357`].join(f));
    } else {
      const err = ['ERR', '', '', `${escapeHl7(errorCode, d)}${c}${escapeHl7(name, d)}${c}HL70357`, 'E'];
      if (text !== '') err.push('', '', '', text);
      segments.push(err.join(f));
    }
  }
  return segments.map((segment) => `${segment}\r`).join('');
};

/** `2.5.1` → [2, 5]; unreadable versions count as current (2.5) so the ACK takes the v2.5+ shape. */
const versionNumber = (version: string): [number, number] => {
  const match = /^(\d+)\.(\d+)/.exec(version);
  return match ? [Number(match[1]), Number(match[2])] : [2, 5];
};

const two = (n: number): string => String(n).padStart(2, '0');

// UTC with an explicit offset: unambiguous for the receiver and independent of the engine's TZ.
const timestamp = (now: Date): string =>
  `${now.getUTCFullYear()}${two(now.getUTCMonth() + 1)}${two(now.getUTCDate())}` +
  `${two(now.getUTCHours())}${two(now.getUTCMinutes())}${two(now.getUTCSeconds())}+0000`;

// MSH-10 is 20 characters at most before v2.7: time in base 36 plus random, 17 characters.
const newControlId = (): string => {
  const random = Array.from(crypto.getRandomValues(new Uint8Array(8)), (byte) => (byte % 36).toString(36)).join('');
  return `A${Date.now().toString(36).toUpperCase()}${random.toUpperCase()}`;
};

export interface AckReport {
  /** MSA-1: AA/AE/AR (or CA/CE/CR in enhanced mode). */
  readonly code: string;
  /** MSA-2: the control id of the message being acknowledged. */
  readonly controlId: string;
  /** MSA-3 */
  readonly text: string;
  /** From each ERR: ERR-8, else ERR-3.2 / ERR-3.1, else ERR-1.4.2 / ERR-1.4.1 (pre-v2.5); joined with "; ". */
  readonly errorText: string;
}

/** Reads a peer's ACK. HL7_NOT_HL7 when it is not HL7, HL7_NOT_ACK when it has no MSA segment. */
export const readAck = (text: string): AckReport => {
  const message = parseHl7(text);
  const msa = message.segments('MSA')[0];
  if (!msa) {
    throw new FerryError('HL7_NOT_ACK', `the response (MSH-9 ${JSON.stringify(message.get('MSH-9'))}) has no MSA segment`);
  }
  const errorText = message
    .segments('ERR')
    .map((err) => err.get('8') || err.get('3.2') || err.get('3.1') || err.get('1.4.2') || err.get('1.4.1'))
    .filter((line) => line !== '')
    .join('; ');
  return { code: msa.get('1'), controlId: msa.get('2'), text: msa.get('3'), errorText };
};
