// The vocabulary channels.yaml is declared in: schema builders for the kinds of value its keys take
// (durations, sizes, names, paths, ports …) and the parsers that turn them into numbers. The engine
// section, the channel and every source and destination type (their connector modules) declare
// their keys with these, so a duration reads and fails the same everywhere.
//
// Every builder takes a title and a description: engine/channels.schema.json is generated from the
// schema for editors (yaml-language-server), and config/schema-errors.ts words its messages with the
// `errorMessage` / `patternErrorMessage` annotations (VS Code's JSON-schema extensions).

import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { statSync } from 'node:fs';
import path from 'node:path';

/** What every key documents: editors show it, and the drift test checks each key has it. */
export interface Doc {
  title: string;
  description: string;
  default?: unknown;
}

const durationUnits = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
const sizeUnits = { B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3 } as const;

const unitPattern = (units: object): RegExp => new RegExp(`^(\\d+)(${Object.keys(units).join('|')})$`);
const durationPattern = unitPattern(durationUnits);
const sizePattern = unitPattern(sizeUnits);

const scaled = (value: number | string, pattern: RegExp, units: Record<string, number>): number => {
  if (typeof value === 'number') return value;
  const match = pattern.exec(value);
  if (!match) throw new TypeError(`not a valid value: ${value}`);
  return Number(match[1]) * units[match[2]!]!;
};

/** `500` / `'500ms'` / `'30s'` / `'5m'` / `'2h'` / `'30d'` → milliseconds. Input must match the schema. */
export const durationMs = (value: number | string): number => scaled(value, durationPattern, durationUnits);

/** `1048576` / `'512KB'` / `'1MB'` / `'1GB'` (powers of 1024) → bytes. Input must match the schema. */
export const sizeBytes = (value: number | string): number => scaled(value, sizePattern, sizeUnits);

/** Whether a value is a duration the schema accepts (for checks that run before the schema passed). */
export const isDuration = (value: unknown): value is number | string =>
  (typeof value === 'number' && Number.isInteger(value) && value >= 0) ||
  (typeof value === 'string' && durationPattern.test(value));

/** Whether a string is a size the schema accepts (for checks that run before the schema passed). */
export const isSize = (value: unknown): value is number | string =>
  (typeof value === 'number' && Number.isInteger(value) && value >= 0) ||
  (typeof value === 'string' && sizePattern.test(value));

export const Duration = (doc: Doc) =>
  Type.Union([Type.Integer({ minimum: 0 }), Type.String({ pattern: durationPattern.source })], {
    ...doc,
    errorMessage: 'must be a duration: milliseconds, or a number with ms, s, m, h or d (500ms, 30s, 5m, 2h, 30d)',
    examples: ['500ms', '30s', '5m', '2h', '30d'],
  });

export const Size = (doc: Doc) =>
  Type.Union([Type.Integer({ minimum: 0 }), Type.String({ pattern: sizePattern.source })], {
    ...doc,
    errorMessage: 'must be a size: bytes, or a number with B, KB, MB or GB (512KB, 1MB, 64MB)',
    examples: ['512KB', '1MB', '64MB', '1GB'],
  });

// Plain `enum` rather than a union of literals: one error ("must be one of …") instead of one per literal.
export const StringEnum = <const T extends readonly string[]>(values: T, doc: Doc) =>
  Type.Unsafe<T[number]>({ type: 'string', enum: [...values], ...doc });

// ajv's discriminator keyword validates only the branch named by `type`, so a mistake inside a
// file destination is not reported as "does not match channel destination" as well.
// `R` is what it validates to, when the branches' own types say too little (built from a list).
export const Discriminated = <T extends TSchema[], R = Static<T[number]>>(branches: [...T], doc: Doc) =>
  Type.Unsafe<R>({
    type: 'object',
    oneOf: branches,
    discriminator: { propertyName: 'type' },
    ...doc,
  });

const namePattern = '^[a-z0-9][a-z0-9_-]{0,62}$';
const nameRule = 'must be 1 to 63 characters of a-z, 0-9, "-" and "_", starting with a letter or digit';

/** A channel or destination name: part of queue names and file paths. */
export const Name = (doc: Doc) => Type.String({ pattern: namePattern, patternErrorMessage: nameRule, ...doc });

/** A file or folder, relative to the config file (the loader resolves it). */
export const Path = (doc: Doc) => Type.String({ minLength: 1, ...doc });

export const Host = (doc: Doc) => Type.String({ minLength: 1, ...doc });

/** A port to listen on; 0 picks a free one. */
export const Port = (doc: Doc) => Type.Integer({ minimum: 0, maximum: 65535, ...doc });

/** A path on the engine HTTPS listener, e.g. /in/adt. */
export const UrlPath = (doc: Doc & { examples?: string[] }) =>
  Type.String({
    pattern: '^/[A-Za-z0-9._~-]+(?:/[A-Za-z0-9._~-]+)*$',
    patternErrorMessage: 'must be a URL path such as /in/adt: "/" then segments of A-Z, a-z, 0-9, ".", "_", "~", "-"',
    ...doc,
  });

/** Client addresses admitted (IPv4, IPv6, CIDR ranges); each is checked by wire/address-rules.ts. */
export const AllowIps = (doc: Doc & { examples: string[][] }) => Type.Array(Type.String({ minLength: 1 }), { minItems: 1, ...doc });

/** The `type` key of a source or destination: the value that selects it. */
export const Tag = <T extends string>(value: T, description: string) => Type.Literal(value, { title: 'Type', description });

// Reading the YAML before the schema passed: config checks run even when it failed (so that every
// problem is reported at once), hence they read values defensively and skip what the schema reports.

/** A YAML mapping as parsed, before validation. */
export type Entry = Record<string, unknown>;

export const isEntry = (value: unknown): value is Entry => typeof value === 'object' && value !== null && !Array.isArray(value);

/** The mapping, or an empty one for anything else (the schema reports that). */
export const entry = (value: unknown): Entry => (isEntry(value) ? value : {});

/** The mappings of a list with their indexes; anything else is the schema's to report. */
export const entries = (value: unknown): Array<[number, Entry]> =>
  Array.isArray(value) ? [...value.entries()].filter((e): e is [number, Entry] => isEntry(e[1])) : [];

/** Whether an absolute path names a regular file (a script, a certificate) now. */
export const isFile = (file: string): boolean => statSync(file, { throwIfNoEntry: false })?.isFile() ?? false;

/** An optional file named in the config, made absolute against the config file's folder `dir`. */
export const resolveOptional = (dir: string, file: string | undefined): string | undefined =>
  file === undefined ? undefined : path.resolve(dir, file);

/** A value as a message quotes it: `(got "5x")`, `(got a list)`. */
export const describeValue = (value: unknown): string => {
  if (value === null || value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return JSON.stringify(value);
};
