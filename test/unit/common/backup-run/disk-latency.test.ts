import { strict as assert } from 'node:assert';
import { parseDeviceIoTimes, slowestAwaitMs } from '../../../../common/backup-run/disk-latency';

// Captured on the development machine (Linux 6.18, 20 fields: discards and flushes) two seconds apart.
const BEFORE = [
  '   7       0 loop0 2810 108 47880 239 2038 1491 14632 1460 0 1576 2897 0 0 0 0 1270 1197',
  ' 254       0 vda 391629 31826 8778642 282352 977268 510579 471097096 1031505 0 276296 1436757 495783 1149 458292632 104925 155509 17974',
].join('\n');
const AFTER = [
  '   7       0 loop0 2810 108 47880 239 2038 1491 14632 1460 0 1576 2897 0 0 0 0 1270 1197',
  ' 254       0 vda 391631 31826 8778658 282353 977270 510579 471097112 1031506 0 276296 1436760 495787 1149 458292664 104926 155509 17974',
].join('\n');
// A 4.x kernel's 14 fields: no discards.
const OLD = ' 253       0 vda 500 10 4000 40 600 20 9000 70 0 100 110';
const onlyVda = (d: string) => d === 'vda';

describe('disk latency', () => {
  it("reads each device's completed I/Os and their time, discards included, flushes not", () => {
    assert.deepEqual(
      [...parseDeviceIoTimes(BEFORE, onlyVda)],
      [['vda', { ios: 391629 + 977268 + 495783, ms: 282352 + 1031505 + 104925 }]],
    );
    assert.deepEqual(parseDeviceIoTimes(OLD, onlyVda).get('vda'), { ios: 1100, ms: 110 });
  });

  it('is the time per I/O between two samples (iostat await), of the slowest device', () => {
    // vda: 2 reads (1 ms), 2 writes (1 ms), 4 discards (1 ms) → 3 ms over 8 I/Os.
    const vda = slowestAwaitMs(parseDeviceIoTimes(BEFORE, onlyVda), parseDeviceIoTimes(AFTER, onlyVda));
    assert.equal(vda, 3 / 8);
    const slow = new Map([['vdb', { ios: 10, ms: 500 }]]);
    const slower = new Map([['vdb', { ios: 20, ms: 1000 }]]);
    const before = new Map([...parseDeviceIoTimes(BEFORE, onlyVda), ...slow]);
    const after = new Map([...parseDeviceIoTimes(AFTER, onlyVda), ...slower]);
    assert.equal(slowestAwaitMs(before, after), 50);
  });

  it('is 0 when nothing completed, and leaves out a device that appeared or was reset', () => {
    const same = parseDeviceIoTimes(BEFORE, onlyVda);
    assert.equal(slowestAwaitMs(same, same), 0);
    assert.equal(slowestAwaitMs(new Map(), same), 0);
    assert.equal(slowestAwaitMs(same, new Map([['vda', { ios: 1, ms: 1 }]])), 0);
  });

  it('refuses a line of an included device that is not diskstats, naming it', () => {
    assert.throws(() => parseDeviceIoTimes(' 254 0 vda 1 2 3', onlyVda), /not a diskstats line: " 254 0 vda 1 2 3"/);
    assert.throws(() => parseDeviceIoTimes(OLD.replace('500', '-5'), onlyVda), /not a diskstats line/);
    assert.equal(parseDeviceIoTimes(' 7 0 loop0 garbage', onlyVda).size, 0);
  });
});
