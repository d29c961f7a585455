/**
 * Device latency from /proc/diskstats: the average time an I/O took, queueing included (iostat's `await`),
 * between two samples. It is what a workload waiting on the disk feels, on kernels without PSI too (Veeam
 * steers its backups by the same figure, read from the datastore). Pure: two texts in, one figure out.
 *
 * Fields after major, minor and name (Documentation/admin-guide/iostats.rst): 1 reads completed, 4 ms
 * spent reading, 5 writes completed, 8 ms spent writing; since 4.18 12 discards completed, 15 ms spent
 * discarding; since 5.5 flushes (17, 18), which iostat leaves out of await and so do we.
 */

/** The cumulative counters of one device. */
export interface DeviceIoTimes {
  ios: number;
  ms: number;
}

/**
 * The completed I/Os and the time they took, per device `include` accepts.
 * @throws Error naming the line when one of those devices' lines is not diskstats as the kernel writes it.
 */
export function parseDeviceIoTimes(text: string, include: (device: string) => boolean): Map<string, DeviceIoTimes> {
  const out = new Map<string, DeviceIoTimes>();
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 3 || !include(f[2])) continue;
    if (f.length < 14 || f.slice(3).some((v) => !/^\d+$/.test(v))) throw new Error(`not a diskstats line: "${line}"`);
    const n = f.map(Number);
    const discards = f.length >= 18 ? { ios: n[14], ms: n[17] } : { ios: 0, ms: 0 };
    out.set(f[2], { ios: n[3] + n[7] + discards.ios, ms: n[6] + n[10] + discards.ms });
  }
  return out;
}

/**
 * The await of the slowest device between two samples, in ms per I/O: the slowest, because a workload on
 * one slow disk suffers whatever the others do. 0 when no device completed an I/O (nothing waited); a
 * device absent from either sample, or whose counters went back (removed and re-added), is left out.
 */
export function slowestAwaitMs(before: Map<string, DeviceIoTimes>, after: Map<string, DeviceIoTimes>): number {
  let slowest = 0;
  for (const [device, now] of after) {
    const was = before.get(device);
    if (!was || now.ios <= was.ios || now.ms < was.ms) continue;
    slowest = Math.max(slowest, (now.ms - was.ms) / (now.ios - was.ios));
  }
  return slowest;
}
