// channels.yaml → typed, validated config (config/contract.ts). The only YAML reader in the
// engine: nothing past this folder sees raw YAML, relative paths or unparsed durations and sizes.
//
// Parse (keeping positions) → interpolate ${ENV} → validate against the schema (config/schema.ts)
// → check what a schema cannot (config/checks.ts) → normalize (config/normalize.ts). Every problem
// is collected with file:line:column and key path, and all of them are thrown together.

import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Ajv } from 'ajv';
import { LineCounter, parseDocument } from 'yaml';
import { FerryError } from '../errors.ts';
import { checkConsistency } from './checks.ts';
import type { FerryConfig } from './contract.ts';
import { coerceInterpolated, interpolate } from './interpolate.ts';
import { normalize } from './normalize.ts';
import { report, throwProblems, type ConfigSource } from './report.ts';
import { relevantErrors, reportSchemaError, type SchemaNode } from './schema-errors.ts';
import { configSchema, type RawConfig } from './schema.ts';

const ajv = new Ajv({ allErrors: true, verbose: true, discriminator: true });
// Annotations for editors (VS Code's JSON-schema extensions); schema-errors.ts reads them for its messages.
ajv.addVocabulary(['errorMessage', 'patternErrorMessage']);
const validateSchema = ajv.compile<RawConfig>(configSchema);

/** Reads, validates and normalizes a channels.yaml. Throws FerryError (CONFIG_*, SCRIPT_NOT_FOUND). */
export async function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): Promise<FerryConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    const message = code === 'ENOENT' ? `config file ${file} does not exist` : `cannot read config file ${file} (${code})`;
    throw new FerryError('CONFIG_NOT_FOUND', message, { cause, details: { file } });
  }
  return parseConfig(text, file, env);
}

/**
 * The loader minus the read: `file` names the text in messages and anchors relative paths. Still
 * looks at the file system for translator scripts (default detection, SCRIPT_NOT_FOUND).
 */
export function parseConfig(text: string, file: string, env: NodeJS.ProcessEnv = process.env): FerryConfig {
  const absolute = path.resolve(file);
  const dir = path.dirname(absolute);
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false });
  const source: ConfigSource = { file, doc, lineCounter, problems: [] };

  // Only the first syntax error: after one mistake the parser's later complaints are mostly echoes.
  const syntaxError = doc.errors[0];
  if (syntaxError) {
    // `port: ${PORT}` inside `{ }` reads as a nested flow mapping; point at the `$` and say why.
    const unquoted = text.startsWith('${', syntaxError.pos[0] - 1);
    const { line, col } = lineCounter.linePos(syntaxError.pos[0] - (unquoted ? 1 : 0));
    const hint = unquoted ? ' (inside { } or [ ] a ${VAR} must be quoted: "${VAR}")' : '';
    source.problems.push({ code: 'CONFIG_SYNTAX', file, line, column: col, path: '', message: syntaxError.message + hint });
  }
  throwProblems(source);

  const interpolated = interpolate(source, env);
  throwProblems(source);
  coerceInterpolated(doc.contents, configSchema as SchemaNode, interpolated);

  const data: unknown = doc.toJS();
  if (doc.contents === null) report(source, 'CONFIG_INVALID', [], 'the file is empty; it needs at least a channels: list');
  else if (!validateSchema(data)) for (const error of relevantErrors(validateSchema.errors ?? [])) reportSchemaError(source, error);
  checkConsistency(source, data, dir);
  throwProblems(source);

  return normalize(data as RawConfig, absolute, dir);
}
