// ajv's errors as config problems: one per mistake, each worded for the person editing the file
// ("must be a duration: …", "unknown key "prot" (did you mean "port"?)"), using the schema's own
// `errorMessage` / `patternErrorMessage` annotations.

import type { ErrorObject } from 'ajv';
import type { KeyPath } from './contract.ts';
import { report, type ConfigSource } from './report.ts';
import { describeValue } from './units.ts';

/** The parts of JSON Schema the loader reads back from the schema (config/schema.ts). */
export interface SchemaNode {
  type?: string;
  properties?: Record<string, SchemaNode>;
  items?: SchemaNode;
  oneOf?: SchemaNode[];
  anyOf?: SchemaNode[];
  const?: unknown;
  errorMessage?: string;
  patternErrorMessage?: string;
}

/**
 * ajv with allErrors reports every failed branch of a union and every keyword at a wrong-typed
 * value. Keep one error per mistake: the union's own error instead of its branches', and only the
 * type error where the type is wrong.
 */
export function relevantErrors(errors: ErrorObject[]): ErrorObject[] {
  const unions = errors.filter((e) => e.keyword === 'anyOf');
  const kept = errors.filter(
    (e) => !unions.some((u) => u.instancePath === e.instancePath && e.schemaPath.startsWith(`${u.schemaPath}/`)),
  );
  const wrongType = new Set(kept.filter((e) => e.keyword === 'type').map((e) => e.instancePath));
  return kept.filter((e) => e.keyword === 'type' || !wrongType.has(e.instancePath));
}

const typeNames: Record<string, string> = {
  integer: 'an integer',
  number: 'a number',
  string: 'a string',
  boolean: 'true or false',
  object: 'a mapping (key: value)',
  array: 'a list',
};

export function reportSchemaError(source: ConfigSource, error: ErrorObject): void {
  const at: KeyPath = error.instancePath
    .split('/')
    .slice(1)
    .map((s) => s.replaceAll('~1', '/').replaceAll('~0', '~'))
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
  const parent = (error.parentSchema ?? {}) as SchemaNode;
  const got = `(got ${describeValue(error.data)})`;
  const params = error.params as Record<string, unknown>;
  const fail = (message: string, where = at, key = false) => report(source, 'CONFIG_INVALID', where, message, { key });
  switch (error.keyword) {
    case 'type':
      return fail(`must be ${typeNames[String(params['type'])] ?? params['type']} ${got}`);
    case 'required':
      return fail(`missing required key "${params['missingProperty']}"`);
    case 'additionalProperties': {
      const name = String(params['additionalProperty']);
      return fail(`unknown key "${name}"${didYouMean(name, Object.keys(parent.properties ?? {}))}`, [...at, name], true);
    }
    case 'discriminator': {
      const tags = (parent.oneOf ?? []).map((b) => b.properties?.['type']?.const).join(', ');
      if (params['tagValue'] === undefined) return fail(`missing required key "type" (one of ${tags})`);
      return fail(`must be one of ${tags} (got ${describeValue(params['tagValue'])})`, [...at, 'type']);
    }
    case 'enum':
      return fail(`must be one of ${(params['allowedValues'] as unknown[]).join(', ')} ${got}`);
    case 'pattern':
      return fail(`${parent.patternErrorMessage ?? `must match ${params['pattern']}`} ${got}`);
    case 'anyOf':
      return fail(`${parent.errorMessage ?? 'is not a valid value'} ${got}`);
    case 'minimum':
      return fail(`must be at least ${params['limit']} ${got}`);
    case 'maximum':
      return fail(`must be at most ${params['limit']} ${got}`);
    case 'minLength':
    case 'minItems':
      return fail('must not be empty');
    default:
      return fail(`${error.message ?? 'is not valid'} ${got}`);
  }
}

const distance = (a: string, b: string): number => {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(previous[j]! + 1, row[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = row;
  }
  return previous[b.length]!;
};

/** ` (did you mean "port"?)` when a candidate is close enough to be the word meant, else ''. */
export const didYouMean = (word: string, candidates: string[]): string => {
  const best = candidates
    .map((c) => ({ c, d: distance(word.toLowerCase(), c.toLowerCase()) }))
    .sort((x, y) => x.d - y.d)[0];
  return best && best.d <= Math.floor(word.length / 3) ? ` (did you mean "${best.c}"?)` : '';
};
