import type Koa from 'koa';
import { FerryError } from '../errors.ts';
import { readBody } from './read-body.ts';

// The admin API's request bodies: a JSON object, up to a size, or a 400 that says what is wrong.

/** 400 API_BAD_REQUEST with `message`. */
export const badRequest = (message: string): FerryError => new FerryError('API_BAD_REQUEST', message);

export const readJsonObject = async (ctx: Koa.Context, maxBytes: number): Promise<Record<string, unknown>> => {
  // A JSON content type cannot be sent cross-site without a CORS preflight, which this API never grants.
  if (!ctx.is('application/json')) throw badRequest('send the body as application/json');
  const read = await readBody(ctx.req, maxBytes);
  if (read.kind === 'too-large') ctx.set('Connection', 'close'); // the rest is never read
  if (read.kind !== 'ok') throw badRequest(read.kind === 'too-large' ? 'the body is too large' : 'the body was cut short');
  let value: unknown;
  try {
    value = JSON.parse(read.body.toString('utf8'));
  } catch {
    throw badRequest('the body is not valid JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw badRequest('the body must be a JSON object');
  return value as Record<string, unknown>;
};
