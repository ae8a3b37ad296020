import Router from '@koa/router';
import type { Redis } from 'ioredis';
import Koa from 'koa';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { createLoginLimiter, type LoginLimiter } from '../auth/login-limiter.ts';
import { createSessions, type Sessions } from '../auth/sessions.ts';
import type { UserDirectory } from '../auth/users.ts';
import { channelNamed, type ChannelControl } from '../channel-control.ts';
import type { Channel } from '../channel.ts';
import { sourceConnector } from '../connectors.ts';
import type { SkipOutcome } from '../pipeline/delivery-tracker.ts';
import { FerryError, isFerryError } from '../errors.ts';
import type { EventBus } from '../events.ts';
import { destinationStage, isStatus, type Status } from '../message.ts';
import { redactSecrets } from '../redact.ts';
import { pingRedis } from '../redis/connection.ts';
import type { AdminStore } from '../store/admin-store.ts';
import type { MessageStore } from '../store/contract.ts';
import { actorOf, createAuth, principalOf } from './auth.ts';
import { createEventStream, type EventStreamOptions } from './event-stream.ts';
import { createMetrics } from './metrics.ts';
import { badRequest, readJsonObject } from './read-json.ts';
import { serveUi } from './static-ui.ts';

// The admin API (JSON under /api; docs/admin-api.md), the health check, /metrics and the web UI's
// files, as a Koa app value; engine.ts listens.

export interface AdminDeps {
  channels: ReadonlyMap<string, Channel>;
  store: MessageStore;
  redis: Redis;
  control: ChannelControl;
  adminStore: AdminStore;
  users: UserDirectory;
  bus: EventBus;
  logger: Logger;
  /** The admin listener binds loopback only: then, with no users configured, calls need no login. */
  loopbackOnly: boolean;
  /** The web UI's folder; default admin-ui/ of this installation. */
  uiDir?: string;
  /** Defaults: 30 min idle sessions; 5 failed logins per 15 min. */
  sessions?: Sessions;
  limiter?: LoginLimiter;
  eventStream?: EventStreamOptions;
}

const DEFAULT_UI_DIR = fileURLToPath(new URL('../../admin-ui/', import.meta.url));
const MAX_AUDIT_PAGE = 1000;
/** Messages one bulk resend may name (a page of the message browser is 50). */
const MAX_RESEND_BATCH = 500;
const MAX_RESEND_BODY = 64 * 1024;
const MAX_SKIP_BODY = 4 * 1024;

const optionalTime = (value: unknown, name: string): number | undefined => {
  if (typeof value !== 'string' || value === '') return undefined;
  const time = /^\d+$/.test(value) ? Number(value) : Date.parse(value);
  if (Number.isNaN(time)) throw badRequest(`${name} must be an ISO date or milliseconds since the epoch`);
  return time;
};

export const adminApp = (deps: AdminDeps): Koa => {
  const { channels, store, redis, control, adminStore, users, bus, logger } = deps;
  const app = new Koa();
  const router = new Router();
  const auth = createAuth({
    users,
    sessions: deps.sessions ?? createSessions(),
    limiter: deps.limiter ?? createLoginLimiter(),
    adminStore,
    loopbackOnly: deps.loopbackOnly,
  });
  const metrics = createMetrics({ channels, store });

  /** A channel as GET /api/channels shows it: its info plus the message log's counts. */
  const channelObject = async (channel: Channel) => {
    const info = await channel.info();
    const c = store.counts().get(channel.name);
    return {
      ...info,
      counts: {
        received: c?.total ?? 0,
        filtered: c?.filtered ?? 0,
        transformed: c?.transformed ?? 0,
        queued: (c?.queued ?? 0) + (c?.received ?? 0),
        sent: c?.sent ?? 0,
        errored: c?.error ?? 0,
      },
    };
  };

  const events = createEventStream(
    {
      bus,
      channelNames: () => [...channels.keys()],
      channelObject: (name) => channelObject(channelNamed(channels, name)),
      messageSummary: (id) => store.summary(id),
      onError: (error) => logger.warn({ err: error }, 'admin event stream'),
    },
    deps.eventStream,
  );

  app.use(async (ctx, next) => {
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.set('X-Frame-Options', 'DENY');
    ctx.set('Referrer-Policy', 'no-referrer');
    try {
      await next();
    } catch (error) {
      const status = isFerryError(error) ? (error.status ?? 500) : 500;
      const retryAfter = isFerryError(error) ? error.details?.retryAfter : undefined;
      if (retryAfter !== undefined) ctx.set('Retry-After', String(retryAfter));
      ctx.status = status;
      ctx.body = {
        error: isFerryError(error)
          ? { code: error.code, message: error.message }
          : { code: 'INTERNAL', message: 'internal error' },
      };
      if (status >= 500) logger.error({ err: error, path: ctx.path }, 'admin API request failed');
    }
  });
  app.use(serveUi(deps.uiDir ?? DEFAULT_UI_DIR));

  router.get('/healthz', async (ctx) => {
    const redisOk = await pingRedis(redis, 1000).then(
      () => true,
      () => false,
    );
    // state() reads no Redis: a health check must answer while Redis hangs (info() counts queues in Redis).
    const states = Object.fromEntries([...channels.values()].map((c) => [c.name, c.state()]));
    ctx.status = redisOk ? 200 : 503;
    ctx.body = { status: redisOk ? 'ok' : 'degraded', redis: redisOk ? 'ok' : 'unreachable', channels: states };
  });

  router.get('/metrics', async (ctx) => {
    ctx.type = metrics.contentType;
    ctx.body = await metrics.metrics();
  });

  auth.routes(router);

  router.get('/api/channels', auth.allow('viewer'), async (ctx) => {
    ctx.body = await Promise.all([...channels.values()].map(channelObject));
  });

  router.get('/api/channels/:name', auth.allow('viewer'), async (ctx) => {
    const channel = channelNamed(channels, ctx.params['name']!);
    ctx.body = { ...(await channelObject(channel)), config: redactSecrets(channel.config) };
  });

  for (const action of ['start', 'stop'] as const) {
    router.post(`/api/channels/:name/${action}`, auth.allow('operator'), async (ctx) => {
      const name = ctx.params['name']!;
      channelNamed(channels, name);
      const actor = actorOf(principalOf(ctx));
      let outcome: string | null = null;
      try {
        await control[action](name, actor);
      } catch (error) {
        outcome = `failed: ${isFerryError(error) ? `${error.code}: ${error.message}` : String(error)}`;
        throw error;
      } finally {
        adminStore.audit({ user: actor, action, target: name, detail: outcome });
      }
      ctx.body = await channelObject(channelNamed(channels, name));
    });
  }

  /** Why a skip found nothing to skip, by how the delivery ended first. */
  const notSkipped: Record<Exclude<SkipOutcome, 'skipped'>, string> = {
    'not-in-progress': 'is not being tried now',
    sent: 'was delivered before the skip took effect',
    error: 'failed for good before the skip took effect',
    released: 'went back to its queue: the channel is stopping',
  };

  // A delivery that is being retried holds its destination (a fifo queue waits behind it): the
  // operator skips it, it is recorded `error` (DELIVERY_SKIPPED) and the queue goes on; audited.
  router.post('/api/channels/:name/destinations/:destination/skip', auth.allow('operator'), async (ctx) => {
    const name = ctx.params['name']!;
    const channel = channelNamed(channels, name);
    const destination = ctx.params['destination']!;
    if (!channel.config.destinations.some((d) => d.name === destination)) {
      throw new FerryError('DESTINATION_NOT_FOUND', `channel ${name} has no destination named ${destination}`);
    }
    const { id, output = 0 } = await readJsonObject(ctx, MAX_SKIP_BODY);
    if (typeof id !== 'string' || id === '') throw badRequest('id must be the message id of the delivery to skip');
    if (typeof output !== 'number' || !Number.isInteger(output) || output < 0) throw badRequest('output must be a whole number (0 for the first output)');
    const stage = destinationStage(destination, output);
    const actor = actorOf(principalOf(ctx));
    let detail = '';
    try {
      const outcome = await channel.skip(destination, id, output, actor);
      if (outcome !== 'skipped') {
        throw new FerryError('DELIVERY_NOT_IN_PROGRESS', `the delivery of message ${id} to ${name}/${stage} ${notSkipped[outcome]}`);
      }
      // Recorded before the skip resolved: this is the stage as the message log now holds it.
      const record = store.get(id)?.stages.find((s) => s.stage === stage);
      detail = `${name}/${stage} after ${record?.attempts ?? 0} attempts`;
      ctx.body = { id, ...record };
    } catch (error) {
      detail = `failed: ${isFerryError(error) ? `${error.code}: ${error.message}` : String(error)}`;
      throw error;
    } finally {
      adminStore.audit({ user: actor, action: 'skip', target: id, detail });
    }
  });

  router.get('/api/messages', auth.allow('viewer'), (ctx) => {
    const { channel, status, q, from, to, limit, cursor } = ctx.query;
    if (status !== undefined && (typeof status !== 'string' || !isStatus(status))) {
      throw badRequest('status must be one of received, filtered, transformed, queued, sent, error');
    }
    if (limit !== undefined && !/^[1-9]\d*$/.test(String(limit))) throw badRequest('limit must be a positive integer');
    if (cursor !== undefined && !/^\d+$/.test(String(cursor))) throw badRequest('cursor must come from a previous page');
    ctx.body = store.list({
      channel: typeof channel === 'string' && channel ? channel : undefined,
      status: status as Status | undefined,
      q: typeof q === 'string' ? q : undefined,
      from: optionalTime(from, 'from'),
      to: optionalTime(to, 'to'),
      limit: limit === undefined ? undefined : Number(limit),
      cursor: typeof cursor === 'string' ? cursor : undefined,
    });
  });

  router.get('/api/messages/:id', auth.allow('viewer'), (ctx) => {
    const message = store.get(ctx.params['id']!);
    if (!message) throw new FerryError('MESSAGE_NOT_FOUND', `no message ${ctx.params['id']}`);
    ctx.body = message;
  });

  /** Puts a stored message's received bytes through its channel's intake again, as a new message; audited. */
  const resend = async (id: string, actor: string): Promise<{ id: string }> => {
    const original = store.load(id);
    if (!original) throw new FerryError('MESSAGE_NOT_FOUND', `no message ${id}`);
    const channel = channels.get(original.channel);
    if (!channel) throw new FerryError('CHANNEL_NOT_FOUND', `no channel named ${original.channel} (the message's channel is no longer configured)`);
    // Through the channel's intake, like any new message: logged and queued before the answer.
    const result = await channel.intake.accept(original.raw, {
      source: `resend by ${actor}`,
      ...sourceConnector(channel.config.source).intakeOptions(channel.config.source),
      parentId: original.id,
      resend: true,
    });
    switch (result.kind) {
      case 'accepted':
        adminStore.audit({ user: actor, action: 'resend', target: original.id, detail: `as ${result.id}` });
        return { id: result.id };
      case 'ignored':
        // 422, not the code's 400: the request is well formed; what it names cannot be processed,
        // like content the channel refuses (HL7_NOT_HL7 and the other codes intake rejects with).
        throw new FerryError('API_BAD_REQUEST', 'the message is an HL7 acknowledgement; channels ignore those', { status: 422 });
      case 'rejected': // 422: the channel refuses the content (HL7_*)
      case 'failed': // 503: it cannot be committed now (COMMIT_FAILED, QUEUE_FULL)
        throw result.error;
    }
  };

  router.post('/api/messages/:id/resend', auth.allow('operator'), async (ctx) => {
    ctx.body = await resend(ctx.params['id']!, actorOf(principalOf(ctx)));
    ctx.status = 201;
  });

  // Many at once, e.g. every message that errored while a receiver was broken: each is resent as
  // above and reported on its own, so one that cannot be resent does not stop the others.
  router.post('/api/messages/resend', auth.allow('operator'), async (ctx) => {
    const { ids } = await readJsonObject(ctx, MAX_RESEND_BODY);
    if (!Array.isArray(ids) || ids.length === 0 || ids.length > MAX_RESEND_BATCH || !ids.every((id) => typeof id === 'string' && id !== '')) {
      throw badRequest(`ids must be a list of 1 to ${MAX_RESEND_BATCH} message ids`);
    }
    // Oldest first, so that each channel receives them again in the order it first did.
    const received = (id: string): number => store.load(id)?.receivedAt ?? Number.POSITIVE_INFINITY;
    const ordered = [...new Set(ids as string[])].sort((a, b) => received(a) - received(b) || (a < b ? -1 : a > b ? 1 : 0));
    const actor = actorOf(principalOf(ctx));
    const resent: Array<{ id: string; as: string }> = [];
    const failed: Array<{ id: string; error: { code: string; message: string } }> = [];
    for (const id of ordered) {
      try {
        resent.push({ id, as: (await resend(id, actor)).id });
      } catch (error) {
        if (!isFerryError(error)) logger.error({ err: error, id }, 'resend failed');
        failed.push({ id, error: isFerryError(error) ? { code: error.code, message: error.message } : { code: 'INTERNAL', message: 'internal error' } });
      }
    }
    ctx.body = { resent, failed };
  });

  router.get('/api/events', auth.allow('viewer'), (ctx) => {
    const principal = principalOf(ctx);
    events.serve(ctx, () => auth.stillValid(principal));
  });

  router.get('/api/audit', auth.allow('admin'), (ctx) => {
    const { limit } = ctx.query;
    if (limit !== undefined && !/^[1-9]\d*$/.test(String(limit))) throw badRequest('limit must be a positive integer');
    ctx.body = adminStore.auditLog(Math.min(limit === undefined ? 100 : Number(limit), MAX_AUDIT_PAGE));
  });

  // An /api path no route takes, or a route asked with another method (allowedMethods sets 405 and
  // Allow after the fact): answered in the API's JSON error shape, not Koa's plain text.
  app.use(async (ctx, next) => {
    await next();
    if (!ctx.path.startsWith('/api/')) return;
    if (ctx.status === 405) {
      throw new FerryError('API_METHOD_NOT_ALLOWED', `${ctx.method} is not allowed on ${ctx.path} (allowed: ${ctx.response.get('Allow')})`);
    }
    if (ctx.status === 404 && ctx.body === undefined) throw new FerryError('API_NOT_FOUND', `no API endpoint ${ctx.method} ${ctx.path}`);
  });
  app.use(router.routes());
  app.use(router.allowedMethods());
  return app;
};
