/**
 * Pressure stall information (PSI, /proc/pressure/{cpu,io,memory}, Linux 4.20+): the share of recent time
 * in which some (or all non-idle) tasks waited for a resource. It measures what a workload suffers — waiting —
 * rather than what it uses, which is why the budget controller prefers it to CPU percent and byte rates.
 * Pure: parses a file's text; reading it (and telling a missing PSI apart) is the collector's.
 *
 * Format (Documentation/accounting/psi.rst):
 *   some avg10=0.54 avg60=1.07 avg300=1.06 total=160874576
 *   full avg10=0.41 avg60=0.79 avg300=0.77 total=56266218
 * `full` is absent from /proc/pressure/cpu before Linux 5.13 (and reads 0 there since: it is undefined at
 * the system level).
 */

/** One line: percent of wall time stalled, averaged over 10 s, 60 s and 300 s; total stall time in µs. */
export interface StallAverages {
  avg10: number;
  avg60: number;
  avg300: number;
  totalUs: number;
}

export interface PressureStall {
  some: StallAverages;
  /** Absent where the kernel does not report it (cpu before 5.13). */
  full?: StallAverages;
}

const LINE = /^(some|full) avg10=(\d+\.\d\d) avg60=(\d+\.\d\d) avg300=(\d+\.\d\d) total=(\d+)$/;

/**
 * Parses one /proc/pressure file.
 * @throws Error naming the line when the text is not PSI as the kernel writes it (an unknown line, a
 * repeated one, a missing `some`, an average outside 0..100).
 */
export function parsePressureStall(text: string): PressureStall {
  const seen: Partial<Record<'some' | 'full', StallAverages>> = {};
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const m = LINE.exec(line);
    if (!m) throw new Error(`not a PSI line: "${line}"`);
    const kind = m[1] as 'some' | 'full';
    if (seen[kind]) throw new Error(`"${kind}" appears twice`);
    const [avg10, avg60, avg300] = [m[2], m[3], m[4]].map(Number);
    if ([avg10, avg60, avg300].some((v) => v > 100)) throw new Error(`an average above 100%: "${line}"`);
    seen[kind] = { avg10, avg60, avg300, totalUs: Number(m[5]) };
  }
  if (!seen.some) throw new Error('no "some" line');
  return seen.full ? { some: seen.some, full: seen.full } : { some: seen.some };
}
