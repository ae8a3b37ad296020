// Paths into an HL7 v2 message: `SEG[segRep]-field[fieldRep].component.subcomponent`, all 1-based,
// e.g. PID-5.1, OBX[2]-5, PID-3[2].1, PID-3.4.2; segment-relative paths drop `SEG[segRep]-`: 5.1, 3[2].1.
import { FerryError } from '../errors.ts';

export interface Hl7FieldPath {
  readonly field: number;
  /** 1 when the path names no repetition. */
  readonly fieldRep: number;
  readonly component: number | undefined;
  readonly subcomponent: number | undefined;
}

export interface Hl7Path extends Hl7FieldPath {
  /** Three characters, `[A-Z][A-Z0-9]{2}`: standard and Z-segments alike. */
  readonly segment: string;
  /** Which occurrence of the segment, 1 when the path names none. */
  readonly segmentRep: number;
}

// Indexes are capped at five digits: `set` pads up to the index, and a typo such as PID-3[1000000]
// should fail loudly rather than build a million empty repetitions.
const index = '([1-9][0-9]{0,4})';
const fieldPart = `${index}(?:\\[${index}\\])?(?:\\.${index}(?:\\.${index})?)?`;
const fullPattern = new RegExp(`^([A-Z][A-Z0-9]{2})(?:\\[${index}\\])?-${fieldPart}$`);
const fieldPattern = new RegExp(`^${fieldPart}$`);

const badPath = (path: unknown, expected: string): FerryError =>
  new FerryError('HL7_BAD_PATH', `HL7 path ${JSON.stringify(path)} is malformed; expected ${expected}`, {
    details: { path },
  });

const optional = (digits: string | undefined): number | undefined => (digits === undefined ? undefined : Number(digits));

export const parsePath = (path: string): Hl7Path => {
  const match = typeof path === 'string' ? fullPattern.exec(path) : null;
  if (!match) throw badPath(path, 'SEG[n]-field[n].component.subcomponent, e.g. PID-5.1, OBX[2]-5, PID-3[2].4.2');
  return {
    segment: match[1]!,
    segmentRep: Number(match[2] ?? 1),
    field: Number(match[3]),
    fieldRep: Number(match[4] ?? 1),
    component: optional(match[5]),
    subcomponent: optional(match[6]),
  };
};

export const parseFieldPath = (path: string): Hl7FieldPath => {
  const match = typeof path === 'string' ? fieldPattern.exec(path) : null;
  if (!match) throw badPath(path, 'field[n].component.subcomponent relative to the segment, e.g. 5.1, 3[2].4.2');
  return {
    field: Number(match[1]),
    fieldRep: Number(match[2] ?? 1),
    component: optional(match[3]),
    subcomponent: optional(match[4]),
  };
};
