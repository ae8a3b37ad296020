// Every channel at a glance: state, source, counters, queue depths, script status, throughput over
// the last 15 minutes, Start/Stop. Rows are built once and updated in place from the event stream.
import { throughputChart } from '../chart.js';
import { fill, formatCount, h } from '../dom.js';
import { channelList, subscribe, throughput, WINDOW_MINUTES } from '../live.js';
import { channelActions } from './channel-actions.js';
import { COUNTERS, lastErrorText, queueList, scriptBadge, scriptStatus, stateBadge } from './channel-parts.js';

const CHART_REFRESH_MS = 10_000;
const COLUMNS = 12;

export const renderDashboard = (main) => {
  document.title = 'Dashboard — Ferry';
  const summary = h('p', { class: 'summary' });
  const flash = h('p', { class: 'flash', role: 'status' });
  const report = (text, isError) => {
    flash.textContent = text;
    flash.classList.toggle('flash-error', isError);
  };
  const body = h('tbody');
  const empty = h('p', { class: 'muted' }, 'Loading channels…');
  const rows = new Map();

  const makeRow = (channel) => {
    const name = channel.name;
    const cell = (cls) => h('td', { class: cls });
    const cells = {
      state: cell('state'),
      source: cell('source'),
      ...Object.fromEntries(COUNTERS.map((key) => [key, cell(`num count-${key}`)])),
      queues: cell('queue-cell'),
      script: cell('script'),
      chart: cell('chart'),
    };
    const actions = channelActions(channel, report);
    const problems = h('td', { colspan: COLUMNS });
    const tr = h(
      'tr',
      { 'data-channel': name },
      h('th', { scope: 'row' }, h('a', { href: `#/channels/${encodeURIComponent(name)}` }, name)),
      cells.state,
      cells.source,
      COUNTERS.map((key) => cells[key]),
      cells.queues,
      cells.script,
      cells.chart,
      h('td', { class: 'actions' }, actions.element),
    );
    const problemRow = h('tr', { class: 'problems', 'data-channel-problems': name }, problems);

    const drawChart = () => fill(cells.chart, throughputChart(throughput.series(name, Date.now()), name));
    const update = (c) => {
      fill(cells.state, stateBadge(c));
      cells.source.textContent = c.source;
      for (const key of COUNTERS) {
        const n = c.counts?.[key];
        cells[key].textContent = formatCount(n);
        cells[key].classList.toggle('attention', key === 'errored' && n > 0);
      }
      fill(cells.queues, queueList(c.queues));
      fill(cells.script, scriptBadge(c));
      actions.update(c);
      drawChart();
      const script = scriptStatus(c);
      const lines = [
        c.lastError ? h('p', {}, h('strong', {}, 'Last error: '), lastErrorText(c.lastError)) : null,
        script.state === 'error' ? h('p', {}, h('strong', {}, 'Script: '), script.text) : null,
      ].filter(Boolean);
      fill(problems, lines);
      problemRow.hidden = lines.length === 0;
      tr.classList.toggle('has-problems', lines.length > 0);
    };
    update(channel);
    return { elements: [tr, problemRow], update, drawChart };
  };

  const describe = (list) => {
    const by = (state) => list.filter((c) => c.state === state).length;
    const parts = [`${list.length} channel${list.length === 1 ? '' : 's'}`, `${by('running')} running`, `${by('stopped')} stopped`];
    if (by('error')) parts.push(`${by('error')} in error`);
    summary.textContent = parts.join(' · ');
  };

  const rebuild = (loaded) => {
    const list = channelList();
    const names = list.map((c) => c.name);
    // Same channels as shown: update in place, so focus and open dialogs are left alone.
    if (names.length === rows.size && names.every((n) => rows.has(n))) {
      for (const c of list) rows.get(c.name).update(c);
    } else {
      rows.clear();
      fill(body, list.map((c) => {
        const row = makeRow(c);
        rows.set(c.name, row);
        return row.elements;
      }));
    }
    empty.hidden = list.length > 0;
    if (loaded) empty.textContent = 'No channels are configured.';
    describe(list);
  };

  const table = h(
    'table',
    { class: 'channels' },
    h('caption', { class: 'visually-hidden' }, 'Channels'),
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        h('th', { scope: 'col' }, 'Channel'),
        h('th', { scope: 'col' }, 'State'),
        h('th', { scope: 'col' }, 'Source'),
        COUNTERS.map((key) => h('th', { scope: 'col', class: 'num' }, key[0].toUpperCase() + key.slice(1))),
        h('th', { scope: 'col' }, 'Queue depth'),
        h('th', { scope: 'col' }, 'Script'),
        h('th', { scope: 'col' }, `Received/min, ${WINDOW_MINUTES} min`),
        h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Actions')),
      ),
    ),
    body,
  );

  fill(main, h('div', { class: 'page-head' }, h('h1', { tabindex: -1 }, 'Channels'), summary), flash, h('div', { class: 'table-wrap' }, table), empty);
  rebuild(false);

  const unsubscribe = subscribe((change) => {
    if (change.type === 'channels') rebuild(true);
    else if (change.type === 'channel') {
      const row = rows.get(change.channel.name);
      if (row) {
        row.update(change.channel);
        describe(channelList());
      } else rebuild(true);
    }
  });
  // The bars shift left as minutes pass, whether or not anything arrives.
  const timer = setInterval(() => rows.forEach((row) => row.drawChart()), CHART_REFRESH_MS);

  return {
    cleanup() {
      unsubscribe();
      clearInterval(timer);
    },
  };
};
