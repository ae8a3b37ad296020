// MLLP framing (HL7 v2 Minimal Lower Layer Protocol): <VT> payload <FS><CR>.
// Pure: bytes in, frames out. Sockets live in sources/mllp-listener.ts and clients/mllp.ts.
import { FerryError } from '../errors.ts';

const START = 0x0b;
const END = 0x1c;
const CR = 0x0d;
const LF = 0x0a;
const SPACE = 0x20;
const TAB = 0x09;

const hex = (byte: number): string => `0x${byte.toString(16).padStart(2, '0')}`;

/** Frames `payload` for the wire in one buffer, so callers can send it with a single write. */
export const encodeFrame = (payload: Uint8Array | string): Buffer => {
  const body = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
  // A block character inside the payload would end or restart the frame early at the receiver.
  for (const block of [START, END]) {
    const at = body.indexOf(block);
    if (at !== -1) {
      throw new FerryError('MLLP_BAD_FRAME', `payload contains MLLP block character ${hex(block)} at byte ${at}`, {
        details: { offset: at },
      });
    }
  }
  const frame = Buffer.allocUnsafe(body.length + 3);
  frame[0] = START;
  frame.set(body, 1);
  frame[body.length + 1] = END;
  frame[body.length + 2] = CR;
  return frame;
};

export type MllpEvent = { type: 'frame'; payload: Buffer } | { type: 'error'; error: FerryError };

export interface MllpDecoder {
  /**
   * Feeds the next bytes read from the connection. The chunk is referenced, not copied, until its
   * frame completes, so it must not be mutated afterwards (buffers from node:net never are).
   */
  push(chunk: Buffer): MllpEvent[];
  /** Bytes of a frame begun and not yet ended, its start block included; 0 between frames. */
  pending(): number;
}

// between: outside a frame, where CR/LF/blanks are tolerated (many senders end frames with <CR><LF>)
// junk:    inside a run of stray bytes that was already reported; skip to the next start block
// frame:   collecting payload until the end block
// end:     saw the end block, expecting CR
// In `frame` and `end`, `oversize` means the frame was already reported too large and is discarded.
type State = 'between' | 'junk' | 'frame' | 'end';

export const createMllpDecoder = ({ maxFrameBytes }: { maxFrameBytes: number }): MllpDecoder => {
  let state: State = 'between';
  // The frame's payload so far as slices of the pushed chunks; concatenated once, at the end block,
  // so a frame arriving in many small chunks costs O(n) rather than O(n²).
  let parts: Buffer[] = [];
  let size = 0;
  let oversize = false;

  const startFrame = (): void => {
    state = 'frame';
    parts = [];
    size = 0;
    oversize = false;
  };

  // Returns an error event the first time the frame crosses the limit, so the caller can close the
  // connection before the sender streams the rest of a huge frame into memory.
  const collect = (slice: Buffer): MllpEvent | undefined => {
    if (oversize || slice.length === 0) return undefined;
    size += slice.length;
    if (size > maxFrameBytes) {
      oversize = true;
      parts = [];
      return {
        type: 'error',
        error: new FerryError('MLLP_FRAME_TOO_LARGE', `MLLP frame exceeds ${maxFrameBytes} bytes`, {
          details: { maxFrameBytes },
        }),
      };
    }
    parts.push(slice);
    return undefined;
  };

  const push = (chunk: Buffer): MllpEvent[] => {
    const events: MllpEvent[] = [];
    let i = 0;
    while (i < chunk.length) {
      switch (state) {
        case 'between': {
          const byte = chunk[i]!;
          i += 1;
          if (byte === START) startFrame();
          else if (byte !== CR && byte !== LF && byte !== SPACE && byte !== TAB) {
            state = 'junk';
            events.push({
              type: 'error',
              error: new FerryError(
                'MLLP_BAD_FRAME',
                `unexpected byte ${hex(byte)} outside an MLLP frame (expected start block ${hex(START)}; is the sender using MLLP framing?)`,
                { details: { byte } },
              ),
            });
          }
          break;
        }
        case 'junk': {
          const at = chunk.indexOf(START, i);
          if (at === -1) i = chunk.length;
          else {
            i = at + 1;
            startFrame();
          }
          break;
        }
        case 'frame': {
          const at = chunk.indexOf(END, i);
          const stop = at === -1 ? chunk.length : at;
          const error = collect(chunk.subarray(i, stop));
          if (error) events.push(error);
          if (at === -1) i = chunk.length;
          else {
            i = at + 1;
            state = 'end';
          }
          break;
        }
        case 'end': {
          const byte = chunk[i]!;
          if (byte === CR) {
            i += 1;
            state = 'between';
            if (!oversize) events.push({ type: 'frame', payload: Buffer.concat(parts, size) });
          } else {
            // Not consumed: a start block right after the bad end block still opens the next frame.
            state = 'junk';
            if (!oversize) {
              events.push({
                type: 'error',
                error: new FerryError(
                  'MLLP_BAD_FRAME',
                  `MLLP end block ${hex(END)} followed by ${hex(byte)} instead of ${hex(CR)}; frame dropped`,
                  { details: { byte } },
                ),
              });
            }
          }
          parts = [];
          break;
        }
      }
    }
    return events;
  };

  return { push, pending: () => (state === 'frame' || state === 'end' ? size + 1 : 0) };
};
