// One channel: state and actions, counters and queues (live), its script and compile errors, its last
// error, the deliveries its destinations are retrying (with Skip), its most recent failed messages,
// and its configuration as the engine normalized it.
import { get, withQuery } from '../api.js';
import { badge, fill, formatCount, h, problem, time } from '../dom.js';
import { subscribe } from '../live.js';
import { blockedDeliveries } from './blocked-deliveries.js';
import { channelActions } from './channel-actions.js';
import { COUNTERS, lastErrorText, queueList, scriptBadge, stateBadge } from './channel-parts.js';

const RECENT_ERRORS = 10;

const section = (title, ...children) => {
  const id = `section-${title.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`;
  return h('section', { class: 'panel', 'aria-labelledby': id }, h('h2', { id }, title), ...children);
};

const overview = (channel) =>
  h(
    'dl',
    { class: 'facts' },
    h('dt', {}, 'State'),
    h('dd', {}, stateBadge(channel)),
    h('dt', {}, 'Source'),
    h('dd', {}, h('code', {}, channel.source)),
    h('dt', {}, 'Counters'),
    h(
      'dd',
      {},
      h(
        'ul',
        { class: 'counters' },
        COUNTERS.map((key) => h('li', { class: key === 'errored' && channel.counts?.[key] > 0 ? 'attention' : null }, h('span', { class: 'num' }, formatCount(channel.counts?.[key])), ` ${key}`)),
      ),
    ),
    h('dt', {}, 'Queue depth'),
    h('dd', {}, queueList(channel.queues)),
    h('dt', {}, 'Last error'),
    h('dd', {}, channel.lastError ? h('span', { class: 'error-text' }, lastErrorText(channel.lastError)) : h('span', { class: 'muted' }, 'none')),
  );

const scriptPanel = (channel) => {
  const script = channel.script;
  if (!script) return [h('p', {}, scriptBadge(channel), ' This channel has no script: received messages pass on unchanged.')];
  return [
    h(
      'dl',
      { class: 'facts' },
      h('dt', {}, 'Status'),
      h('dd', {}, scriptBadge(channel)),
      h('dt', {}, 'File'),
      h('dd', {}, h('code', {}, script.file)),
      h('dt', {}, 'Version'),
      h('dd', {}, h('code', {}, script.version ?? '')),
      h('dt', {}, 'Loaded'),
      h('dd', {}, time(script.loadedAt)),
    ),
    script.error
      ? h(
          'div',
          { class: 'error-box' },
          h('p', {}, h('strong', {}, `${script.error.code}`), ' — the latest edit did not compile; the version above keeps running.', script.error.at ? [' (', time(script.error.at), ')'] : null),
          h('pre', {}, script.error.message),
        )
      : null,
  ];
};

const errorsTable = (items) =>
  items.length === 0
    ? h('p', { class: 'muted' }, 'No failed messages in the log.')
    : h(
        'table',
        { class: 'messages compact' },
        h('caption', { class: 'visually-hidden' }, 'Recent failed messages'),
        h('thead', {}, h('tr', {}, ['Received', 'Type', 'Control id', 'Error'].map((t) => h('th', { scope: 'col' }, t)))),
        h(
          'tbody',
          {},
          items.map((m) =>
            h(
              'tr',
              {},
              h('td', {}, h('a', { href: `#/messages/${encodeURIComponent(m.id)}`, 'aria-label': `Message ${m.id}` }, time(m.receivedAt))),
              h('td', {}, m.messageType ?? ''),
              h('td', {}, m.controlId ?? ''),
              h('td', { class: 'error-text' }, m.error ?? ''),
            ),
          ),
        ),
      );

export const renderChannel = (main, { param: name }) => {
  document.title = `${name} — Ferry`;
  const flash = h('p', { class: 'flash', role: 'status' });
  const report = (text, isError) => {
    flash.textContent = text;
    flash.classList.toggle('flash-error', isError);
  };
  const actionSlot = h('div');
  const overviewSlot = h('div', {}, h('p', { class: 'loading' }, 'Loading…'));
  const scriptSlot = h('div');
  const errorsSlot = h('div');
  const configSlot = h('div');
  const stateSlot = h('span');
  const blocked = blockedDeliveries(name, report);
  let actions;

  fill(
    main,
    h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, h('a', { href: '#/' }, 'Dashboard'), ' / ', h('span', { 'aria-current': 'page' }, name)),
    h('div', { class: 'page-head' }, h('h1', { tabindex: -1 }, `Channel ${name}`), stateSlot, actionSlot),
    flash,
    section('Blocked deliveries', blocked.element),
    h(
      'div',
      { class: 'columns' },
      h('div', {}, section('Overview', overviewSlot), section('Script', scriptSlot)),
      h(
        'div',
        {},
        section(
          'Recent errors',
          errorsSlot,
          h('p', {}, h('a', { href: withQuery('#/messages', { channel: name }) }, `All messages of ${name}`), ' · ', h('a', { href: withQuery('#/messages', { channel: name, status: 'error' }) }, 'all failed')),
        ),
      ),
    ),
    section('Configuration', configSlot),
  );

  const show = (channel) => {
    fill(stateSlot, badge(channel.state));
    fill(overviewSlot, overview(channel));
    fill(scriptSlot, scriptPanel(channel));
    blocked.update(channel.blocked);
    if (actions) actions.update(channel);
    else {
      actions = channelActions(channel, report);
      fill(actionSlot, actions.element);
    }
  };

  const loadErrors = async () => {
    try {
      const page = await get('/api/messages', { channel: name, status: 'error', limit: RECENT_ERRORS });
      fill(errorsSlot, errorsTable(page.items));
    } catch (error) {
      fill(errorsSlot, problem(error));
    }
  };

  const load = async () => {
    try {
      const detail = await get(`/api/channels/${encodeURIComponent(name)}`);
      show(detail);
      fill(configSlot, h('pre', { class: 'config', tabindex: 0, 'aria-label': `Configuration of ${name}` }, JSON.stringify(detail.config ?? {}, null, 2)));
    } catch (error) {
      fill(overviewSlot, problem(error));
    }
    await loadErrors();
  };
  load();

  let errorsTimer;
  const unsubscribe = subscribe((change) => {
    if (change.type === 'channel' && change.channel.name === name) show(change.channel);
    // A message of this channel failed: re-read the list, once for a burst of failures.
    if (change.type === 'message' && change.message.channel === name && change.message.status === 'error' && !errorsTimer) {
      errorsTimer = setTimeout(() => {
        errorsTimer = undefined;
        loadErrors();
      }, 500);
    }
  });
  return {
    cleanup() {
      unsubscribe();
      clearTimeout(errorsTimer);
    },
  };
};
