// The channels as the engine last reported them, kept current by the `GET /api/events` stream, and the
// throughput history drawn on the dashboard. One stream for the whole app, so the charts keep counting
// while the user looks at a message.
import { get } from './api.js';
import { createThroughput } from './throughput.js';

export const WINDOW_MINUTES = 15;
const HISTORY_PAGE = 500;
const RETRY_MS = 5_000;

export const throughput = createThroughput({ minutes: WINDOW_MINUTES });

let channels = new Map();
const listeners = new Set();
let events;
let retryTimer;
let status = 'offline';

const notify = (change) => {
  for (const listener of listeners) listener(change);
};

/** Listener gets `{ type: 'channels' | 'channel' | 'message' | 'status', … }`; returns an unsubscribe. */
export const subscribe = (listener) => {
  listeners.add(listener);
  return () => listeners.delete(listener);
};

export const channelList = () => [...channels.values()];
/** 'live', 'connecting' or 'offline'. */
export const liveStatus = () => status;

const setStatus = (value) => {
  status = value;
  notify({ type: 'status', status });
};

/** Takes in a channel object from an event or from a start/stop answer. */
export const putChannel = (channel, at = Date.now()) => {
  channels.set(channel.name, channel);
  throughput.observe(channel.name, channel.counts?.received, at);
  notify({ type: 'channel', channel });
};

/** Re-reads every channel (at start, and after the stream reconnects: events may have been missed). */
const reloadChannels = async () => {
  const list = await get('/api/channels');
  const at = Date.now();
  const previous = channels;
  channels = new Map(list.map((c) => [c.name, c]));
  for (const name of previous.keys()) if (!channels.has(name)) throughput.forget(name);
  for (const c of list) throughput.observe(c.name, c.counts?.received, at);
  notify({ type: 'channels' });
  return at;
};

// The last window's messages from the log, so charts are not empty on opening. Counted up to `at`, the
// moment the baseline counts were read: later messages arrive as counter increases.
const loadHistory = async (at) => {
  const since = at - WINDOW_MINUTES * 60_000;
  await Promise.all(
    channelList().map(async ({ name }) => {
      const page = await get('/api/messages', {
        channel: name,
        from: new Date(since).toISOString(),
        to: new Date(at).toISOString(),
        limit: HISTORY_PAGE,
      });
      const times = page.items.map((m) => Date.parse(m.receivedAt));
      throughput.seed(name, times, { since, complete: page.nextCursor === null });
    }),
  );
  notify({ type: 'channels' });
};

const connect = () => {
  clearTimeout(retryTimer);
  setStatus('connecting');
  let opened = false;
  const stream = new EventSource('/api/events');
  events = stream;
  stream.addEventListener('channel', (event) => putChannel(JSON.parse(event.data)));
  stream.addEventListener('message', (event) => notify({ type: 'message', message: JSON.parse(event.data) }));
  stream.addEventListener('open', () => {
    setStatus('live');
    // The first open follows a fresh read; after a reconnect, events may have been missed.
    if (opened) reloadChannels().catch(() => {});
    opened = true;
  });
  stream.addEventListener('error', () => {
    if (events !== stream) return;
    if (stream.readyState !== EventSource.CLOSED) {
      setStatus('connecting');
      return;
    }
    // The browser gives up on an HTTP error (401 after the session expired, 503…): ask the API,
    // which shows the login on a 401, and try again a little later.
    setStatus('offline');
    get('/api/session').catch(() => {});
    retryTimer = setTimeout(() => events === stream && connect(), RETRY_MS);
  });
};

/** Reads the channels and their history, then follows the event stream until stopLive(). */
export const startLive = async () => {
  stopLive();
  const at = await reloadChannels();
  connect();
  await loadHistory(at).catch(() => {});
};

export const stopLive = () => {
  clearTimeout(retryTimer);
  events?.close();
  events = undefined;
  channels = new Map();
  setStatus('offline');
};
