import { strict as assert } from 'node:assert';
import { createLogger } from '../../../../common/util/log';
import type { PlacementEvent, PlacementSource } from '../../../../coordinator/domain/placement/types';
import { PlacementMonitor } from '../../../../coordinator/service/placement-monitor';

const U1 = '8c3f1a2b-5d6e-4f70-8192-a3b4c5d6e7f8';
const U2 = '0b1c2d3e-4f50-4617-8283-94a5b6c7d8e9';

/** A source whose events the test plays. */
class PlayedSource implements PlacementSource {
  readonly kind = 'played';
  emit: (e: PlacementEvent) => void = () => {};
  async start(emit: (e: PlacementEvent) => void) {
    this.emit = emit;
    emit({ type: 'listed', vms: [{ uuid: U1, name: 'web1', state: 'running' }] });
  }
  async stop() {}
}

describe('placement monitor', () => {
  it('resolves names from the first listing on, and tells the coordinator when a migration starts and ends', async () => {
    const source = new PlayedSource();
    const lines: string[] = [];
    const monitor = new PlacementMonitor(source, 'h1', createLogger({ level: 'info', write: (l) => lines.push(l) }));
    await monitor.start();
    assert.equal(monitor.resolve('vm', 'web1'), U1);
    const told: unknown[][] = [];
    monitor.attach({
      migrationStarted: async (...args) => void told.push(['started', ...args]),
      migrationEnded: async (...args) => void told.push(['ended', ...args]),
    });
    source.emit({ type: 'migration', uuid: U1, name: 'web1', step: 'outgoing' });
    source.emit({ type: 'migration', uuid: U1, name: 'web1', step: 'left' });
    assert.deepEqual(told, [
      ['started', 'h1', U1, 'web1', 'out'],
      ['ended', 'h1', U1, 'web1', 'out', 'left'],
    ]);
    assert.equal(monitor.resolve('vm', 'web1'), 'web1');
  });

  it('logs a name that names two VMs once, and keeps coordinator.yaml’s ambiguous names as written', async () => {
    const source = new PlayedSource();
    const lines: string[] = [];
    const monitor = new PlacementMonitor(source, 'h1', createLogger({ level: 'warn', write: (l) => lines.push(l) }));
    await monitor.start();
    const clash: PlacementEvent = {
      type: 'listed',
      vms: [
        { uuid: U1, name: 'web1', state: 'running' },
        { uuid: U2, name: 'web1', state: 'running' },
      ],
    };
    source.emit(clash);
    source.emit(clash);
    assert.equal(lines.filter((l) => /names more than one VM/.test(l)).length, 1);
    assert.throws(() => monitor.resolve('vm', 'web1'), /names 2 VMs/);
    assert.equal(monitor.identityOf('web1'), 'web1');
  });

  it('names the configuration key when its source cannot be read', async () => {
    const broken: PlacementSource = {
      kind: 'libvirt',
      start: async () => {
        throw new Error('failed to connect to the hypervisor');
      },
      stop: async () => {},
    };
    await assert.rejects(
      new PlacementMonitor(broken, 'h1', createLogger({ level: 'error' })).start(),
      /coordinator\.yaml placement\.libvirt\): failed to connect to the hypervisor/,
    );
  });
});
