import fs from 'node:fs';
import test from 'ava';
import { type ErrorCode, isFerryError } from '../../engine/errors.ts';
import { parseHl7 } from '../../engine/hl7/message.ts';

const samples = new URL('../../scripts/samples/', import.meta.url);
const adt = fs.readFileSync(new URL('adt-a01.hl7', samples), 'latin1');
const oru = fs.readFileSync(new URL('oru-r01.hl7', samples), 'latin1');

const lines = (...segments: string[]): string => segments.join('\r');

const throwsCode = (t: import('ava').ExecutionContext, fn: () => unknown, code: ErrorCode, mentions?: string): void => {
  const error = t.throws(fn);
  if (!isFerryError(error)) {
    t.fail(`expected a FerryError, got ${String(error)}`);
    return;
  }
  t.is(error.code, code);
  if (mentions !== undefined) t.true(error.message.includes(mentions), error.message);
};

test('sample files are CR-separated ADT^A01 and ORU^R01 with the agreed ids', (t) => {
  t.false(adt.includes('\n'));
  t.true(adt.endsWith('\r'));
  const a = parseHl7(adt);
  t.is(a.get('MSH-9'), 'ADT^A01^ADT_A01');
  t.is(a.get('MSH-10'), 'MSG00001');
  t.is(a.get('MSH-12'), '2.5');
  t.is(a.get('PID-3.1'), 'MRN12345');
  t.is(a.get('PID-5'), 'DOE^JOHN^A');
  const o = parseHl7(oru);
  t.is(o.get('MSH-9.1'), 'ORU');
  t.is(o.get('MSH-10'), 'MSG00002');
  t.is(o.get('OBX[3]-3.2'), 'HDL Cholesterol');
});

const roundTrips: [string, string][] = [
  ['ADT sample (CR)', adt],
  ['ORU sample (CR)', oru],
  ['LF terminators', adt.replaceAll('\r', '\n')],
  ['CRLF terminators', adt.replaceAll('\r', '\r\n')],
  ['no final terminator', adt.slice(0, -1)],
  ['blank lines between segments', lines('MSH|^~\\&|A|B|C|D|20240101||ADT^A08|1|P|2.5', '', 'PID|1||X', '\r\n')],
  ['mixed terminators', 'MSH|^~\\&|A|B\r\nPID|1\nPV1|1\r'],
  ['trailing separators and empty fields', lines('MSH|^~\\&|||||||ADT^A01|1|P|2.5|||||', 'PID|||||^^^||~~||', 'ZZ1', 'ZZ2|')],
  ['custom delimiters', lines('MSH#$*@%#APP#FAC#####ORU$R01#7#P#2.5', 'OBX#1#TX#X$Y%Z*Q@F@#')],
  ['v2.7 truncation character', lines('MSH|^~\\&#|A|B|C|D|20240101||ADT^A01|1|P|2.7', 'PID|1||Long nam#')],
  ['leading byte order mark', `\uFEFF${adt}`],
  ['only MSH', 'MSH|^~\\&'],
];

for (const [title, text] of roundTrips) {
  test(`unchanged round trip is byte-identical: ${title}`, (t) => {
    t.is(parseHl7(text).toString(), text);
  });
}

test('segment terminator is remembered and used for new segments', (t) => {
  const cases: [string, string, string][] = [
    ['\r', 'MSH|^~\\&|A\rPID|1\r', 'MSH|^~\\&|A\rPID|1\rZPI|x\r'],
    ['\n', 'MSH|^~\\&|A\nPID|1\n', 'MSH|^~\\&|A\nPID|1\nZPI|x\n'],
    ['\r\n', 'MSH|^~\\&|A\r\nPID|1\r\n', 'MSH|^~\\&|A\r\nPID|1\r\nZPI|x\r\n'],
    ['\r\n', 'MSH|^~\\&|A\r\nPID|1', 'MSH|^~\\&|A\r\nPID|1\r\nZPI|x'],
    ['\r', 'MSH|^~\\&|A', 'MSH|^~\\&|A\rZPI|x'],
  ];
  for (const [terminator, input, expected] of cases) {
    const message = parseHl7(input);
    t.is(message.segmentTerminator, terminator);
    message.set('ZPI-1', 'x');
    t.is(message.toString(), expected);
  }
});

test('editing one field leaves every other segment byte-identical', (t) => {
  // Oddities a re-serializer would normalise: trailing separators, blank line, stray escapes.
  const input = lines('MSH|^~\\&|A|B|||||ADT^A01|1|P|2.5|||', 'EVN|A01||||', '', 'PID|1||X\\Q\\Y||DOE^JOHN^^^^|||', 'PV1|1|I|||');
  const message = parseHl7(input);
  message.set('PID-3', 'MRN9');
  t.is(message.toString(), input.replace('X\\Q\\Y', 'MRN9'));
});

test('MSH field numbering follows the standard', (t) => {
  const message = parseHl7(adt);
  t.is(message.get('MSH-1'), '|');
  t.is(message.get('MSH-2'), '^~\\&');
  t.is(message.get('MSH-2.1'), '^~\\&');
  t.is(message.get('MSH-2.2'), '');
  t.is(message.get('MSH-3'), 'REGADT');
  t.is(message.get('MSH-7'), '20240115083000');
  t.is(message.get('MSH-9.1'), 'ADT');
  t.is(message.get('MSH-9.2'), 'A01');
  t.is(message.get('MSH-9.3'), 'ADT_A01');
  t.is(message.get('MSH-18'), 'UNICODE UTF-8');
  t.deepEqual(message.delimiters, { field: '|', component: '^', repetition: '~', escape: '\\', subcomponent: '&', truncation: '' });
});

test('get: components, repetitions, subcomponents, segment repeats, missing → empty', (t) => {
  const message = parseHl7(
    lines(
      'MSH|^~\\&|LAB|HOSP|||20240101||ORU^R01|9|P|2.5',
      'PID|1||MRN1^^^HOSP&1.2.3&ISO^MR~SSN9^^^SSA^SS||DOE^JOHN^A||||||||||||||',
      'OBX|1|NM|GLU||5.4|mmol/L',
      'OBX|2|ST|NOTE||first\\T\\second',
      'OBX|3|ST|NOTE||',
    ),
  );
  const cases: [string, string][] = [
    ['PID-5', 'DOE^JOHN^A'],
    ['PID-5.1', 'DOE'],
    ['PID-5.2', 'JOHN'],
    ['PID-5.4', ''],
    ['PID-5.1.1', 'DOE'],
    ['PID-5.1.2', ''],
    ['PID-3', 'MRN1^^^HOSP&1.2.3&ISO^MR'],
    ['PID-3[1].1', 'MRN1'],
    ['PID-3[2].1', 'SSN9'],
    ['PID-3[2]', 'SSN9^^^SSA^SS'],
    ['PID-3[3]', ''],
    ['PID-3.4', 'HOSP&1.2.3&ISO'],
    ['PID-3.4.2', '1.2.3'],
    ['PID-3.4.3', 'ISO'],
    ['PID-3.4.4', ''],
    ['PID-2', ''],
    ['PID-19', ''],
    ['PID-99', ''],
    ['OBX-5', '5.4'],
    ['OBX[1]-5', '5.4'],
    ['OBX[2]-5', 'first&second'],
    ['OBX[3]-5', ''],
    ['OBX[4]-5', ''],
    ['PV1-2', ''],
    ['ZZZ-1', ''],
  ];
  for (const [path, expected] of cases) t.is(message.get(path), expected, path);
});

test('get: leaves are unescaped, nodes with structure come back raw', (t) => {
  const message = parseHl7(lines('MSH|^~\\&|A', 'NTE|1||a\\S\\b^c\\T\\d&e|x\\F\\y\\R\\z\\E\\'));
  t.is(message.get('NTE-3'), 'a\\S\\b^c\\T\\d&e', 'composite field: raw wire text');
  t.is(message.get('NTE-3.1'), 'a^b', 'leaf component: unescaped');
  t.is(message.get('NTE-3.2'), 'c\\T\\d&e', 'component with subcomponents: raw');
  t.is(message.get('NTE-3.2.1'), 'c&d');
  t.is(message.get('NTE-4'), 'x|y~z\\', 'single-leaf field: unescaped');
});

test('custom delimiters are read from MSH-1/MSH-2', (t) => {
  const message = parseHl7(lines('MSH#$*@%#APP#FAC#####ORU$R01#7#P#2.5', 'OBX#1#TX#A$B%C*R2#x@S@y@F@z|^~\\&'));
  t.is(message.get('MSH-1'), '#');
  t.is(message.get('MSH-2'), '$*@%');
  t.is(message.get('MSH-9.2'), 'R01');
  t.is(message.get('OBX-3.2'), 'B%C');
  t.is(message.get('OBX-3.2.2'), 'C');
  t.is(message.get('OBX-3[2]'), 'R2');
  t.is(message.get('OBX-4'), 'x$y#z|^~\\&', 'standard delimiters are plain data here');
  message.set('OBX-5', 'a#b$c*d@e%f');
  t.is(message.segments('OBX')[0]!.toString(), 'OBX#1#TX#A$B%C*R2#x@S@y@F@z|^~\\&#a@F@b@S@c@R@d@E@e@T@f');
});

test('v2.7 truncation character: \\P\\ both ways', (t) => {
  const message = parseHl7(lines('MSH|^~\\&#|A|B|C|D|20240101||ADT^A01|1|P|2.7', 'NTE|1||Room \\P\\5'));
  t.is(message.delimiters.truncation, '#');
  t.is(message.get('MSH-2'), '^~\\&#');
  t.is(message.get('NTE-3'), 'Room #5');
  message.set('NTE-4', 'Bed #2');
  t.is(message.segments('NTE')[0]!.toString(), 'NTE|1||Room \\P\\5|Bed \\P\\2');
});

test('set creates structure, pads, escapes and replaces', (t) => {
  const base = lines('MSH|^~\\&|A|B|||20240101||ADT^A01|1|P|2.5', 'PID|1||MRN1||DOE^JOHN');
  const cases: [string, string, string][] = [
    ['PID-5.1', 'ROE', 'PID|1||MRN1||ROE^JOHN'],
    ['PID-5', 'ROE', 'PID|1||MRN1||ROE'],
    ['PID-5.4', 'JR', 'PID|1||MRN1||DOE^JOHN^^JR'],
    ['PID-8', 'F', 'PID|1||MRN1||DOE^JOHN|||F'],
    ['PID-3[3].1', 'X', 'PID|1||MRN1~~X||DOE^JOHN'],
    ['PID-3.4.2', '1.2.3', 'PID|1||MRN1^^^&1.2.3||DOE^JOHN'],
    ['PID-3', 'A|B^C~D&E\\F', 'PID|1||A\\F\\B\\S\\C\\R\\D\\T\\E\\E\\F||DOE^JOHN'],
    ['PID-5.2', 'line1\r\nline2', 'PID|1||MRN1||DOE^line1\\X0D\\\\X0A\\line2'],
    ['PID-5.2', '', 'PID|1||MRN1||DOE^'],
  ];
  for (const [path, value, pid] of cases) {
    const message = parseHl7(base);
    message.set(path, value);
    t.is(message.toString(), lines('MSH|^~\\&|A|B|||20240101||ADT^A01|1|P|2.5', pid), path);
    t.is(message.get(path), value, `${path} reads back`);
  }
});

test('set appends missing segments, padding segment repeats', (t) => {
  const message = parseHl7('MSH|^~\\&|A\rOBX|1|ST|X||one\r');
  message.set('OBX[3]-5', 'three');
  message.set('ZPI-2.1', 'z');
  message.set('MSH-10', 'CTRL1');
  t.is(message.toString(), 'MSH|^~\\&|A|||||||CTRL1\rOBX|1|ST|X||one\rOBX\rOBX|||||three\rZPI||z\r');
  t.is(message.get('OBX[3]-5'), 'three');
  t.deepEqual(
    message.segments().map((s) => s.name),
    ['MSH', 'OBX', 'OBX', 'OBX', 'ZPI'],
  );
});

test('set refuses MSH-1 and MSH-2', (t) => {
  const message = parseHl7(adt);
  for (const path of ['MSH-1', 'MSH-2', 'MSH-2.1']) throwsCode(t, () => message.set(path, '#'), 'HL7_BAD_PATH', path);
  throwsCode(t, () => message.segments('MSH')[0]!.set('2', '#'), 'HL7_BAD_PATH', '2');
  t.is(message.toString(), adt);
});

test('malformed paths throw HL7_BAD_PATH naming the path', (t) => {
  const message = parseHl7(adt);
  for (const path of ['PID', 'PID-', 'PID-0', 'pid-5', 'PI-5', 'PID-5.', 'PID-5..1', 'PID-5.1.2.3', 'PID[0]-5', 'PID-3[x]', 'PID-5.0', 'PID 5', '', 'PID-123456']) {
    throwsCode(t, () => message.get(path), 'HL7_BAD_PATH', JSON.stringify(path));
    throwsCode(t, () => message.set(path, 'x'), 'HL7_BAD_PATH');
  }
  const pid = message.segments('PID')[0]!;
  for (const path of ['PID-5', '0', '5.', 'x', '3[0]']) throwsCode(t, () => pid.get(path), 'HL7_BAD_PATH', JSON.stringify(path));
});

test('segments(): order, filter, relative paths, edits reflected in the message', (t) => {
  const message = parseHl7(oru);
  t.deepEqual(
    message.segments().map((s) => s.name),
    ['MSH', 'PID', 'PV1', 'ORC', 'OBR', 'OBX', 'OBX', 'OBX', 'NTE'],
  );
  const obx = message.segments('OBX');
  t.deepEqual(
    obx.map((s) => s.get('3.2')),
    ['Cholesterol', 'Triglyceride', 'HDL Cholesterol'],
  );
  t.deepEqual(message.segments('ZZZ'), []);
  t.is(message.segments('MSH')[0]!.get('9.1'), 'ORU');
  t.is(message.segments('PID')[0]!.get('3[1].4'), 'GOODHEALTH');
  obx[1]!.set('5', '150');
  obx[1]!.set('8', 'H');
  t.is(obx[1]!.toString(), 'OBX|2|NM|2571-8^Triglyceride^LN||150|mg/dL|<150|H|||F|||20240115100500');
  t.is(message.get('OBX[2]-5'), '150');
  t.is(message.toString(), oru.replace('||142|mg/dL|<150|N|', '||150|mg/dL|<150|H|'));
  t.is(message.get('NTE-3'), 'HDL below reference range\\.br\\Repeat fasting sample advised', 'formatting escape kept');
});

test('a 300 KB field parses, edits and serializes in linear time', (t) => {
  const payload = 'A'.repeat(100_000) + '\\S\\' + 'B'.repeat(100_000) + '\\X0D\\' + 'C'.repeat(100_000);
  const expected = 'A'.repeat(100_000) + '^' + 'B'.repeat(100_000) + '\r' + 'C'.repeat(100_000);
  const input = lines('MSH|^~\\&|LAB|HOSP|||20240101||ORU^R01|9|P|2.5', 'OBX|1|ED|PDF||' + payload + '|', 'NTE|1');
  const started = performance.now();
  const message = parseHl7(input);
  t.is(message.get('OBX-5'), expected);
  t.is(message.toString(), input);
  message.set('OBX-6', 'x');
  t.is(message.toString(), input.replace(payload + '|', payload + '|x'));
  message.set('OBX-5', expected);
  t.is(message.get('OBX-5'), expected);
  t.is(message.get('NTE-1'), '1');
  const elapsed = performance.now() - started;
  t.true(elapsed < 2000, `took ${elapsed} ms`);
});

test('not HL7 → HL7_NOT_HL7', (t) => {
  const cases: [string, string][] = [
    ['', 'starts with ""'],
    ['PID|1', 'starts with "PID|1"'],
    [' MSH|^~\\&|A', 'starts with'],
    ['\rMSH|^~\\&|A', 'starts with'],
    ['MSH', 'MSH-1'],
    ['MSHA^~\\&', 'MSH-1'],
    ['MSH|^~|A', 'MSH-2'],
    ['MSH|^~\\&#!|A', 'MSH-2'],
    ['MSH|^^\\&|A', 'distinct'],
    ['MSH|^~\\|', 'MSH-2'],
  ];
  for (const [text, mentions] of cases) throwsCode(t, () => parseHl7(text), 'HL7_NOT_HL7', mentions);
});

test('set rejects non-string values', (t) => {
  const message = parseHl7(adt);
  const error = t.throws(() => message.set('PID-8', 5 as unknown as string), { instanceOf: TypeError });
  t.true(error.message.includes('PID-8'));
});
