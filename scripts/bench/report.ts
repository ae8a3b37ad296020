// The bench's result table: one line per measure, Ferry's median over the runs beside its reference's
// from the same runs, their ratio (the median of each run's ratio: Ferry and its reference ran
// minutes apart, so each run's pair saw the same machine), the target and whether it is met.

export interface Target {
  /** What the target bounds: Ferry's own figure, or its ratio to the reference. */
  of: 'ferry' | 'ratio';
  atLeast?: number;
  atMost?: number;
}

export interface Row {
  id: string;
  measure: string;
  unit: string;
  /** One figure per run (NaN: that run could not measure it). */
  ferry: number[];
  reference: number[];
  referenceLabel: string;
  target: Target;
  /** Further conditions of the target, each met or not per run (e.g. T1's backlog). */
  alsoRequired?: { what: string; runs: boolean[] };
  /** Runs whose figure is only an upper bound (T5 when T1's backlog did not drain in time): shown with ≤. */
  upperBound?: boolean[];
  /** Why the row or its reference could not be measured. */
  unavailable?: string;
}

export const median = (values: number[]): number => {
  const sorted = values.filter((v) => !Number.isNaN(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

export const ratioOf = (row: Row): number => median(row.ferry.map((f, i) => f / row.reference[i]!));

const targetText = (row: Row): string => {
  const { atLeast, atMost, of } = row.target;
  const bound = atLeast !== undefined ? `≥ ${atLeast}` : `≤ ${atMost}`;
  return `${of === 'ratio' ? `${bound}× ref` : `${bound} ${row.unit}`}${row.alsoRequired ? `, ${row.alsoRequired.what}` : ''}`;
};

export const metOf = (row: Row): boolean | undefined => {
  const value = row.target.of === 'ratio' ? ratioOf(row) : median(row.ferry);
  if (Number.isNaN(value)) return undefined;
  const within = (row.target.atLeast === undefined || value >= row.target.atLeast) && (row.target.atMost === undefined || value <= row.target.atMost);
  // The extra condition holds in the majority of runs, as a median would say.
  const also = row.alsoRequired ? row.alsoRequired.runs.filter(Boolean).length * 2 > row.alsoRequired.runs.length : true;
  return within && also;
};

const figure = (value: number): string =>
  Number.isNaN(value) ? '—' : Math.abs(value) >= 100 ? value.toFixed(0) : Math.abs(value) >= 10 ? value.toFixed(1) : value.toFixed(3);

export const printTable = (header: string[], rows: string[][]): void => {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => cells.map((cell, i) => (i < 2 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ');
  console.log([line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n'));
};

export const printRows = (rows: Row[]): void => {
  printTable(
    ['row', 'measure', 'ferry', 'reference', 'ratio', 'target', 'met'],
    rows.map((row) => {
      const met = metOf(row);
      return [
        row.id,
        `${row.measure} (${row.unit}); ref: ${row.referenceLabel}`,
        `${row.upperBound?.some(Boolean) ? '≤ ' : ''}${figure(median(row.ferry))}`,
        figure(median(row.reference)),
        figure(ratioOf(row)),
        targetText(row),
        row.unavailable ? `n/a: ${row.unavailable}` : met === undefined ? 'n/a' : met ? 'met' : 'NOT MET',
      ];
    }),
  );
};

export const rowsJson = (rows: Row[]): unknown =>
  rows.map((row) => ({
    ...row,
    ferryMedian: median(row.ferry),
    referenceMedian: median(row.reference),
    ratio: ratioOf(row),
    target: { ...row.target, text: targetText(row) },
    met: metOf(row) ?? null,
  }));
