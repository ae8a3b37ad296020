import test from 'ava';
import { readFile } from 'node:fs/promises';

// The admin UI's ER7 reader (admin-ui/hl7.js) is a browser module; it is pure, so it runs here too.
interface Row {
  position: string;
  value: string;
  depth: number;
  composite: boolean;
}
interface Segment {
  label: string;
  name: string;
  rows: Row[];
}
interface Hl7Module {
  hl7Table(text: string): Segment[] | undefined;
  unescapeHl7(text: string, d: { field: string; component: string; repetition: string; escape: string; subcomponent: string }): string;
}

const moduleUrl = new URL('../../admin-ui/hl7.js', import.meta.url).href;
const { hl7Table, unescapeHl7 } = (await import(moduleUrl)) as Hl7Module;

const rowsOf = (segments: Segment[] | undefined): Record<string, string> =>
  Object.fromEntries((segments ?? []).flatMap((s) => s.rows.map((r) => [r.position, r.value])));

const adt = (await readFile(new URL('../../scripts/samples/adt-a01.hl7', import.meta.url), 'utf8'));

test('the sample ADT^A01: fields, components and repetitions at their engine paths', (t) => {
  const segments = hl7Table(adt)!;
  t.deepEqual(
    segments.map((s) => s.label),
    ['MSH', 'EVN', 'PID', 'NK1', 'PV1', 'AL1'],
  );
  const rows = rowsOf(segments);
  t.is(rows['MSH-1'], '|');
  t.is(rows['MSH-2'], '^~\\&');
  t.is(rows['MSH-3'], 'REGADT');
  t.is(rows['MSH-9'], 'ADT^A01^ADT_A01', 'a field with components shows its wire text');
  t.is(rows['MSH-9.2'], 'A01');
  t.is(rows['MSH-10'], 'MSG00001');
  t.is(rows['PID-5'], 'DOE^JOHN^A');
  t.is(rows['PID-5.1'], 'DOE');
  t.is(rows['PID-5.2'], 'JOHN');
  t.is(rows['PID-3[1].1'], 'MRN12345');
  t.is(rows['PID-3[2].1'], '987654321');
  t.is(rows['PID-3[2].5'], 'SS');
  t.is(rows['PID-8'], 'M');
  t.false('PID-2' in rows, 'empty fields are left out');
  t.false('PID-5.4' in rows);
  t.is(rows['PV1-44'], '20240115082500', 'positions count empty fields before them');
});

test('depth and composite flags drive the indentation', (t) => {
  const pid = hl7Table(adt)!.find((s) => s.name === 'PID')!;
  const at = (position: string) => pid.rows.find((r) => r.position === position)!;
  t.like(at('PID-1'), { depth: 0, composite: false });
  t.like(at('PID-3'), { depth: 0, composite: true });
  t.like(at('PID-3[2]'), { depth: 1, composite: true });
  t.like(at('PID-3[2].1'), { depth: 2, composite: false });
  t.like(at('PID-5.1'), { depth: 1, composite: false });
  t.deepEqual(
    pid.rows.slice(0, 5).map((r) => r.position),
    ['PID-1', 'PID-3', 'PID-3[1]', 'PID-3[1].1', 'PID-3[1].4'],
    'rows come in message order, children after their parent',
  );
});

const table: Array<[string, string, Record<string, string>]> = [
  ['LF terminators and repeated segments', 'MSH|^~\\&|A|B\nOBX|1|ST|X||first\nOBX|2|ST|X||second\n', { 'OBX[1]-5': 'first', 'OBX[2]-5': 'second', 'MSH-4': 'B' }],
  ['CRLF terminators', 'MSH|^~\\&|A\r\nPID|1||M1\r\n', { 'PID-3': 'M1' }],
  ['subcomponents', 'MSH|^~\\&|A\rPID|1||M1^^^HOSP&1.2.3&ISO', { 'PID-3.4': 'HOSP&1.2.3&ISO', 'PID-3.4.1': 'HOSP', 'PID-3.4.3': 'ISO' }],
  ['escapes in leaves are decoded', 'MSH|^~\\&|A\rNTE|1||a \\F\\ b \\S\\ c \\T\\ d \\R\\ e \\E\\ f', { 'NTE-3': 'a | b ^ c & d ~ e \\ f' }],
  ['hex escapes decode as UTF-8', 'MSH|^~\\&|A\rNTE|1||caf\\XC3A9\\', { 'NTE-3': 'café' }],
  ['other delimiters from MSH', 'MSH#!@$%#A#B\rPID#1##X!Y@Z1@Z2', { 'MSH-1': '#', 'MSH-2': '!@$%', 'PID-3[1].1': 'X', 'PID-3[1].2': 'Y', 'PID-3[2]': 'Z1', 'PID-3[3]': 'Z2' }],
  ['a batch header', 'BHS|^~\\&|LAB\rMSH|^~\\&|LAB\rBTS|1', { 'BHS-3': 'LAB', 'MSH-3': 'LAB', 'BTS-1': '1' }],
];

for (const [name, text, expected] of table) {
  test(`hl7Table: ${name}`, (t) => {
    t.like(rowsOf(hl7Table(text)), expected);
  });
}

test('text that is not ER7 gives no table', (t) => {
  t.is(hl7Table('{"resourceType":"Patient"}'), undefined);
  t.is(hl7Table(''), undefined);
});

test('unknown escape sequences and a lone escape character are kept as written', (t) => {
  const d = { field: '|', component: '^', repetition: '~', escape: '\\', subcomponent: '&' };
  t.is(unescapeHl7('bold \\H\\text\\N\\ end', d), 'bold \\H\\text\\N\\ end');
  t.is(unescapeHl7('C:\\temp', d), 'C:\\temp');
  t.is(unescapeHl7('a\\S\\b\\', d), 'a^b\\');
});
