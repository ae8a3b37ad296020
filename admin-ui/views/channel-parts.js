// Pieces of a channel object shown both on the dashboard and on the channel page.
import { badge, h, time } from '../dom.js';

export const COUNTERS = ['received', 'filtered', 'queued', 'sent', 'errored'];

/** 'ok', 'error' or 'none', with the text a person reads. */
export const scriptStatus = (channel) => {
  const script = channel.script;
  if (!script) return { state: 'none', text: 'no script' };
  if (script.error) return { state: 'error', text: `${script.error.code}: ${script.error.message}` };
  return { state: 'ok', text: `${script.file} version ${script.version}` };
};

export const scriptBadge = (channel) => {
  const { state, text } = scriptStatus(channel);
  const word = { ok: 'ok', error: 'compile error', none: 'none' }[state];
  return h('span', { class: `badge badge-script-${state}`, title: text }, word);
};

export const stateBadge = (channel) => badge(channel.state);

/** Queue name → depth as a compact list; non-empty queues stand out. */
export const queueList = (queues) => {
  const entries = Object.entries(queues ?? {});
  if (entries.length === 0) return h('span', { class: 'muted' }, 'none');
  return h(
    'ul',
    { class: 'queues' },
    entries.map(([name, depth]) => h('li', { class: depth > 0 ? 'waiting' : null }, h('span', { class: 'queue-name' }, name), ' ', h('span', { class: 'num' }, depth))),
  );
};

/** The engine reports the last error as "<ISO time> <text>": the time in local form, then the text. */
export const lastErrorText = (lastError) => {
  const match = /^(\d{4}-\d\d-\d\dT\S+Z) (.*)$/s.exec(lastError);
  return match ? [time(match[1]), ' ', match[2]] : [lastError];
};
