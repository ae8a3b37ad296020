import fs from 'node:fs';
import test from 'ava';
import { isFerryError } from '../../engine/errors.ts';
import { type AckOptions, buildAck, buildRejectForNonHl7, isAck, readAck } from '../../engine/hl7/ack.ts';
import { readHeader } from '../../engine/hl7/header.ts';
import { parseHl7 } from '../../engine/hl7/message.ts';

const adt = fs.readFileSync(new URL('../../scripts/samples/adt-a01.hl7', import.meta.url), 'latin1');
const now = new Date(Date.UTC(2024, 0, 15, 8, 30, 5));
const fixed = { now, controlId: 'ACK00001' };

const cases: [string, string, 'AA' | 'AE' | 'AR', AckOptions, string[]][] = [
  [
    'AA for the ADT sample: swapped apps, inbound version, processing id and charset',
    adt,
    'AA',
    fixed,
    [
      'MSH|^~\\&|FERRY|GOODHEALTH|REGADT|GOODHEALTH|20240115083005+0000||ACK^A01^ACK|ACK00001|P|2.5||||||UNICODE UTF-8',
      'MSA|AA|MSG00001',
    ],
  ],
  [
    'AE with text: MSA-3 and ERR-3/4/8 (v2.5)',
    adt,
    'AE',
    { ...fixed, text: 'message not stored, please resend' },
    [
      'MSH|^~\\&|FERRY|GOODHEALTH|REGADT|GOODHEALTH|20240115083005+0000||ACK^A01^ACK|ACK00001|P|2.5||||||UNICODE UTF-8',
      'MSA|AE|MSG00001|message not stored, please resend',
      'ERR|||207^Application internal error^HL70357|E||||message not stored, please resend',
    ],
  ],
  [
    'AR with an error code and no text',
    'MSH|^~\\&|LAB|HOSP|ENGINE|HOSP|20240101||ORU^R01^ORU_R01|C42|T|2.6\rPID|1\r',
    'AR',
    { ...fixed, errorCode: '200' },
    [
      'MSH|^~\\&|ENGINE|HOSP|LAB|HOSP|20240115083005+0000||ACK^R01^ACK|ACK00001|T|2.6',
      'MSA|AR|C42',
      'ERR|||200^Unsupported message type^HL70357|E',
    ],
  ],
  [
    'v2.7 with truncation character: no MSA-3, text escaped, ids copied raw',
    'MSH|^~\\&#|A|B|C|D|20240101||ADT^A01^ADT_A01|X\\P\\1|P|2.7\r',
    'AR',
    { ...fixed, text: 'bad #3', errorCode: '102' },
    [
      'MSH|^~\\&#|C|D|A|B|20240115083005+0000||ACK^A01^ACK|ACK00001|P|2.7',
      'MSA|AR|X\\P\\1',
      'ERR|||102^Data type error^HL70357|E||||bad \\P\\3',
    ],
  ],
  [
    'v2.3: ERR-1 instead of ERR-3, text in MSA-3 escaped',
    'MSH|^~\\&|A|B|C|D|20240101||ADT^A04|C1|P|2.3\r',
    'AE',
    { ...fixed, text: 'x|y' },
    [
      'MSH|^~\\&|C|D|A|B|20240115083005+0000||ACK^A04^ACK|ACK00001|P|2.3',
      'MSA|AE|C1|x\\F\\y',
      'ERR|^^^207&Application internal error&HL70357',
    ],
  ],
  [
    'custom delimiters; composite and escaped values copied verbatim',
    'MSH#$*@%#APP$1.2$ISO#F@S@1#RCV#RF#20240101##ORU$R01#C@F@7#T$A#2.5.1$USA\r',
    'AA',
    fixed,
    ['MSH#$*@%#RCV#RF#APP$1.2$ISO#F@S@1#20240115083005+0000##ACK$R01$ACK#ACK00001#T$A#2.5.1$USA', 'MSA#AA#C@F@7'],
  ],
  [
    'no trigger event, no processing id, no version',
    'MSH|^~\\&|A|B|C|D|20240101||QRY|Q1\r',
    'AA',
    fixed,
    ['MSH|^~\\&|C|D|A|B|20240115083005+0000||ACK|ACK00001|P|2.5', 'MSA|AA|Q1'],
  ],
];

for (const [title, inbound, code, options, segments] of cases) {
  test(`buildAck: ${title}`, (t) => {
    const ack = buildAck(readHeader(inbound), code, options);
    t.is(ack, segments.map((s) => `${s}\r`).join(''));
    t.true(isAck(readHeader(ack)));
  });
}

test('buildAck generates a control id and timestamps now', (t) => {
  const header = readHeader(adt);
  const first = parseHl7(buildAck(header, 'AA'));
  const second = parseHl7(buildAck(header, 'AA'));
  const id = first.get('MSH-10');
  t.regex(id, /^[0-9A-Z]{1,20}$/);
  t.not(id, second.get('MSH-10'));
  t.regex(first.get('MSH-7'), /^\d{14}\+0000$/);
  t.true(Math.abs(Date.parse(first.get('MSH-7').replace(/^(\d{4})(\d\d)(\d\d)(\d\d)(\d\d)(\d\d).*/, '$1-$2-$3T$4:$5:$6Z')) - Date.now()) < 5000);
});

test('buildRejectForNonHl7: AR with default delimiters, v2.5, empty MSA-2', (t) => {
  t.is(
    buildRejectForNonHl7(undefined, fixed),
    'MSH|^~\\&|||||20240115083005+0000||ACK|ACK00001|P|2.5\r' +
      'MSA|AR||not an HL7 message\r' +
      'ERR|||100^Segment sequence error^HL70357|E||||not an HL7 message\r',
  );
  const ack = readAck(buildRejectForNonHl7('HL7_NOT_HL7: starts with "GET / HTTP"'));
  t.deepEqual(ack, {
    code: 'AR',
    controlId: '',
    text: 'HL7_NOT_HL7: starts with "GET / HTTP"',
    errorText: 'HL7_NOT_HL7: starts with "GET / HTTP"',
  });
});

const reads: [string, string, ReturnType<typeof readAck>][] = [
  [
    'our own AE',
    buildAck(readHeader(adt), 'AE', { text: 'db ^ down' }),
    { code: 'AE', controlId: 'MSG00001', text: 'db ^ down', errorText: 'db ^ down' },
  ],
  ['a bare AA', 'MSH|^~\\&|B|B|A|A|20240101||ACK^A01|9|P|2.5\rMSA|AA|MSG7\r', { code: 'AA', controlId: 'MSG7', text: '', errorText: '' }],
  [
    'v2.4 ERR-1 with LF terminators',
    'MSH|^~\\&|B|B|A|A|20240101||ACK|9|P|2.4\nMSA|AE|MSG7|Invalid\nERR|PID^3^1^101&Required field missing&HL70357\n',
    { code: 'AE', controlId: 'MSG7', text: 'Invalid', errorText: 'Required field missing' },
  ],
  [
    'several ERR, ERR-3 code only',
    'MSH|^~\\&|B|B|A|A|20240101||ACK|9|P|2.5\rMSA|AR|M1\rERR|||203\rERR|||101^Required field missing^HL70357|E||||PID-3 empty\r',
    { code: 'AR', controlId: 'M1', text: '', errorText: '203; PID-3 empty' },
  ],
];

for (const [title, text, expected] of reads) {
  test(`readAck: ${title}`, (t) => {
    t.deepEqual(readAck(text), expected);
  });
}

test('readAck: not HL7 → HL7_NOT_HL7; no MSA → HL7_NOT_ACK', (t) => {
  const notHl7 = t.throws(() => readAck('garbage'));
  t.true(isFerryError(notHl7) && notHl7.code === 'HL7_NOT_HL7');
  const noMsa = t.throws(() => readAck(adt));
  t.true(isFerryError(noMsa) && noMsa.code === 'HL7_NOT_ACK');
  t.true(noMsa!.message.includes('ADT^A01^ADT_A01'));
});
