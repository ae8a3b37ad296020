// Start and Stop for one channel, each asking first. Updated in place on every channel change so a
// focused button keeps its focus while counters tick.
import { post } from '../api.js';
import { confirmAction } from '../confirm.js';
import { h } from '../dom.js';
import { putChannel } from '../live.js';
import { canOperate, roleNote } from '../session.js';

const wording = {
  stop: {
    title: (name) => `Stop ${name}?`,
    body: (channel) =>
      `${String(channel.source ?? '').startsWith('mllp') ? 'Its listener closes and senders are refused until it starts again' : 'It stops taking messages'}; ` +
      'messages already queued are kept and flow again on start. The channel stays stopped across engine restarts.',
    confirm: 'Stop channel',
  },
  start: {
    title: (name) => `Start ${name}?`,
    body: () => 'It opens its source again and processes every message that waited in its queues.',
    confirm: 'Start channel',
  },
};

/** `report(text, isError)` shows the outcome in the page's status line. */
export const channelActions = (initial, report) => {
  let channel = initial;
  let busy = false;

  const run = async (action) => {
    const words = wording[action];
    if (!(await confirmAction({ title: words.title(channel.name), body: words.body(channel), confirm: words.confirm }))) return;
    busy = true;
    update(channel);
    try {
      const result = await post(`/api/channels/${encodeURIComponent(channel.name)}/${action}`);
      putChannel(result);
      report(`${channel.name} ${action === 'stop' ? 'stopped' : 'started'}.`, false);
    } catch (error) {
      report(`Could not ${action} ${channel.name}: ${error.code}: ${error.message}`, true);
    } finally {
      busy = false;
      update(channel);
    }
  };

  const start = h('button', { type: 'button', class: 'start', onclick: () => run('start') }, 'Start');
  const stop = h('button', { type: 'button', class: 'stop', onclick: () => run('stop') }, 'Stop');
  const element = h('div', { class: 'channel-actions', role: 'group', 'aria-label': `Actions for ${initial.name}` }, start, stop);

  const update = (next) => {
    channel = next;
    const allowed = canOperate();
    start.setAttribute('aria-label', `Start ${channel.name}`);
    stop.setAttribute('aria-label', `Stop ${channel.name}`);
    start.disabled = busy || !allowed || channel.state === 'running';
    stop.disabled = busy || !allowed || channel.state === 'stopped';
    element.setAttribute('aria-busy', String(busy));
    for (const button of [start, stop]) {
      if (allowed) button.removeAttribute('title');
      else button.title = roleNote;
    }
  };

  update(initial);
  return { element, update };
};
