/** Reading what the coordinator probe (coordinator-probe.ts) wrote at a window's end: it may take a moment. */
import * as fs from 'node:fs';

/** `parse(file)` once the file exists (waiting up to 5 s); undefined when the probe wrote none. */
export async function readProbeFile<T>(file: string, parse: (file: string) => T): Promise<T | undefined> {
  for (let i = 0; i < 50 && !fs.existsSync(file); i++) await new Promise((r) => setTimeout(r, 100));
  return fs.existsSync(file) ? parse(file) : undefined;
}
