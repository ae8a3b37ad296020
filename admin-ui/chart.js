// A small bar chart of messages per minute, as inline SVG: one bar a minute, newest on the right.
import { s } from './dom.js';

const BAR = 6;
const GAP = 2;
const HEIGHT = 28;

/** A sentence with what the chart shows, for its accessible name and tooltip. */
const describeSeries = (series) => {
  const known = series.filter((b) => b.count !== null);
  if (known.length === 0) return 'no data yet';
  const total = known.reduce((sum, b) => sum + b.count, 0);
  const peak = Math.max(...known.map((b) => b.count));
  const latest = series[series.length - 1].count ?? 0;
  const span = known.length === series.length ? `the last ${series.length} minutes` : `the last ${known.length} min (since the page opened)`;
  return `${total} received in ${span}; peak ${peak}/min; ${latest} this minute`;
};

/** `series` from throughput.series(); `label` names the channel for screen readers. */
export const throughputChart = (series, label) => {
  const width = series.length * (BAR + GAP) - GAP;
  const peak = Math.max(1, ...series.map((b) => b.count ?? 0));
  const text = `${label}: ${describeSeries(series)}`;
  const bars = series.map((bucket, i) => {
    const x = i * (BAR + GAP);
    // Unknown minutes (before the page had data) are a faint full-height shade, unlike a quiet minute.
    if (bucket.count === null) return s('rect', { class: 'unknown', x, y: 0, width: BAR, height: HEIGHT });
    // Zero keeps a hairline, so a quiet minute reads as "known, nothing" rather than a gap.
    const height = bucket.count === 0 ? 1 : Math.max(2, Math.round((bucket.count / peak) * (HEIGHT - 2)));
    return s('rect', { class: bucket.count === 0 ? 'zero' : 'bar', x, y: HEIGHT - height, width: BAR, height });
  });
  return s(
    'svg',
    { class: 'throughput', viewBox: `0 0 ${width} ${HEIGHT}`, width, height: HEIGHT, role: 'img', 'aria-label': text },
    s('title', {}, text),
    bars,
  );
};
