// ${ENV} in channels.yaml: replaced in every string value before validation, and turned into a
// number where the schema takes one (`port: ${PORT}`).

import { isMap, isScalar, isSeq, type Scalar } from 'yaml';
import type { KeyPath } from './contract.ts';
import { report, type ConfigSource } from './report.ts';
import type { SchemaNode } from './schema-errors.ts';

/** Visits every scalar value (not keys) with its key path; aliases are visited at their anchor. */
function forEachScalar(node: unknown, at: KeyPath, visit: (scalar: Scalar, at: KeyPath) => void): void {
  if (isMap(node)) {
    for (const pair of node.items) if (isScalar(pair.key)) forEachScalar(pair.value, [...at, String(pair.key.value)], visit);
  } else if (isSeq(node)) {
    node.items.forEach((item, i) => forEachScalar(item, [...at, i], visit));
  } else if (isScalar(node)) {
    visit(node, at);
  }
}

const envReference = /\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/**
 * Replaces `${VAR}` / `${VAR:-default}` in every string value (`$${` stays a literal `${`); a set
 * but empty VAR takes the default, as in the shell. Returns the scalars that took a value.
 */
export function interpolate(source: ConfigSource, env: NodeJS.ProcessEnv): Set<Scalar> {
  const interpolated = new Set<Scalar>();
  forEachScalar(source.doc.contents, [], (scalar, at) => {
    if (typeof scalar.value !== 'string' || !scalar.value.includes('${')) return;
    scalar.value = scalar.value.replace(envReference, (match, name: string | undefined, fallback: string | undefined) => {
      if (name === undefined) return '${';
      const value = env[name];
      interpolated.add(scalar);
      if (fallback !== undefined && !value) return fallback;
      if (value !== undefined) return value;
      report(source, 'CONFIG_ENV_MISSING', at, `environment variable ${name} is not set (give a default with \${${name}:-value})`);
      return match;
    });
  });
  return interpolated;
}

const acceptsInteger = (schema: SchemaNode): boolean =>
  schema.type === 'integer' || (schema.anyOf ?? []).some(acceptsInteger);

/**
 * `port: ${PORT}` is a string to YAML. Where the schema takes an integer (ports, counts, durations
 * and sizes in plain numbers), an interpolated all-digits value becomes a number; everything the
 * user typed literally is validated as typed, so `port: "6661"` stays an error.
 */
export function coerceInterpolated(node: unknown, schema: SchemaNode, interpolated: Set<Scalar>): void {
  if (isMap(node)) {
    const branch = schema.oneOf ? schema.oneOf.find((b) => b.properties?.['type']?.const === node.get('type')) : schema;
    for (const pair of node.items) {
      const property = isScalar(pair.key) ? branch?.properties?.[String(pair.key.value)] : undefined;
      if (property) coerceInterpolated(pair.value, property, interpolated);
    }
  } else if (isSeq(node)) {
    if (schema.items) for (const item of node.items) coerceInterpolated(item, schema.items, interpolated);
  } else if (isScalar(node) && interpolated.has(node) && typeof node.value === 'string') {
    if (/^-?\d+$/.test(node.value) && acceptsInteger(schema)) node.value = Number(node.value);
  }
}

