// HL7 v2 delimiters as declared by a message's own MSH segment (ch.2: MSH-1 is the field separator,
// MSH-2 the encoding characters). Pure: also bundled into the translator sandbox.
import { FerryError } from '../errors.ts';

export interface Delimiters {
  readonly field: string;
  readonly component: string;
  readonly repetition: string;
  readonly escape: string;
  readonly subcomponent: string;
  /** The v2.7 truncation character (5th character of MSH-2); '' when the message declares none. */
  readonly truncation: string;
}

export const defaultDelimiters: Delimiters = {
  field: '|',
  component: '^',
  repetition: '~',
  escape: '\\',
  subcomponent: '&',
  truncation: '',
};

/** MSH-2 as it is written on the wire. */
export const encodingCharacters = (d: Delimiters): string =>
  d.component + d.repetition + d.escape + d.subcomponent + d.truncation;

const BOM = '\uFEFF';

// Letters and digits would make "MSH" itself and segment names ambiguous; CR/LF end segments.
const unusable = /[A-Za-z0-9\r\n]/;

const notHl7 = (reason: string): FerryError => new FerryError('HL7_NOT_HL7', `not an HL7 v2 message: ${reason}`);

/**
 * Finds the MSH segment at the start of `text` (after an optional byte order mark, the only prefix
 * senders get away with) and reads its delimiters. Throws HL7_NOT_HL7 saying what is wrong.
 */
export const locateMsh = (text: string): { start: number; delimiters: Delimiters } => {
  const start = text.startsWith(BOM) ? BOM.length : 0;
  if (text.slice(start, start + 3) !== 'MSH') {
    const head = JSON.stringify(text.slice(start, start + 20));
    throw notHl7(`it must start with an MSH segment, but starts with ${head}`);
  }
  const field = text.charAt(start + 3);
  if (field === '' || unusable.test(field)) {
    throw notHl7(`MSH-1 (the field separator) ${field === '' ? 'is missing' : `cannot be ${JSON.stringify(field)}`}`);
  }
  let end = start + 4;
  while (end < text.length && end < start + 10) {
    const char = text.charAt(end);
    if (char === field || char === '\r' || char === '\n') break;
    end++;
  }
  const chars = text.slice(start + 4, end);
  if (chars.length < 4 || chars.length > 5) {
    throw notHl7(`MSH-2 must hold 4 encoding characters (5 from v2.7), found ${JSON.stringify(chars)}`);
  }
  const all = field + chars;
  for (let i = 0; i < all.length; i++) {
    const char = all.charAt(i);
    if (unusable.test(char) || all.indexOf(char) !== i) {
      throw notHl7(`MSH-1/MSH-2 delimiters ${JSON.stringify(all)} must be distinct and not letters, digits, CR or LF`);
    }
  }
  return {
    start,
    delimiters: {
      field,
      component: chars.charAt(0),
      repetition: chars.charAt(1),
      escape: chars.charAt(2),
      subcomponent: chars.charAt(3),
      truncation: chars.charAt(4),
    },
  };
};
