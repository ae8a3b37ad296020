// application/x-www-form-urlencoded, decoded to bytes: an HL7 message posted in a form field keeps
// its exact bytes whatever its character set (URLSearchParams would force UTF-8 and replace what
// is not). Returns undefined for a malformed body (a % not followed by two hex digits).

const PLUS = 0x2b;
const PERCENT = 0x25;
const AMPERSAND = 0x26;
const EQUALS = 0x3d;

const hexValue = (byte: number | undefined): number => {
  if (byte === undefined) return -1;
  if (byte >= 0x30 && byte <= 0x39) return byte - 0x30;
  const lower = byte | 0x20;
  return lower >= 0x61 && lower <= 0x66 ? lower - 0x61 + 10 : -1;
};

const decode = (bytes: Buffer): Buffer | undefined => {
  const out = Buffer.alloc(bytes.length);
  let length = 0;
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i]!;
    if (byte === PLUS) out[length++] = 0x20;
    else if (byte === PERCENT) {
      const high = hexValue(bytes[i + 1]);
      const low = hexValue(bytes[i + 2]);
      if (high < 0 || low < 0) return undefined;
      out[length++] = high * 16 + low;
      i += 2;
    } else out[length++] = byte;
  }
  return out.subarray(0, length);
};

/**
 * Whether `body` can be a urlencoded form at all: encoders leave only these characters bare. An HL7
 * message (`|`, `^`, CR) or a JSON document posted with curl's default form content type is not one.
 */
export const looksUrlEncoded = (body: Buffer): boolean => /^[A-Za-z0-9*\-._~%+=&!'()]*$/.test(body.toString('latin1'));

/** Field name (UTF-8) → value bytes; the first of repeated fields wins. */
export const parseForm = (body: Buffer): Map<string, Buffer> | undefined => {
  const fields = new Map<string, Buffer>();
  let start = 0;
  while (start <= body.length) {
    let end = body.indexOf(AMPERSAND, start);
    if (end < 0) end = body.length;
    const pair = body.subarray(start, end);
    start = end + 1;
    if (pair.length === 0) continue;
    const eq = pair.indexOf(EQUALS);
    const name = decode(eq < 0 ? pair : pair.subarray(0, eq));
    const value = decode(eq < 0 ? Buffer.alloc(0) : pair.subarray(eq + 1));
    if (!name || !value) return undefined;
    const key = name.toString('utf8');
    if (!fields.has(key)) fields.set(key, value);
  }
  return fields;
};
