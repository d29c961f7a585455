/**
 * Aligned plain-text tables for headroomctl: a header row, columns padded to their widest cell, numbers
 * right-aligned, long cells cut with an ellipsis, and a one-line message instead of an empty table.
 * Widths count code points, which is right for the ASCII and the few symbols (→, …) we print.
 */

export interface Column {
  header: string;
  /** Default left. Numbers read better right-aligned. */
  align?: 'left' | 'right';
  /** Cells longer than this many characters are cut and end with "…". Default: no limit. */
  maxWidth?: number;
  /** Pad the column to at least this many characters: keeps streamed rows aligned with their header. */
  minWidth?: number;
}

export interface TableOptions {
  /** Printed instead of the table when there are no rows, e.g. "no tokens". */
  empty?: string;
  /** Spaces between columns. Default 2. */
  gap?: number;
  /** Print the header row. Default true; false for rows streamed under a header printed earlier. */
  header?: boolean;
}

export const ELLIPSIS = '…';

function width(s: string): number {
  return [...s].length;
}

/** Cuts `s` to at most `max` characters, the last one an ellipsis when anything was cut. */
export function truncate(s: string, max: number): string {
  if (max < 1) return '';
  const chars = [...s];
  if (chars.length <= max) return s;
  return chars.slice(0, max - 1).join('') + ELLIPSIS;
}

function pad(s: string, w: number, align: 'left' | 'right'): string {
  const fill = ' '.repeat(Math.max(0, w - width(s)));
  return align === 'right' ? fill + s : s + fill;
}

/**
 * Renders rows under their column headers, one line each, lines joined with "\n" and no trailing
 * newline. Control characters in cells (a newline in a detail text) are shown as spaces so that a row
 * stays one line. A row shorter than the columns is padded with empty cells.
 */
export function formatTable(
  columns: readonly Column[],
  rows: readonly (readonly string[])[],
  options: TableOptions = {},
): string {
  if (rows.length === 0) return options.empty ?? '';
  const gap = ' '.repeat(options.gap ?? 2);
  const cells = rows.map((row) =>
    columns.map((col, i) => {
      const raw = (row[i] ?? '').replace(/[\u0000-\u001f\u007f]/g, ' ');
      return col.maxWidth === undefined ? raw : truncate(raw, col.maxWidth);
    }),
  );
  const widths = columns.map((col, i) =>
    Math.max(col.minWidth ?? 0, width(col.header), ...cells.map((r) => width(r[i]))),
  );
  const line = (r: readonly string[]) =>
    r
      .map((c, i) => pad(c, widths[i], columns[i].align ?? 'left'))
      .join(gap)
      .trimEnd();
  const lines = cells.map(line);
  if (options.header ?? true) lines.unshift(line(columns.map((c) => c.header)));
  return lines.join('\n');
}

/** The header row alone, as formatTable would print it above rows no wider than the columns' minWidth. */
export function formatHeader(columns: readonly Column[], options: Pick<TableOptions, 'gap'> = {}): string {
  return formatTable(columns, [columns.map((c) => c.header)], { ...options, header: false });
}

/** Renders `label: value` pairs with the values aligned, for one object (a policy, a host). */
export function formatFields(fields: readonly (readonly [string, string])[]): string {
  const w = Math.max(0, ...fields.map(([k]) => width(k)));
  return fields.map(([k, v]) => `${pad(`${k}:`, w + 1, 'left')} ${v}`.trimEnd()).join('\n');
}
