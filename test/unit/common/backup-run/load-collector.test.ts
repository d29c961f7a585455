import { strict as assert } from 'node:assert';
import { ManualClock } from '../../../../common/util/clock';
import {
  FileSystemView,
  parseDiskstats,
  parseNetDev,
  parseProcStatCpu,
  physicalDisks,
  physicalInterfaces,
  SystemLoadCollector,
} from '../../../../common/backup-run/load-collector';

const STAT = (user: number, idle: number, steal = 0) =>
  `cpu  ${user} 0 100 ${idle} 50 0 10 ${steal} 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\ncpu1 1 2 3 4 5 6 7 8 0 0\nintr 12345\n`;

const DISKSTATS = (readSectors: number, writeSectors: number) =>
  [
    `   7       0 loop0 100 0 ${readSectors} 0 0 0 0 0 0 0 0`,
    ` 253       0 vda 500 10 ${readSectors} 40 600 20 ${writeSectors} 70 0 100 110`,
    ` 253       1 vda1 400 10 ${readSectors} 40 600 20 ${writeSectors} 70 0 100 110`,
    ` 252       0 dm-0 500 0 ${readSectors} 40 600 0 ${writeSectors} 70 0 100 110`,
  ].join('\n');

const NETDEV = (rx: number, tx: number) =>
  [
    'Inter-|   Receive                                                |  Transmit',
    ' face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed',
    `    lo: ${rx} 10 0 0 0 0 0 0 ${tx} 10 0 0 0 0 0 0`,
    `  eth0: ${rx} 10 0 0 0 0 0 0 ${tx} 10 0 0 0 0 0 0`,
    `docker0: ${rx} 10 0 0 0 0 0 0 ${tx} 10 0 0 0 0 0 0`,
  ].join('\n');

/** /proc and /sys as a map of files; directories list their children. */
class FakeFs implements FileSystemView {
  constructor(public files: Record<string, string>) {}
  readFile(p: string): string {
    if (!(p in this.files)) throw Object.assign(new Error(`ENOENT ${p}`), { code: 'ENOENT' });
    return this.files[p];
  }
  readdir(p: string): string[] {
    const prefix = `${p}/`;
    const names = new Set(
      Object.keys(this.files)
        .filter((f) => f.startsWith(prefix))
        .map((f) => f.slice(prefix.length).split('/')[0]),
    );
    if (names.size === 0) throw Object.assign(new Error(`ENOENT ${p}`), { code: 'ENOENT' });
    return [...names];
  }
  exists(p: string): boolean {
    return Object.keys(this.files).some((f) => f === p || f.startsWith(`${p}/`));
  }
}

const SYS = {
  '/sys/block/vda/device/x': '',
  '/sys/block/loop0/stat': '',
  '/sys/block/dm-0/stat': '',
  '/sys/class/net/lo/x': '',
  '/sys/class/net/eth0/device/x': '',
  '/sys/class/net/docker0/x': '',
};

describe('load collector', () => {
  it('parses the aggregate cpu line, counting steal as busy and iowait as idle', () => {
    assert.deepEqual(parseProcStatCpu(STAT(1000, 5000, 40)), {
      busy: 1000 + 100 + 10 + 40,
      total: 1000 + 100 + 5000 + 50 + 10 + 40,
    });
    assert.equal(parseProcStatCpu('intr 1\n'), undefined);
  });

  it('counts whole physical disks only, in 512-byte sectors', () => {
    const fs = new FakeFs(SYS);
    const disks = physicalDisks(fs);
    assert.deepEqual([...disks], ['vda']);
    assert.deepEqual(
      parseDiskstats(DISKSTATS(10, 20), (d) => disks.has(d)),
      { a: 10 * 512, b: 20 * 512 },
    );
  });

  it('counts interfaces backed by a device, or all but lo when there is none', () => {
    const include = physicalInterfaces(new FakeFs(SYS));
    assert.deepEqual(parseNetDev(NETDEV(1000, 2000), include), { a: 1000, b: 2000 });
    const container = physicalInterfaces(new FakeFs({ '/sys/class/net/lo/x': '', '/sys/class/net/eth0/x': '' }));
    assert.deepEqual(parseNetDev(NETDEV(1000, 2000), container), { a: 2000, b: 4000 }); // eth0 + docker0
  });

  it("reports rates over the time since the previous sample, the backups' share of CPU over all cores", async () => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1));
    const fs = new FakeFs({
      ...SYS,
      '/proc/stat': STAT(1000, 5000),
      '/proc/diskstats': DISKSTATS(0, 0),
      '/proc/net/dev': NETDEV(0, 0),
    });
    const backup = { cpuSeconds: 7, ioBytes: 1e9 };
    const collector = new SystemLoadCollector({
      clock,
      fs,
      memory: async () => ({ usedBytes: 3e9, totalBytes: 8e9 }),
      loadavg: () => [0.5, 0.25, 0.125],
      backupUsage: () => ({ ...backup }),
    });
    collector.prime();
    clock.advance(2_000);
    // 2 s later: 300 busy ticks of 400 in total, 2 MB read, 1 MB written, 4 MB in, 2 MB out; the backup
    // used 1 s of CPU (a quarter of the 2 cores' 4 s) and 1.2 MB of I/O.
    fs.files['/proc/stat'] = STAT(1300, 5100);
    fs.files['/proc/diskstats'] = DISKSTATS(2e6 / 512, 1e6 / 512);
    fs.files['/proc/net/dev'] = NETDEV(4e6, 2e6);
    backup.cpuSeconds += 1;
    backup.ioBytes += 1.2e6;
    const r = await collector.sample();
    assert.deepEqual(r, {
      sampledUnixMs: Date.UTC(2026, 0, 1) + 2_000,
      cpuPercent: 75,
      memUsedBytes: 3e9,
      memTotalBytes: 8e9,
      diskReadBytesPerSec: 1e6,
      diskWriteBytesPerSec: 5e5,
      netRxBytesPerSec: 2e6,
      netTxBytesPerSec: 1e6,
      load1: 0.5,
      load5: 0.25,
      load15: 0.125,
      backupCpuPercent: 25,
      backupIoBytesPerSec: 6e5,
      // No PSI files here; and no await: this fixture's fractional sector counts are no kernel's diskstats.
      pressureMissing: '/proc/pressure/cpu: ENOENT',
    });
  });

  it("reports PSI as read, and the slowest disk's await between two samples", async () => {
    const clock = new ManualClock();
    const psi = (some: string, full: string) =>
      `some avg10=${some} avg60=1.07 avg300=1.06 total=160874576\nfull avg10=${full} avg60=0.79 avg300=0.77 total=56266218\n`;
    const stats = (vdaIos: number, vdaMs: number) =>
      ` 254       0 vda ${vdaIos} 0 8 ${vdaMs} 0 0 0 0 0 100 110\n   7       0 loop0 9999 0 8 99999 0 0 0 0 0 1 1`;
    const fs = new FakeFs({
      ...SYS,
      '/proc/stat': STAT(1000, 5000),
      '/proc/diskstats': stats(100, 1000),
      '/proc/net/dev': NETDEV(0, 0),
      '/proc/pressure/cpu': 'some avg10=2.41 avg60=4.26 avg300=10.04 total=6411120514\n',
      '/proc/pressure/io': psi('12.50', '3.00'),
      '/proc/pressure/memory': psi('0.00', '0.00'),
    });
    const collector = new SystemLoadCollector({ clock, fs, memory: async () => ({ usedBytes: 1, totalBytes: 2 }) });
    collector.prime();
    clock.advance(1_000);
    fs.files['/proc/diskstats'] = stats(150, 2500); // 50 I/Os took 1,500 ms: 30 ms each; loop0 is not a disk
    const r = await collector.sample();
    assert.deepEqual(r.cpuPressure, { someAvg10: 2.41, someAvg60: 4.26, fullAvg10: 0, fullAvg60: 0 });
    assert.deepEqual(r.ioPressure, { someAvg10: 12.5, someAvg60: 1.07, fullAvg10: 3, fullAvg60: 0.79 });
    assert.equal(r.pressureMissing, undefined);
    assert.equal(r.diskAwaitMs, 30);
  });

  it('says PSI is missing, and why, when a pressure file cannot be read (psi=0: EOPNOTSUPP)', async () => {
    const fs = new FakeFs({ ...SYS, '/proc/stat': STAT(1000, 5000), '/proc/pressure/cpu': '' });
    fs.readFile = (p: string) => {
      if (p.startsWith('/proc/pressure/'))
        throw Object.assign(new Error('Operation not supported'), { code: 'EOPNOTSUPP' });
      return FakeFs.prototype.readFile.call(fs, p);
    };
    const collector = new SystemLoadCollector({
      clock: new ManualClock(),
      fs,
      memory: async () => ({ usedBytes: 1, totalBytes: 2 }),
    });
    const r = await collector.sample();
    assert.equal(r.pressureMissing, '/proc/pressure/cpu: EOPNOTSUPP');
    assert.equal(r.ioPressure, undefined);
    assert.equal(r.diskAwaitMs, undefined); // no /proc/diskstats, no previous sample
  });

  it('reports zero rates rather than garbage on the first sample and when counters go back', async () => {
    const clock = new ManualClock();
    const fs = new FakeFs({
      ...SYS,
      '/proc/stat': STAT(1000, 5000),
      '/proc/diskstats': DISKSTATS(100, 100),
      '/proc/net/dev': NETDEV(10, 10),
    });
    const collector = new SystemLoadCollector({
      clock,
      fs,
      memory: async () => ({ usedBytes: 1, totalBytes: 2 }),
      loadavg: () => [0, 0, 0],
    });
    const first = await collector.sample();
    assert.equal(first.cpuPercent, 0);
    assert.equal(first.diskReadBytesPerSec, 0);
    clock.advance(1_000);
    fs.files['/proc/net/dev'] = NETDEV(0, 0); // interface reset
    const second = await collector.sample();
    assert.equal(second.netRxBytesPerSec, 0);
  });
});
