/**
 * The foreground workload of `npm run bench:penalty`: what a VM is there for. Two modes, each its own
 * process so that neither delays the other:
 *
 * - `http DIR`: an HTTP server whose every request costs a little CPU (hashing 256 KiB) and reads a small
 *   file, so that CPU and disk contention both show in its latency. Prints `listening on PORT`.
 * - `disk DIR`: a disk-latency probe: a 4 KiB write and fdatasync every 50 ms, each timed. Prints `ready`;
 *   on SIGUSR2 it writes the latencies since the last SIGUSR2 (ms, one line of JSON) to stdout.
 *
 * SIGTERM stops either.
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

if (!dir || (mode !== 'http' && mode !== 'disk')) {
  process.stderr.write('usage: penalty-foreground http|disk DIR\n');
  process.exit(64);
}
if (mode === 'http') serveHttp();
else probeDisk();
