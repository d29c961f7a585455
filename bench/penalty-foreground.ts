/**
 * The foreground workload of `npm run bench:penalty`: what a VM is there for. Two modes, each its own
 * process so that neither delays the other:
 *
 * - `http DIR`: an HTTP server whose every request costs a little CPU (hashing 256 KiB) and reads a small
 *   file, so that CPU and disk contention both show in its latency. Prints `listening on PORT`.
 * - `disk DIR`: a disk-latency probe: a 4 KiB write and fdatasync every 50 ms, each timed. Prints `ready`;
 *   on SIGUSR2 it writes the latencies since the last SIGUSR2 (ms, one line of JSON) to stdout.
 * - `workset DIR MIB`: a reader of a working set (DIR/workset.bin, MIB MiB, made when missing) that reads
 *   it over and over, 1 MiB at a time, at 32 MiB/s: what a database's hot pages are. Reads it twice before
 *   it prints `ready`. On SIGUSR2 it writes `{"requestedBytes":N,"storageBytes":M}` since the last: what
 *   it read, and what of that the kernel had to fetch from storage (/proc/self/io read_bytes), so that
 *   1 - M/N is its page-cache hit rate, which falls when a backup's reads push its pages out.
 *
 * SIGTERM stops each.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';

const [mode, dir] = process.argv.slice(2);

function serveHttp(): void {
  const payload = Buffer.alloc(256 * 1024, 7);
  const pageFile = path.join(dir, 'page.bin');
  fs.writeFileSync(pageFile, Buffer.alloc(64 * 1024, 1));
  const server = http.createServer((_req, res) => {
    const digest = createHash('sha256').update(payload).digest('hex');
    fs.readFile(pageFile, (err, page) => {
      res.writeHead(err ? 500 : 200, { 'content-type': 'text/plain' });
      res.end(`${digest} ${page?.length ?? 0}\n`);
    });
  });
  server.listen(0, '127.0.0.1', () => {
    const address = server.address();
    process.stdout.write(`listening on ${typeof address === 'object' && address ? address.port : 0}\n`);
  });
  process.on('SIGTERM', () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  });
}

function probeDisk(): void {
  const fd = fs.openSync(path.join(dir, 'probe.bin'), 'w');
  const block = Buffer.alloc(4096, 3);
  let latenciesMs: number[] = [];
  let offset = 0;
  const timer = setInterval(() => {
    const t0 = process.hrtime.bigint();
    fs.writeSync(fd, block, 0, block.length, offset);
    fs.fdatasyncSync(fd);
    latenciesMs.push(Number(process.hrtime.bigint() - t0) / 1e6);
    offset = (offset + block.length) % (64 * 1024 * 1024); // cycle over 64 MiB: the file does not grow without end
  }, 50);
  process.on('SIGUSR2', () => {
    process.stdout.write(`${JSON.stringify(latenciesMs)}\n`);
    latenciesMs = [];
  });
  process.on('SIGTERM', () => {
    clearInterval(timer);
    fs.closeSync(fd);
    process.exit(0);
  });
  process.stdout.write('ready\n');
}

const MiB = 1024 * 1024;
/** The working set's read rate: a pass over a few hundred MiB every few seconds, as hot data is reread. */
const WORKSET_BYTES_PER_SEC = 32 * MiB;
const WORKSET_TICK_MS = 10;

/** Bytes this process had fetched from storage (read_bytes of /proc/self/io): page-cache misses. */
function storageReadBytes(): number {
  return Number(/^read_bytes: (\d+)/m.exec(fs.readFileSync('/proc/self/io', 'utf8'))?.[1] ?? 0);
}

function readWorkingSet(mib: number): void {
  const file = path.join(dir, 'workset.bin');
  if (!fs.existsSync(file) || fs.statSync(file).size !== mib * MiB) {
    const out = fs.openSync(file, 'w');
    for (let i = 0; i < mib; i++)
      fs.writeSync(out, createHash('sha512').update(String(i)).digest().toString('hex').repeat(8192));
    fs.fsyncSync(out);
    fs.closeSync(out);
  }
  const fd = fs.openSync(file, 'r');
  const size = mib * MiB;
  const chunk = Buffer.alloc(MiB);
  let offset = 0;
  const readChunk = () => {
    const n = fs.readSync(fd, chunk, 0, chunk.length, offset);
    offset = (offset + n) % size;
    return n;
  };
  for (let read = 0; read < 2 * size;) read += readChunk();
  let requested = 0;
  let storage0 = storageReadBytes();
  const began = performance.now();
  let done = 0;
  // Each tick reads what is due by now: the rate holds when a tick comes late.
  const timer = setInterval(() => {
    const due = ((performance.now() - began) / 1000) * WORKSET_BYTES_PER_SEC;
    while (done < due) {
      const n = readChunk();
      done += n;
      requested += n;
    }
  }, WORKSET_TICK_MS);
  process.on('SIGUSR2', () => {
    const storage = storageReadBytes();
    process.stdout.write(`${JSON.stringify({ requestedBytes: requested, storageBytes: storage - storage0 })}\n`);
    requested = 0;
    storage0 = storage;
  });
  process.on('SIGTERM', () => {
    clearInterval(timer);
    fs.closeSync(fd);
    process.exit(0);
  });
  process.stdout.write('ready\n');
}

if (!dir || !['http', 'disk', 'workset'].includes(mode)) {
  process.stderr.write('usage: penalty-foreground http|disk DIR, or workset DIR MIB\n');
  process.exit(64);
}
if (mode === 'http') serveHttp();
else if (mode === 'disk') probeDisk();
else readWorkingSet(Number(process.argv[4]));
