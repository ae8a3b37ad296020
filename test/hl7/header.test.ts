import fs from 'node:fs';
import test from 'ava';
import { isFerryError } from '../../engine/errors.ts';
import { isAck, readHeader } from '../../engine/hl7/header.ts';

const adt = fs.readFileSync(new URL('../../scripts/samples/adt-a01.hl7', import.meta.url), 'latin1');

test('readHeader reads the ADT sample', (t) => {
  t.deepEqual(readHeader(adt), {
    fieldSeparator: '|',
    encodingCharacters: '^~\\&',
    sendingApplication: 'REGADT',
    sendingFacility: 'GOODHEALTH',
    receivingApplication: 'FERRY',
    receivingFacility: 'GOODHEALTH',
    messageType: 'ADT^A01^ADT_A01',
    messageCode: 'ADT',
    triggerEvent: 'A01',
    controlId: 'MSG00001',
    processingId: 'P',
    version: '2.5',
    charset: 'UNICODE UTF-8',
    msh: adt.slice(0, adt.indexOf('\r')),
  });
});

test('readHeader: custom delimiters, escapes, composite values, BOM, LF, short MSH', (t) => {
  const custom = readHeader('\uFEFFMSH#$*@%#APP$1.2$ISO#F@S@1#####ORU$R01#C@F@7#P$T#2.3.1$USA\nPID#1');
  t.is(custom.fieldSeparator, '#');
  t.is(custom.encodingCharacters, '$*@%');
  t.is(custom.sendingApplication, 'APP$1.2$ISO', 'composite: raw');
  t.is(custom.sendingFacility, 'F$1', 'leaf: unescaped');
  t.is(custom.messageType, 'ORU$R01');
  t.is(custom.triggerEvent, 'R01');
  t.is(custom.controlId, 'C#7');
  t.is(custom.processingId, 'P');
  t.is(custom.version, '2.3.1');
  t.is(custom.charset, '');
  t.is(custom.msh, 'MSH#$*@%#APP$1.2$ISO#F@S@1#####ORU$R01#C@F@7#P$T#2.3.1$USA');

  const short = readHeader('MSH|^~\\&|A');
  t.is(short.messageType, '');
  t.is(short.messageCode, '');
  t.is(short.triggerEvent, '');
  t.is(short.controlId, '');

  t.is(readHeader('MSH|^~\\&||||||||||||||||8859/1~UNICODE UTF-8\r').charset, '8859/1');
});

test('readHeader reads only MSH: a 20 MB message costs nothing', (t) => {
  const big = `${adt}OBX|1|ED|PDF||${'A'.repeat(20_000_000)}\r`;
  const started = performance.now();
  for (let i = 0; i < 1000; i++) readHeader(big);
  const elapsed = performance.now() - started;
  t.is(readHeader(big).controlId, 'MSG00001');
  t.true(elapsed < 1000, `1000 headers took ${elapsed} ms`);
});

test('not HL7: readHeader throws HL7_NOT_HL7', (t) => {
  for (const text of ['', 'hello', 'PID|1||X', ' MSH|^~\\&|', '\r\nMSH|^~\\&|', 'MSH', 'MSH|^~|', '{"resourceType":"Patient"}']) {
    const error = t.throws(() => readHeader(text));
    t.true(isFerryError(error) && error.code === 'HL7_NOT_HL7', JSON.stringify(text));
  }
  for (const text of [adt, '\uFEFF' + adt, 'MSH|^~\\&', 'MSH#$*@%#']) t.notThrows(() => readHeader(text), JSON.stringify(text));
});

test('isAck: MSH-9.1 is ACK', (t) => {
  t.true(isAck(readHeader('MSH|^~\\&|A|B|C|D|20240101||ACK^A01^ACK|1|P|2.5\rMSA|AA|9\r')));
  t.true(isAck(readHeader('MSH|^~\\&|A|B|C|D|20240101||ACK|1|P|2.3\rMSA|AA|9\r')));
  t.false(isAck(readHeader(adt)));
});
