// Bytes ⇄ text for HL7 v2 by MSH-18 (HL7 table 0211). The only hl7 file that works on bytes, so the
// only one allowed Buffer/TextDecoder; it stays out of the translator sandbox.
import { Buffer } from 'node:buffer';
import { FerryError } from '../errors.ts';

type Codec =
  | { readonly kind: 'ascii' | 'latin1' | 'utf8' }
  | { readonly kind: 'table'; readonly label: string }
  | { readonly kind: 'utf16'; readonly bigEndian: boolean };

interface Charset {
  /** The name decodeHl7 reports and encodeHl7 accepts back. */
  readonly name: string;
  readonly codec: Codec;
}

const ascii: Charset = { name: 'ASCII', codec: { kind: 'ascii' } };
const utf8: Charset = { name: 'UNICODE UTF-8', codec: { kind: 'utf8' } };
const latin1: Charset = { name: '8859/1', codec: { kind: 'latin1' } };
const utf16le: Charset = { name: 'UTF-16LE', codec: { kind: 'utf16', bigEndian: false } };
const utf16be: Charset = { name: 'UTF-16BE', codec: { kind: 'utf16', bigEndian: true } };

// Senders spell MSH-18 loosely ("UTF-8", "ISO-8859-1"), so names are compared upper-cased without
// spaces, dashes, underscores and slashes: "8859/1", "ISO-8859-1" and "iso_8859_1" all match.
const compact = (name: string): string => name.trim().toUpperCase().replace(/[\s_/-]/g, '');

const charsets = new Map<string, Charset>([
  ['ASCII', ascii],
  ['USASCII', ascii],
  ['ISOIR6', ascii],
  ['UNICODEUTF8', utf8],
  ['UTF8', utf8],
  ['88591', latin1],
  ['ISO88591', latin1],
  ['LATIN1', latin1],
  // BOM-less UTF-16 is refused on input, so a name without byte order writes big-endian with a BOM.
  ['UNICODEUTF16', { name: 'UNICODE UTF-16', codec: utf16be.codec }],
  ['UNICODE', { name: 'UNICODE UTF-16', codec: utf16be.codec }],
  ['UTF16', { name: 'UNICODE UTF-16', codec: utf16be.codec }],
  ['UTF16LE', utf16le],
  ['UTF16BE', utf16be],
]);
for (const part of [2, 3, 4, 5, 6, 7, 8, 9, 15]) {
  const charset: Charset = { name: `8859/${part}`, codec: { kind: 'table', label: `iso-8859-${part}` } };
  charsets.set(`8859${part}`, charset);
  charsets.set(`ISO8859${part}`, charset);
}

const CR = 0x0d;
const LF = 0x0a;

const encodingError = (message: string, cause?: unknown): FerryError => new FerryError('HL7_ENCODING', message, { cause });

const lookup = (declared: string): Charset => {
  const charset = charsets.get(compact(declared));
  if (!charset) {
    throw new FerryError('HL7_UNKNOWN_CHARSET', `MSH-18 character set ${JSON.stringify(declared)} is not supported`, {
      details: { charset: declared },
    });
  }
  return charset;
};

const asBuffer = (bytes: Uint8Array): Buffer => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

/**
 * Decodes a received message by its MSH-18, read at byte level from the MSH header (which is
 * ASCII-compatible in every charset this supports). Empty MSH-18: UTF-8 when the bytes are valid
 * UTF-8, else 8859/1, which is what senders that leave it empty actually send. `ASCII` is decoded as
 * 8859/1 because senders often mislabel latin1 as ASCII; encodeHl7 mirrors that, so bytes round-trip.
 * A byte order mark is kept as U+FEFF (parseHl7 and readHeader skip it) so encodeHl7 restores it.
 * UTF-16 needs a byte order mark; without one the message is refused with HL7_ENCODING.
 * Bytes that are not HL7 at all decode like an empty MSH-18: readHeader then reports HL7_NOT_HL7.
 * `charset` is the name to hand encodeHl7 to write text back the same way.
 */
export const decodeHl7 = (bytes: Uint8Array): { text: string; charset: string } => {
  if (bytes[0] === 0xff && bytes[1] === 0xfe) return { text: decodeUtf16(bytes, false), charset: utf16le.name };
  if (bytes[0] === 0xfe && bytes[1] === 0xff) return { text: decodeUtf16(bytes, true), charset: utf16be.name };
  if (isBomlessUtf16(bytes)) {
    throw encodingError('the message looks like UTF-16 without a byte order mark; send UTF-16 with a BOM, or UTF-8');
  }
  const hasBom = bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf;
  const declared = readMsh18(bytes, hasBom ? 3 : 0);
  if (declared === '') {
    if (hasBom) return { text: decodeUtf8(bytes), charset: utf8.name };
    const text = tryUtf8(bytes);
    return text === undefined ? { text: asBuffer(bytes).toString('latin1'), charset: latin1.name } : { text, charset: utf8.name };
  }
  const charset = lookup(declared);
  const { codec } = charset;
  if (hasBom) {
    if (codec.kind !== 'utf8' && codec.kind !== 'ascii') {
      throw encodingError(`the message starts with a UTF-8 byte order mark but MSH-18 declares ${JSON.stringify(declared)}`);
    }
    return { text: decodeUtf8(bytes), charset: utf8.name };
  }
  switch (codec.kind) {
    case 'ascii':
    case 'latin1':
      return { text: asBuffer(bytes).toString('latin1'), charset: charset.name };
    case 'utf8':
      return { text: decodeUtf8(bytes), charset: charset.name };
    case 'table':
      return { text: decodeTable(bytes, codec.label, charset.name), charset: charset.name };
    case 'utf16':
      throw encodingError(`MSH-18 declares ${JSON.stringify(declared)} but the bytes are not UTF-16 (no byte order mark)`);
  }
};

/**
 * Encodes text for the wire in `charset` (a decodeHl7 charset or any MSH-18 name; '' means UTF-8).
 * Characters the charset cannot represent → HL7_ENCODING naming the first one.
 */
export const encodeHl7 = (text: string, charset: string): Uint8Array => {
  const { name, codec } = compact(charset) === '' ? utf8 : lookup(charset);
  switch (codec.kind) {
    case 'ascii':
    case 'latin1': {
      const bad = /[^\u0000-\u00ff]/.exec(text);
      if (bad) throw unrepresentable(text, bad.index, name);
      return Buffer.from(text, 'latin1');
    }
    case 'utf8':
      assertWellFormed(text, name);
      return Buffer.from(text, 'utf8');
    case 'table':
      return encodeTable(text, codec.label, name);
    case 'utf16': {
      assertWellFormed(text, name);
      // The receiver needs the BOM to know the byte order; text decoded from UTF-16 already starts with it.
      const bytes = Buffer.from(text.startsWith('\uFEFF') ? text : `\uFEFF${text}`, 'utf16le');
      return codec.bigEndian ? bytes.swap16() : bytes;
    }
  }
};

/** `MSH` in UTF-16 without a BOM: every other byte NUL. */
const isBomlessUtf16 = (bytes: Uint8Array): boolean => {
  const spelled = (offset: number): boolean =>
    bytes[offset] === 0x4d && bytes[offset + 2] === 0x53 && bytes[offset + 4] === 0x48 && bytes[1 - offset] === 0 && bytes[3 - offset] === 0;
  return spelled(0) || spelled(1);
};

/**
 * Decodes bytes whose charset is already known: the `charset` decodeHl7 reported for them, or any name
 * encodeHl7 accepts ('' means UTF-8). Used to show stored messages and outputs as text again.
 */
export const decodeAs = (bytes: Uint8Array, charset: string): string => {
  const { name, codec } = compact(charset) === '' ? utf8 : lookup(charset);
  switch (codec.kind) {
    case 'ascii':
    case 'latin1':
      return asBuffer(bytes).toString('latin1');
    case 'utf8':
      return decodeUtf8(bytes);
    case 'table':
      return decodeTable(bytes, codec.label, name);
    case 'utf16': {
      // A BOM, when present, outranks the name's default byte order.
      const bigEndian = bytes[0] === 0xfe && bytes[1] === 0xff ? true : bytes[0] === 0xff && bytes[1] === 0xfe ? false : codec.bigEndian;
      return decodeUtf16(bytes, bigEndian);
    }
  }
};

/** MSH-18 (first repetition) read from raw bytes; '' when absent or when the bytes do not start with MSH. */
const readMsh18 = (bytes: Uint8Array, start: number): string => {
  if (bytes[start] !== 0x4d || bytes[start + 1] !== 0x53 || bytes[start + 2] !== 0x48) return '';
  const separator = bytes[start + 3];
  const repetition = bytes[start + 5];
  if (separator === undefined || separator === CR || separator === LF) return '';
  // Field numbering as in the standard: the separator itself is MSH-1, so the text after it is MSH-2.
  let field = 2;
  let from = -1;
  let i = start + 4;
  for (; i < bytes.length; i++) {
    const byte = bytes[i];
    if (byte === CR || byte === LF) break;
    if (field === 18 && byte === repetition) break;
    if (byte !== separator) continue;
    if (field === 18) break;
    field++;
    if (field === 18) from = i + 1;
  }
  return from === -1 ? '' : asBuffer(bytes.subarray(from, i)).toString('latin1').trim();
};

const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

const tryUtf8 = (bytes: Uint8Array): string | undefined => {
  try {
    return utf8Decoder.decode(bytes);
  } catch {
    return undefined;
  }
};

const decodeUtf8 = (bytes: Uint8Array): string => {
  try {
    return utf8Decoder.decode(bytes);
  } catch (cause) {
    throw encodingError('the message is not valid UTF-8', cause);
  }
};

const decodeUtf16 = (bytes: Uint8Array, bigEndian: boolean): string => {
  try {
    return new TextDecoder(bigEndian ? 'utf-16be' : 'utf-16le', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch (cause) {
    throw encodingError(`the message is not valid UTF-16${bigEndian ? 'BE' : 'LE'}`, cause);
  }
};

interface ByteTable {
  /** Code unit for each byte; 0xFFFD where the charset leaves the byte undefined. */
  readonly decode: Uint16Array;
  readonly encode: Map<number, number>;
}

const tables = new Map<string, ByteTable>();

// Built once per charset from the platform's decoder. WHATWG maps some ISO-8859 labels to Windows code
// pages (8859-9 → windows-1254), which differ from ISO only at 0x80–0x9F, where ISO 8859 has the C1
// controls; those are restored so bytes map exactly as the standard says.
const tableFor = (label: string, name: string): ByteTable => {
  const known = tables.get(label);
  if (known) return known;
  let chars: string;
  try {
    chars = new TextDecoder(label).decode(Uint8Array.from({ length: 256 }, (_, i) => i));
  } catch (cause) {
    throw new FerryError('HL7_UNKNOWN_CHARSET', `character set ${name} is not available in this Node.js build`, {
      cause,
      details: { charset: name },
    });
  }
  const decode = new Uint16Array(256);
  const encode = new Map<number, number>();
  for (let byte = 0; byte < 256; byte++) {
    const unit = byte >= 0x80 && byte <= 0x9f ? byte : chars.charCodeAt(byte);
    decode[byte] = unit;
    if (unit !== 0xfffd) encode.set(unit, byte);
  }
  const table = { decode, encode };
  tables.set(label, table);
  return table;
};

const decodeTable = (bytes: Uint8Array, label: string, name: string): string => {
  const { decode } = tableFor(label, name);
  const units = new Uint16Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) {
    const unit = decode[bytes[i]!]!;
    if (unit === 0xfffd) {
      throw encodingError(`byte 0x${bytes[i]!.toString(16).toUpperCase()} at offset ${i} is not defined in ${name}`);
    }
    units[i] = unit;
  }
  let text = '';
  // Chunked: one call with a whole message's code units would overflow the argument stack.
  for (let i = 0; i < units.length; i += 8192) text += String.fromCharCode(...units.subarray(i, i + 8192));
  return text;
};

const encodeTable = (text: string, label: string, name: string): Uint8Array => {
  const { encode } = tableFor(label, name);
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const byte = encode.get(text.charCodeAt(i));
    if (byte === undefined) throw unrepresentable(text, i, name);
    bytes[i] = byte;
  }
  return bytes;
};

const unrepresentable = (text: string, index: number, name: string): FerryError => {
  const code = text.codePointAt(index)!;
  const char = String.fromCodePoint(code);
  const hex = code.toString(16).toUpperCase().padStart(4, '0');
  return encodingError(`character ${JSON.stringify(char)} (U+${hex}) at offset ${index} cannot be written in ${name}`);
};

const loneSurrogate = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

const assertWellFormed = (text: string, name: string): void => {
  const bad = loneSurrogate.exec(text);
  if (bad) throw encodingError(`unpaired surrogate U+${text.charCodeAt(bad.index).toString(16).toUpperCase()} at offset ${bad.index} cannot be written in ${name}`);
};
