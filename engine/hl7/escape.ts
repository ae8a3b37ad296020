// HL7 v2 escape sequences (ch.2.7): delimiters inside data travel as \F\ \S\ \T\ \R\ \E\ (and \P\ for the
// v2.7 truncation character), arbitrary bytes as \Xhh..\. Pure and without TextDecoder: this file is
// bundled into the translator sandbox, which is bare V8.
import type { Delimiters } from './delimiters.ts';

/**
 * Makes `value` safe to place in one leaf of a message: every delimiter becomes its escape sequence, and
 * CR/LF become \X0D\ / \X0A\ because a raw segment terminator inside a field would end the segment.
 */
export const escapeHl7 = (value: string, d: Delimiters): string => {
  let out = '';
  let from = 0;
  for (let i = 0; i < value.length; i++) {
    const sequence = escapeFor(value.charAt(i), d);
    if (sequence === undefined) continue;
    out += value.slice(from, i) + d.escape + sequence + d.escape;
    from = i + 1;
  }
  return from === 0 ? value : out + value.slice(from);
};

const escapeFor = (char: string, d: Delimiters): string | undefined => {
  switch (char) {
    case d.field:
      return 'F';
    case d.component:
      return 'S';
    case d.subcomponent:
      return 'T';
    case d.repetition:
      return 'R';
    case d.escape:
      return 'E';
    case '\r':
      return 'X0D';
    case '\n':
      return 'X0A';
    default:
      // `truncation` is '' before v2.7 and a one-character string never equals ''.
      return char === d.truncation ? 'P' : undefined;
  }
};

/**
 * Turns escaped wire text back into data. Sequences this codec does not interpret (highlighting \H\ \N\,
 * formatting \.br\, character-set switches \C..\ \M..\, locally defined \Z..\) and an unterminated escape
 * character are kept exactly as written, so nothing is lost.
 */
export const unescapeHl7 = (text: string, d: Delimiters): string => {
  const esc = d.escape;
  let next = text.indexOf(esc);
  if (next === -1) return text;
  let out = '';
  let from = 0;
  while (next !== -1) {
    const close = text.indexOf(esc, next + 1);
    if (close === -1) break;
    const name = text.slice(next + 1, close);
    if (name.charAt(0) === 'X' && isHex(name)) {
      // Adjacent \Xhh\ sequences are one byte run, so a UTF-8 character split across two still decodes.
      const bytes: number[] = [];
      let end = close;
      let run = name;
      for (;;) {
        for (let i = 1; i < run.length; i += 2) bytes.push(parseInt(run.slice(i, i + 2), 16));
        if (text.charAt(end + 1) !== esc || text.charAt(end + 2) !== 'X') break;
        const nextClose = text.indexOf(esc, end + 2);
        if (nextClose === -1) break;
        const nextRun = text.slice(end + 2, nextClose);
        if (!isHex(nextRun)) break;
        run = nextRun;
        end = nextClose;
      }
      out += text.slice(from, next) + decodeBytes(bytes);
      from = end + 1;
      next = text.indexOf(esc, from);
      continue;
    }
    const char = unescapeFor(name, d);
    if (char === undefined) {
      // Not ours: keep the sequence, resume after it (its closing character is not a new opening one).
      next = text.indexOf(esc, close + 1);
      continue;
    }
    out += text.slice(from, next) + char;
    from = close + 1;
    next = text.indexOf(esc, from);
  }
  return out + text.slice(from);
};

const unescapeFor = (name: string, d: Delimiters): string | undefined => {
  switch (name) {
    case 'F':
      return d.field;
    case 'S':
      return d.component;
    case 'T':
      return d.subcomponent;
    case 'R':
      return d.repetition;
    case 'E':
      return d.escape;
    case 'P':
      return d.truncation === '' ? undefined : d.truncation;
    default:
      return undefined;
  }
};

/** `Xhh..` with an even, non-zero number of hex digits. */
const isHex = (name: string): boolean => name.length >= 3 && name.length % 2 === 1 && /^X[0-9A-Fa-f]+$/.test(name);

// Senders use \Xhh\ for both UTF-8 and single-byte text; valid UTF-8 is almost never accidental
// latin1, so prefer it and fall back to latin1, which maps every byte.
const decodeBytes = (bytes: number[]): string => decodeUtf8(bytes) ?? decodeLatin1(bytes);

const decodeLatin1 = (bytes: number[]): string => {
  let out = '';
  // Chunked: spreading a long run into one call would overflow the argument stack.
  for (let i = 0; i < bytes.length; i += 8192) out += String.fromCharCode(...bytes.slice(i, i + 8192));
  return out;
};

/** Strict UTF-8 (no overlongs, surrogates or code points past U+10FFFF); undefined when invalid. */
const decodeUtf8 = (bytes: number[]): string | undefined => {
  let out = '';
  for (let i = 0; i < bytes.length; ) {
    const lead = bytes[i]!;
    if (lead < 0x80) {
      out += String.fromCharCode(lead);
      i++;
      continue;
    }
    const length = lead >= 0xc2 && lead <= 0xdf ? 2 : lead >= 0xe0 && lead <= 0xef ? 3 : lead >= 0xf0 && lead <= 0xf4 ? 4 : 0;
    if (length === 0 || i + length > bytes.length) return undefined;
    let code = lead & (0xff >> (length + 1));
    for (let k = 1; k < length; k++) {
      const byte = bytes[i + k]!;
      if ((byte & 0xc0) !== 0x80) return undefined;
      code = (code << 6) | (byte & 0x3f);
    }
    const min = length === 2 ? 0x80 : length === 3 ? 0x800 : 0x10000;
    if (code < min || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) return undefined;
    out += String.fromCodePoint(code);
    i += length;
  }
  return out;
};
