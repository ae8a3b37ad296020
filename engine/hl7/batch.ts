// Splits a file's bytes into HL7 messages: several messages one after another, or an HL7 batch
// (FHS/BHS … MSH … BTS/FTS). Envelope segments are dropped; segment terminators CRLF and LF —
// common in files edited by hand — become CR, the HL7 terminator. Works on bytes (latin1 is a
// lossless byte↔char mapping), so any character set passes through untouched.

const ENVELOPE = /^(FHS|BHS|BTS|FTS)/;

export const splitMessages = (bytes: Uint8Array): Buffer[] => {
  const text = Buffer.from(bytes).toString('latin1');
  const messages: string[][] = [];
  for (const segment of text.split(/\r\n|\r|\n/)) {
    if (segment.trim() === '' || ENVELOPE.test(segment)) continue;
    if (segment.startsWith('MSH') || messages.length === 0) messages.push([]);
    messages[messages.length - 1].push(segment);
  }
  return messages.map((segments) => Buffer.from(segments.map((s) => `${s}\r`).join(''), 'latin1'));
};
