// HL7 v2 (ER7) as rows for the message page's segment table. Positions use the engine's path syntax
// (PID-5.1, PID-3[2].1, OBX[2]-5), so a position read here can be pasted into a channel script's
// msg.get(). Values follow the engine's rule too: a leaf (nothing deeper present) is shown unescaped,
// a node with structure as its wire text. Pure: no DOM.

/** Segment terminators as senders really use them: CR by the standard, LF or CRLF from files. */
const TERMINATOR = /\r\n|\r|\n/;

/** Delimiters from the header segment (MSH, or a batch's FHS/BHS), or undefined if `text` is not ER7. */
const delimitersOf = (text) => {
  const header = /^(MSH|FHS|BHS)(.)(.{1,5}?)\2/.exec(text.replace(/^\s+/, ''));
  if (!header) return undefined;
  const [, , field, encoding] = header;
  return {
    field,
    component: encoding.charAt(0) || '^',
    repetition: encoding.charAt(1) || '~',
    escape: encoding.charAt(2) || '\\',
    subcomponent: encoding.charAt(3) || '&',
  };
};

const HEX = /^X([0-9A-Fa-f]{2})+$/;

const hexText = (hex) => {
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return new TextDecoder().decode(bytes);
};

/** \F\ \S\ \T\ \R\ \E\ \Xhh\ back to data; other sequences (\H\, \.br\, …) are kept as written. */
export const unescapeHl7 = (text, d) => {
  const parts = text.split(d.escape);
  if (parts.length < 3) return text;
  let out = parts[0];
  let i = 1;
  for (; i + 1 < parts.length; i += 2) {
    const name = parts[i];
    const known = { F: d.field, S: d.component, T: d.subcomponent, R: d.repetition, E: d.escape }[name];
    if (known !== undefined) out += known;
    else if (HEX.test(name)) out += hexText(name.slice(1));
    else out += d.escape + name + d.escape;
    out += parts[i + 1];
  }
  // An unterminated escape character stays as written.
  if (i < parts.length) out += d.escape + parts[i];
  return out;
};

const isLeaf = (parts) => parts.length === 1;

/**
 * The message as `[{ label, name, rows: [{ position, value, depth, composite }] }]`, one entry per
 * segment in order; empty fields, repetitions and components are left out (their positions are still
 * counted). Undefined when `text` is not ER7.
 */
export const hl7Table = (text) => {
  const d = delimitersOf(text);
  if (!d) return undefined;
  const lines = text.replace(/^\s+/, '').split(TERMINATOR).filter((line) => line.trim() !== '');
  const totals = new Map();
  for (const line of lines) totals.set(line.slice(0, 3), (totals.get(line.slice(0, 3)) ?? 0) + 1);
  const seen = new Map();

  return lines.map((line) => {
    const name = line.slice(0, 3);
    const occurrence = (seen.get(name) ?? 0) + 1;
    seen.set(name, occurrence);
    // A repeated segment names its occurrence even for the first, so OBX[1]-5 and OBX[2]-5 line up.
    const label = totals.get(name) > 1 ? `${name}[${occurrence}]` : name;
    const parts = line.split(d.field);
    const isHeader = name === 'MSH' || name === 'FHS' || name === 'BHS';
    const rows = [];
    const add = (position, value, depth, composite) => rows.push({ position, value, depth, composite });

    if (isHeader) {
      // The header's first two fields are the delimiters themselves: shown verbatim, never split.
      add(`${label}-1`, d.field, 0, false);
      add(`${label}-2`, parts[1] ?? '', 0, false);
    }
    const first = isHeader ? 2 : 1;
    const offset = isHeader ? 1 : 0;
    for (let i = first; i < parts.length; i++) {
      const raw = parts[i];
      if (raw === '') continue;
      const position = `${label}-${i + offset}`;
      const reps = raw.split(d.repetition);
      if (isLeaf(reps) && isLeaf(reps[0].split(d.component)) && isLeaf(reps[0].split(d.subcomponent))) {
        add(position, unescapeHl7(raw, d), 0, false);
        continue;
      }
      add(position, raw, 0, true);
      if (reps.length === 1) {
        components(reps[0], position, 1, d, add);
      } else {
        reps.forEach((rep, r) => {
          if (rep === '') return;
          const repPosition = `${position}[${r + 1}]`;
          const comps = rep.split(d.component);
          if (isLeaf(comps) && isLeaf(rep.split(d.subcomponent))) {
            add(repPosition, unescapeHl7(rep, d), 1, false);
          } else {
            add(repPosition, rep, 1, true);
            components(rep, repPosition, 2, d, add);
          }
        });
      }
    }
    return { label, name, rows };
  });
};

const components = (rep, position, depth, d, add) => {
  rep.split(d.component).forEach((comp, c) => {
    if (comp === '') return;
    const compPosition = `${position}.${c + 1}`;
    const subs = comp.split(d.subcomponent);
    if (isLeaf(subs)) {
      add(compPosition, unescapeHl7(comp, d), depth, false);
      return;
    }
    add(compPosition, comp, depth, true);
    subs.forEach((sub, sIndex) => {
      if (sub !== '') add(`${compPosition}.${sIndex + 1}`, unescapeHl7(sub, d), depth + 1, false);
    });
  });
};
