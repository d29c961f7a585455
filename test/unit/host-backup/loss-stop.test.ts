import { strict as assert } from 'node:assert';
import type { ProcReader } from '../../../common/backup-run/budget/process-usage';
import { descendants } from '../../../host-backup/loss-stop';

/** /proc with processes given as pid → [ppid, state]. */
function fakeProc(procs: Record<number, [number, string]>): ProcReader {
  return {
    list: () => [...Object.keys(procs), 'self', 'meminfo'],
    read: (p) => {
      const [pid, file] = p.split('/');
      const e = procs[Number(pid)];
      if (!e || file !== 'stat') return undefined;
      return `${pid} (x y) ${e[1]} ${e[0]} ${pid} 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0`;
    },
  };
}

describe('host-backup: stopping a backup whose hold lost its token', () => {
  it("finds every live process the backup tool runs (vzdump's bash, tar, cstream, gzip), and nothing else", () => {
    const proc = fakeProc({
      1: [0, 'S'],
      100: [1, 'S'], // vzdump
      200: [100, 'S'], // bash -c 'tar | cstream | gzip'
      201: [200, 'S'],
      202: [200, 'R'],
      203: [200, 'Z'], // already exited
      300: [1, 'S'], // the holder, reparented to init
    });
    assert.deepEqual(descendants(100, proc), [200, 201, 202]);
    assert.deepEqual(descendants(300, proc), []);
  });
});
