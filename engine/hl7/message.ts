// An HL7 v2 ER7 message you can read and edit by path. Pure: also bundled into the translator sandbox.
//
// Fidelity rule: each segment keeps its original text and terminator and is re-serialized only after a
// `set` touched it, so a message passed through unchanged (or with one field edited) leaves every other
// byte as the sender wrote it. Segments are split into fields lazily, on first access.
//
// What `get` returns (the rule, also in the Hl7Message docs): a leaf, i.e. a node with no deeper
// structure present, comes back unescaped (`PID-5.1` of `DOE^JOHN` is `DOE`; `\S\` becomes `^`). A node
// that does have structure comes back as its raw wire text with delimiters and escapes kept (`PID-5` of
// `DOE^JOHN` is `DOE^JOHN`), because unescaping it would make `^` in data indistinguishable from a
// component separator. Without a repetition index a field means its first repetition.
import { FerryError } from '../errors.ts';
import { type Delimiters, locateMsh } from './delimiters.ts';
import { escapeHl7, unescapeHl7 } from './escape.ts';
import { type Hl7FieldPath, type Hl7Path, parseFieldPath, parsePath } from './path.ts';

export interface Hl7Segment {
  /** The segment id, e.g. `PID`. */
  readonly name: string;
  /** Path relative to this segment: `5.1`, `3[2].4.2`. Same return rule as Hl7Message.get. */
  get(path: string): string;
  /** Path relative to this segment; same rules as Hl7Message.set. */
  set(path: string, value: string): void;
  /** The segment's text without its terminator. */
  toString(): string;
}

export interface Hl7Message {
  readonly delimiters: Delimiters;
  /** The terminator the input used first (CR, LF or CRLF); new segments end with it. CR when none. */
  readonly segmentTerminator: string;
  /**
   * Reads `SEG[n]-field[n].component.subcomponent`; `''` when anything along the path is absent.
   * Leaves (nothing deeper present) come back unescaped; nodes with structure as raw wire text, e.g.
   * `get('PID-5')` of `DOE^JOHN` is `DOE^JOHN` while `get('PID-5.1')` is `DOE`. MSH-1 and MSH-2 come
   * back verbatim (they are the delimiters, not data).
   */
  get(path: string): string;
  /**
   * Replaces the addressed node with `value` as one escaped leaf: delimiters in `value` become \F\ \S\
   * \T\ \R\ \E\ (\P\), CR/LF become \X0D\ \X0A\. Missing segments are appended at the end of the
   * message, missing repetitions, fields, components and subcomponents are padded with empty ones.
   * Setting a field without a component index replaces that whole repetition. MSH-1/MSH-2 are refused.
   */
  set(path: string, value: string): void;
  /** All segments in message order, or those with this id. Edits through them show in toString(). */
  segments(name?: string): Hl7Segment[];
  /** The whole message; byte-identical to the input for segments that were not set(). */
  toString(): string;
}

/** repetitions → components → subcomponents, each leaf still escaped wire text. */
type Field = string[][][];

interface SegmentRecord {
  readonly name: string;
  /** Wire text without terminator; stale while `dirty`. */
  raw: string;
  /** The exact terminator run that followed the segment in the input ('' for an unterminated last one). */
  terminator: string;
  /** Index = field number. MSH holds MSH-1 and MSH-2 as single, never-split leaves. */
  fields: Field[] | undefined;
  dirty: boolean;
}

const leaf = (text: string): Field => [[[text]]];

const splitField = (text: string, d: Delimiters): Field =>
  text.split(d.repetition).map((rep) => rep.split(d.component).map((comp) => comp.split(d.subcomponent)));

const joinRepetition = (rep: string[][], d: Delimiters): string =>
  rep.map((comp) => comp.join(d.subcomponent)).join(d.component);

const joinField = (field: Field, d: Delimiters): string =>
  field.map((rep) => joinRepetition(rep, d)).join(d.repetition);

const isMsh = (record: SegmentRecord): boolean => record.name === 'MSH';

const fieldsOf = (record: SegmentRecord, d: Delimiters): Field[] => {
  if (record.fields) return record.fields;
  const parts = record.raw.split(d.field);
  const rest = (from: number): Field[] => parts.slice(from).map((part) => splitField(part, d));
  record.fields = isMsh(record)
    ? [leaf(parts[0]!), leaf(d.field), leaf(parts[1] ?? ''), ...rest(2)]
    : [leaf(parts[0]!), ...rest(1)];
  return record.fields;
};

const textOf = (record: SegmentRecord, d: Delimiters): string => {
  if (!record.dirty) return record.raw;
  const fields = fieldsOf(record, d);
  const first = isMsh(record) ? 3 : 1;
  let out = isMsh(record) ? `MSH${d.field}${fields[2]![0]![0]![0]!}` : record.name;
  for (let i = first; i < fields.length; i++) out += d.field + joinField(fields[i]!, d);
  record.raw = out;
  record.dirty = false;
  return out;
};

const read = (record: SegmentRecord, path: Hl7FieldPath, d: Delimiters): string => {
  const rep = fieldsOf(record, d)[path.field]?.[path.fieldRep - 1];
  if (!rep) return '';
  if (isMsh(record) && path.field <= 2) {
    // The delimiters themselves: verbatim, and they have no components to index into.
    return (path.component ?? 1) === 1 && (path.subcomponent ?? 1) === 1 ? rep[0]![0]! : '';
  }
  if (path.component === undefined) {
    return rep.length === 1 && rep[0]!.length === 1 ? unescapeHl7(rep[0]![0]!, d) : joinRepetition(rep, d);
  }
  const comp = rep[path.component - 1];
  if (!comp) return '';
  if (path.subcomponent === undefined) {
    return comp.length === 1 ? unescapeHl7(comp[0]!, d) : comp.join(d.subcomponent);
  }
  const sub = comp[path.subcomponent - 1];
  return sub === undefined ? '' : unescapeHl7(sub, d);
};

const pad = <T>(list: T[], length: number, make: () => T): void => {
  while (list.length < length) list.push(make());
};

const write = (record: SegmentRecord, path: Hl7FieldPath, value: string, d: Delimiters, shown: string): void => {
  if (typeof value !== 'string') {
    throw new TypeError(`set(${JSON.stringify(shown)}) needs a string value, got ${typeof value}`);
  }
  if (isMsh(record) && path.field <= 2) {
    throw new FerryError('HL7_BAD_PATH', `HL7 path ${JSON.stringify(shown)}: MSH-1 and MSH-2 are the message's delimiters and cannot be set`, {
      details: { path: shown },
    });
  }
  const escaped = escapeHl7(value, d);
  const fields = fieldsOf(record, d);
  pad(fields, path.field + 1, () => leaf(''));
  const field = fields[path.field]!;
  pad(field, path.fieldRep, () => [['']]);
  if (path.component === undefined) {
    field[path.fieldRep - 1] = [[escaped]];
  } else {
    const rep = field[path.fieldRep - 1]!;
    pad(rep, path.component, () => ['']);
    if (path.subcomponent === undefined) {
      rep[path.component - 1] = [escaped];
    } else {
      const comp = rep[path.component - 1]!;
      pad(comp, path.subcomponent, () => '');
      comp[path.subcomponent - 1] = escaped;
    }
  }
  record.dirty = true;
};

const segmentView = (record: SegmentRecord, d: Delimiters): Hl7Segment => ({
  name: record.name,
  get: (path) => read(record, parseFieldPath(path), d),
  set: (path, value) => write(record, parseFieldPath(path), value, d, path),
  toString: () => textOf(record, d),
});

/** Parses ER7 text that starts with MSH (an optional leading byte order mark is kept). HL7_NOT_HL7 otherwise. */
export const parseHl7 = (text: string): Hl7Message => {
  const { start, delimiters: d } = locateMsh(text);
  const prefix = text.slice(0, start);
  const records: SegmentRecord[] = [];
  let segmentTerminator = '';
  // A run of CR/LF is one terminator: blank lines between segments stay attached to the segment before.
  const terminators = /[\r\n]+/g;
  terminators.lastIndex = start;
  let from = start;
  for (let match = terminators.exec(text); match; match = terminators.exec(text)) {
    records.push(newRecord(text.slice(from, match.index), match[0], d));
    if (segmentTerminator === '') segmentTerminator = match[0].startsWith('\r\n') ? '\r\n' : match[0].charAt(0);
    from = match.index + match[0].length;
  }
  if (from < text.length) records.push(newRecord(text.slice(from), '', d));
  const terminator = segmentTerminator || '\r';

  const find = (path: Hl7Path): SegmentRecord | undefined => {
    let seen = 0;
    for (const record of records) {
      if (record.name === path.segment && ++seen === path.segmentRep) return record;
    }
    return undefined;
  };

  const append = (name: string): SegmentRecord => {
    const last = records[records.length - 1]!;
    // Keep the input's habit: a message sent without a final terminator still ends without one.
    const record: SegmentRecord = { name, raw: name, terminator: last.terminator === '' ? '' : terminator, fields: undefined, dirty: false };
    if (last.terminator === '') last.terminator = terminator;
    records.push(record);
    return record;
  };

  return {
    delimiters: d,
    segmentTerminator: terminator,
    get(path) {
      const address = parsePath(path);
      const record = find(address);
      return record ? read(record, address, d) : '';
    },
    set(path, value) {
      const address = parsePath(path);
      let record = find(address);
      if (!record) {
        const present = records.filter((r) => r.name === address.segment).length;
        for (let i = present; i < address.segmentRep; i++) record = append(address.segment);
      }
      write(record!, address, value, d, path);
    },
    segments(name) {
      return records.filter((r) => name === undefined || r.name === name).map((r) => segmentView(r, d));
    },
    toString() {
      let out = prefix;
      for (const record of records) out += textOf(record, d) + record.terminator;
      return out;
    },
  };
};

const newRecord = (raw: string, terminator: string, d: Delimiters): SegmentRecord => {
  const end = raw.indexOf(d.field);
  return { name: end === -1 ? raw : raw.slice(0, end), raw, terminator, fields: undefined, dirty: false };
};
