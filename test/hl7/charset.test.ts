import { Buffer } from 'node:buffer';
import test from 'ava';
import { isFerryError } from '../../engine/errors.ts';
import { decodeAs, decodeHl7, encodeHl7 } from '../../engine/hl7/charset.ts';

const msh = (charset: string): string => `MSH|^~\\&|LAB|HOSP|||20240101||ADT^A08|1|P|2.5||||||${charset}`;
const message = (charset: string, name: string): string => `${msh(charset)}\rPID|1||MRN1||${name}\r`;

const codeOf = (t: import('ava').ExecutionContext, fn: () => unknown): string => {
  const error = t.throws(fn);
  if (!isFerryError(error)) {
    t.fail(`expected a FerryError, got ${String(error)}`);
    return '';
  }
  return `${error.code}: ${error.message}`;
};

// [title, bytes, expected text, expected charset]; every row must also encode back to the same bytes.
const decodes: [string, Buffer, string, string][] = [
  ['ASCII', Buffer.from(message('ASCII', 'DOE'), 'latin1'), message('ASCII', 'DOE'), 'ASCII'],
  ['ASCII mislabelled latin1 is kept', Buffer.from(message('ASCII', 'ZOË'), 'latin1'), message('ASCII', 'ZOË'), 'ASCII'],
  ['UNICODE UTF-8 é and 漢', Buffer.from(message('UNICODE UTF-8', 'RENÉ^漢'), 'utf8'), message('UNICODE UTF-8', 'RENÉ^漢'), 'UNICODE UTF-8'],
  ['UTF-8 alias', Buffer.from(message('utf-8', 'RENÉ'), 'utf8'), message('utf-8', 'RENÉ'), 'UNICODE UTF-8'],
  ['8859/1 é as 0xE9', Buffer.from(message('8859/1', 'RENÉ^é'), 'latin1'), message('8859/1', 'RENÉ^é'), '8859/1'],
  ['ISO-8859-1 alias', Buffer.from(message('ISO-8859-1', 'é'), 'latin1'), message('ISO-8859-1', 'é'), '8859/1'],
  ['8859/1 keeps C1 bytes (not windows-1252)', Buffer.from(message('8859/1', '\u0080'), 'latin1'), message('8859/1', '\u0080'), '8859/1'],
  ['empty MSH-18, valid UTF-8', Buffer.from(message('', 'RENÉ'), 'utf8'), message('', 'RENÉ'), 'UNICODE UTF-8'],
  ['empty MSH-18, latin1 bytes', Buffer.from(message('', 'RENÉ'), 'latin1'), message('', 'RENÉ'), '8859/1'],
  ['MSH-18 first repetition', Buffer.from(message('8859/1~UNICODE UTF-8', 'é'), 'latin1'), message('8859/1~UNICODE UTF-8', 'é'), '8859/1'],
  ['UTF-8 BOM kept as U+FEFF', Buffer.from(`\uFEFF${message('UNICODE UTF-8', 'é')}`, 'utf8'), `\uFEFF${message('UNICODE UTF-8', 'é')}`, 'UNICODE UTF-8'],
  ['UTF-8 BOM with empty MSH-18', Buffer.from(`\uFEFF${message('', 'é')}`, 'utf8'), `\uFEFF${message('', 'é')}`, 'UNICODE UTF-8'],
  ['not HL7 decodes as the default', Buffer.from('hello é', 'utf8'), 'hello é', 'UNICODE UTF-8'],
  [
    '8859/2 Ł as 0xA3',
    Buffer.concat([Buffer.from(`${msh('8859/2')}\rPID|1||X||`, 'latin1'), Buffer.from([0xa3, 0xf3, 0x64, 0xbc]), Buffer.from('\r')]),
    `${msh('8859/2')}\rPID|1||X||Łódź\r`,
    '8859/2',
  ],
  [
    '8859/15 € as 0xA4',
    Buffer.concat([Buffer.from(`${msh('8859/15')}\rNTE|1||`, 'latin1'), Buffer.from([0xa4]), Buffer.from('5\r')]),
    `${msh('8859/15')}\rNTE|1||€5\r`,
    '8859/15',
  ],
  [
    '8859/9 Ş as 0xDE, C1 bytes kept',
    Buffer.concat([Buffer.from(`${msh('8859/9')}\rPID|1||X||`, 'latin1'), Buffer.from([0xde, 0x80]), Buffer.from('\r')]),
    `${msh('8859/9')}\rPID|1||X||Ş\u0080\r`,
    '8859/9',
  ],
  [
    'UTF-16LE with BOM',
    Buffer.from(`\uFEFF${message('UNICODE UTF-16', '漢')}`, 'utf16le'),
    `\uFEFF${message('UNICODE UTF-16', '漢')}`,
    'UTF-16LE',
  ],
  [
    'UTF-16BE with BOM',
    Buffer.from(`\uFEFF${message('', 'é')}`, 'utf16le').swap16(),
    `\uFEFF${message('', 'é')}`,
    'UTF-16BE',
  ],
];

for (const [title, bytes, text, charset] of decodes) {
  test(`decode/encode round trip: ${title}`, (t) => {
    const decoded = decodeHl7(bytes);
    t.is(decoded.text, text);
    t.is(decoded.charset, charset);
    t.deepEqual(Buffer.from(encodeHl7(decoded.text, decoded.charset)), bytes);
    t.is(decodeAs(bytes, decoded.charset), text);
  });
}

test('an unknown MSH-18 → HL7_UNKNOWN_CHARSET naming it', (t) => {
  t.regex(codeOf(t, () => decodeHl7(Buffer.from(message('KLINGON-1', 'x')))), /^HL7_UNKNOWN_CHARSET: .*"KLINGON-1"/);
  t.regex(codeOf(t, () => decodeHl7(Buffer.from(message('GB 18030-2000', 'x')))), /^HL7_UNKNOWN_CHARSET: .*"GB 18030-2000"/);
  t.regex(codeOf(t, () => encodeHl7('x', 'EBCDIC')), /^HL7_UNKNOWN_CHARSET: .*"EBCDIC"/);
});

test('bytes invalid in the declared charset → HL7_ENCODING', (t) => {
  const cases: [string, Uint8Array, RegExp][] = [
    ['latin1 bytes declared UTF-8', Buffer.from(message('UNICODE UTF-8', 'é'), 'latin1'), /not valid UTF-8/],
    ['undefined 8859/3 byte', Buffer.concat([Buffer.from(`${msh('8859/3')}\rNTE|1||`), Buffer.from([0xa5])]), /byte 0xA5 at offset \d+ is not defined in 8859\/3/],
    ['UTF-16LE without BOM', Buffer.from(message('UNICODE UTF-16', 'x'), 'utf16le'), /UTF-16 without a byte order mark/],
    ['UTF-16BE without BOM', Buffer.from(message('', 'x'), 'utf16le').swap16(), /UTF-16 without a byte order mark/],
    ['declared UTF-16 but 8-bit bytes', Buffer.from(message('UNICODE UTF-16', 'x')), /declares "UNICODE UTF-16" but the bytes are not UTF-16/],
    ['UTF-8 BOM contradicting MSH-18', Buffer.from(`\uFEFF${message('8859/1', 'x')}`), /byte order mark but MSH-18 declares "8859\/1"/],
    ['broken UTF-16LE', Buffer.concat([Buffer.from(`\uFEFF${msh('')}`, 'utf16le'), Buffer.from([0x00, 0xd8, 0x41, 0x00])]), /not valid UTF-16LE/],
  ];
  for (const [title, bytes, pattern] of cases) {
    const shown = codeOf(t, () => decodeHl7(bytes));
    t.true(shown.startsWith('HL7_ENCODING: '), `${title}: ${shown}`);
    t.regex(shown, pattern, title);
  }
});

test('encodeHl7: text in the charset, unrepresentable characters → HL7_ENCODING', (t) => {
  t.deepEqual([...encodeHl7('é', '8859/1')], [0xe9]);
  t.deepEqual([...encodeHl7('é', '')], [0xc3, 0xa9]);
  t.deepEqual([...encodeHl7('é', 'UNICODE UTF-8')], [0xc3, 0xa9]);
  t.deepEqual([...encodeHl7('Łó', '8859/2')], [0xa3, 0xf3]);
  t.deepEqual([...encodeHl7('€', '8859/15')], [0xa4]);
  t.deepEqual([...encodeHl7('A', 'UNICODE UTF-16')], [0xfe, 0xff, 0x00, 0x41], 'BOM added, big-endian by default');
  t.deepEqual([...encodeHl7('A', 'UTF-16LE')], [0xff, 0xfe, 0x41, 0x00]);
  const cases: [string, string, RegExp][] = [
    ['漢', '8859/1', /"漢" \(U\+6F22\) at offset 0 cannot be written in 8859\/1/],
    ['ab漢', 'ASCII', /offset 2 cannot be written in ASCII/],
    ['€', '8859/1', /U\+20AC/],
    ['ä€', '8859/2', /"€" \(U\+20AC\) at offset 1 cannot be written in 8859\/2/],
    ['🙂', '8859/15', /"🙂" \(U\+1F642\)/],
    ['a\uD800b', 'UNICODE UTF-8', /unpaired surrogate U\+D800 at offset 1/],
    ['\uDC00', 'UTF-16LE', /unpaired surrogate U\+DC00/],
  ];
  for (const [text, charset, pattern] of cases) {
    const shown = codeOf(t, () => encodeHl7(text, charset));
    t.true(shown.startsWith('HL7_ENCODING: '), shown);
    t.regex(shown, pattern);
  }
});

test('decodeAs: the charset names decodeHl7 reports and MSH-18 spellings', (t) => {
  t.is(decodeAs(Buffer.from([0x63, 0xe9]), 'ISO-8859-1'), 'cé');
  t.is(decodeAs(Buffer.from([0x63, 0xe9]), 'ASCII'), 'cé');
  t.is(decodeAs(Buffer.from('cé'), ''), 'cé');
  t.is(decodeAs(Buffer.from('\uFEFFcé', 'utf16le'), 'UNICODE UTF-16'), '\uFEFFcé', 'BOM outranks the default byte order');
  t.regex(codeOf(t, () => decodeAs(Buffer.from([0xe9]), 'UNICODE UTF-8')), /^HL7_ENCODING/);
});

test('a 1 MB 8859/1 message decodes and encodes back', (t) => {
  const text = message('8859/1', 'é'.repeat(1_000_000));
  const bytes = Buffer.from(text, 'latin1');
  const decoded = decodeHl7(bytes);
  // Plain comparisons: a failing t.is on megabytes would spend minutes rendering the diff.
  t.is(decoded.charset, '8859/1');
  t.true(decoded.text === text);
  t.true(Buffer.from(encodeHl7(decoded.text, decoded.charset)).equals(bytes));
  const euros = message('8859/15', '€'.repeat(1_000_000));
  const table = Buffer.from(encodeHl7(euros, '8859/15'));
  t.is(table.length, euros.length);
  t.true(decodeHl7(table).text === euros);
});
