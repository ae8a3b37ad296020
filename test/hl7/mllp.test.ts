import test from 'ava';
import { createMllpDecoder, encodeFrame, type MllpEvent } from '../../engine/hl7/mllp.ts';
import { FerryError } from '../../engine/errors.ts';

const VT = '\x0b';
const FS = '\x1c';
const CR = '\r';

const MSG1 = 'MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240101120000||ORU^R01|MSG00001|P|2.5\rPID|1||12345^^^HOSP^MR||DOE^JANE\r';
const MSG2 = 'MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240101120001||ORU^R01|MSG00002|P|2.5\rPID|1||67890^^^HOSP^MR||ROE^RICHARD\r';

/** Events as plain values: frames as strings, errors as their code. */
type Seen = { frame: string } | { error: string };
const show = (events: MllpEvent[]): Seen[] =>
  events.map((event) => (event.type === 'frame' ? { frame: event.payload.toString('latin1') } : { error: event.error.code }));

const decodeAll = (chunks: Buffer[], maxFrameBytes = 1024 * 1024): Seen[] => {
  const decoder = createMllpDecoder({ maxFrameBytes });
  return chunks.flatMap((chunk) => show(decoder.push(chunk)));
};

const bytes = (text: string): Buffer => Buffer.from(text, 'latin1');

test('encodeFrame wraps the payload in VT … FS CR, byte for byte', (t) => {
  t.deepEqual(encodeFrame(bytes('MSH|x\r')), bytes(`${VT}MSH|x\r${FS}${CR}`));
  t.deepEqual(encodeFrame(''), bytes(`${VT}${FS}${CR}`));
});

test('encodeFrame encodes strings as UTF-8', (t) => {
  t.deepEqual(encodeFrame('PID|Müller'), Buffer.concat([bytes(VT), Buffer.from('PID|Müller', 'utf8'), bytes(FS + CR)]));
});

test('encodeFrame refuses payloads containing a block character', (t) => {
  for (const payload of [`MSH|a${FS}b`, `MSH|a${VT}b`]) {
    const error = t.throws(() => encodeFrame(bytes(payload)), { instanceOf: FerryError });
    t.is(error?.code, 'MLLP_BAD_FRAME');
  }
});

test('a two-frame stream split at every byte offset decodes to the same two frames', (t) => {
  const stream = Buffer.concat([encodeFrame(MSG1), encodeFrame(MSG2)]);
  const expected = [{ frame: MSG1 }, { frame: MSG2 }];
  for (let at = 0; at <= stream.length; at += 1) {
    t.deepEqual(decodeAll([stream.subarray(0, at), stream.subarray(at)]), expected, `split at ${at}`);
  }
});

test('a two-frame stream split at every pair of offsets decodes to the same two frames', (t) => {
  const stream = Buffer.concat([encodeFrame('MSH|a\r'), encodeFrame('MSH|bb\r')]);
  const expected = [{ frame: 'MSH|a\r' }, { frame: 'MSH|bb\r' }];
  for (let a = 0; a <= stream.length; a += 1) {
    for (let b = a; b <= stream.length; b += 1) {
      const chunks = [stream.subarray(0, a), stream.subarray(a, b), stream.subarray(b)];
      t.deepEqual(decodeAll(chunks), expected, `split at ${a}, ${b}`);
    }
  }
});

const cases: Array<{ name: string; input: string[]; max?: number; expected: Seen[] }> = [
  { name: 'several frames in one chunk', input: [`${VT}A${FS}${CR}${VT}B${FS}${CR}${VT}C${FS}${CR}`], expected: [{ frame: 'A' }, { frame: 'B' }, { frame: 'C' }] },
  { name: 'empty frame', input: [`${VT}${FS}${CR}`], expected: [{ frame: '' }] },
  { name: 'split between FS and CR', input: [`${VT}A${FS}`, CR], expected: [{ frame: 'A' }] },
  { name: 'CR LF after each frame is tolerated', input: [`${VT}A${FS}${CR}\n${VT}B${FS}${CR}\r\n`], expected: [{ frame: 'A' }, { frame: 'B' }] },
  { name: 'blanks and line ends between frames are tolerated', input: [`\r\n \t${VT}A${FS}${CR} \n`, `\r${VT}B${FS}${CR}`], expected: [{ frame: 'A' }, { frame: 'B' }] },
  { name: 'junk before the start block is reported once and skipped', input: [`garbage${VT}A${FS}${CR}`], expected: [{ error: 'MLLP_BAD_FRAME' }, { frame: 'A' }] },
  { name: 'a junk run across chunks is reported once', input: ['gar', 'bage', ` more\r\n${VT}A${FS}${CR}`], expected: [{ error: 'MLLP_BAD_FRAME' }, { frame: 'A' }] },
  { name: 'each junk run is reported', input: [`xx${VT}A${FS}${CR}yy${VT}B${FS}${CR}`], expected: [{ error: 'MLLP_BAD_FRAME' }, { frame: 'A' }, { error: 'MLLP_BAD_FRAME' }, { frame: 'B' }] },
  { name: 'unframed HL7 is junk', input: [`MSH|^~\\&|A\r`], expected: [{ error: 'MLLP_BAD_FRAME' }] },
  { name: 'FS not followed by CR drops the frame', input: [`${VT}A${FS}x${VT}B${FS}${CR}`], expected: [{ error: 'MLLP_BAD_FRAME' }, { frame: 'B' }] },
  { name: 'FS followed directly by a start block drops the frame, keeps the next', input: [`${VT}A${FS}`, `${VT}B${FS}${CR}`], expected: [{ error: 'MLLP_BAD_FRAME' }, { frame: 'B' }] },
  { name: 'FS then LF is not an end block', input: [`${VT}A${FS}\n`], expected: [{ error: 'MLLP_BAD_FRAME' }] },
  { name: 'payload of exactly max size is accepted', input: [`${VT}12345${FS}${CR}`], max: 5, expected: [{ frame: '12345' }] },
  { name: 'payload one byte over max is refused', input: [`${VT}123456${FS}${CR}`], max: 5, expected: [{ error: 'MLLP_FRAME_TOO_LARGE' }] },
  { name: 'too large is reported before the end block arrives', input: [`${VT}123`, '456'], max: 5, expected: [{ error: 'MLLP_FRAME_TOO_LARGE' }] },
  { name: 'too large is reported once, the rest of the frame is discarded', input: [`${VT}123456`, '789', `0${FS}${CR}${VT}ok${FS}${CR}`], max: 5, expected: [{ error: 'MLLP_FRAME_TOO_LARGE' }, { frame: 'ok' }] },
  { name: 'a start block inside a frame is payload', input: [`${VT}A${VT}B${FS}${CR}`], expected: [{ frame: `A${VT}B` }] },
];

for (const { name, input, max, expected } of cases) {
  test(`decoder: ${name}`, (t) => {
    t.deepEqual(decodeAll(input.map(bytes), max), expected);
  });
}

test('decoder errors are FerryErrors with a message naming the offending byte', (t) => {
  const [event] = createMllpDecoder({ maxFrameBytes: 100 }).push(bytes('M'));
  t.is(event?.type, 'error');
  if (event?.type !== 'error') return;
  t.true(event.error instanceof FerryError);
  t.regex(event.error.message, /0x4d/);
});

test('frame payloads are independent copies of the pushed chunks', (t) => {
  const decoder = createMllpDecoder({ maxFrameBytes: 100 });
  const chunk = bytes(`${VT}ABC${FS}${CR}`);
  const [event] = decoder.push(chunk);
  chunk.fill(0);
  t.deepEqual(event?.type === 'frame' ? event.payload.toString() : undefined, 'ABC');
});

test('a 300 KB frame arriving in 1-byte chunks decodes quickly', (t) => {
  const payload = Buffer.alloc(300 * 1024, 'OBX|1|TX|||lorem ipsum\r');
  const stream = encodeFrame(payload);
  const decoder = createMllpDecoder({ maxFrameBytes: 1024 * 1024 });
  const events: MllpEvent[] = [];
  const began = performance.now();
  for (let i = 0; i < stream.length; i += 1) events.push(...decoder.push(stream.subarray(i, i + 1)));
  const elapsed = performance.now() - began;
  t.is(events.length, 1);
  t.true(events[0]?.type === 'frame' && events[0].payload.equals(payload));
  // Linear work is a few hundred ms at most even on a loaded CI box; quadratic would be minutes.
  t.true(elapsed < 2000, `took ${elapsed.toFixed(0)} ms`);
  t.log(`300 KB in 1-byte chunks: ${elapsed.toFixed(0)} ms`);
});

test('decoder.pending(): bytes of the unfinished frame, start block included; 0 between frames', (t) => {
  const decoder = createMllpDecoder({ maxFrameBytes: 100 });
  const seen: number[] = [decoder.pending()];
  for (const chunk of ['\r\n', '\x0bMSH|', '^~', '\x1c', '\r', '\x0bAB']) {
    decoder.push(Buffer.from(chunk, 'latin1'));
    seen.push(decoder.pending());
  }
  t.deepEqual(seen, [0, 0, 5, 7, 7, 0, 3]);
});
