import { strict as assert } from 'node:assert';
import { TOKEN_ENV, tokenEnv } from '../../../../common/backup-run/token-env';
import { token } from './guarded-run-fakes';

describe('token environment', () => {
  it("adds the token's id, fencing, kind, place, job and slot ends to the environment", () => {
    const t = token({
      tokenId: 'tok-9',
      fencing: 1234567890123,
      kind: 'TOKEN_KIND_HYPERVISOR',
      host: 'pve-1',
      vm: 'vm-101',
      job: 'vzdump',
      slot: { startUnixMs: 1_000, expectedEndUnixMs: 61_000, windowEndUnixMs: 3_601_000 },
    });
    const base = { PATH: '/usr/bin', HOME: '/root' };
    assert.deepEqual(tokenEnv(base, t), {
      PATH: '/usr/bin',
      HOME: '/root',
      HEADROOM_TOKEN_ID: 'tok-9',
      HEADROOM_FENCING: '1234567890123',
      HEADROOM_KIND: 'HYPERVISOR',
      HEADROOM_HOST: 'pve-1',
      HEADROOM_VM: 'vm-101',
      HEADROOM_JOB: 'vzdump',
      HEADROOM_SLOT_END_UNIX_MS: '61000',
      HEADROOM_WINDOW_END_UNIX_MS: '3601000',
    });
    assert.deepEqual(base, { PATH: '/usr/bin', HOME: '/root' }, 'the base is left alone');
  });

  it('says 0 for a window that was not given', () => {
    const env = tokenEnv({}, token({ slot: { startUnixMs: 1, expectedEndUnixMs: 2, windowEndUnixMs: 0 } }));
    assert.equal(env.HEADROOM_WINDOW_END_UNIX_MS, '0');
  });

  it('removes token variables inherited from whoever started us when there is no token', () => {
    const inherited = Object.fromEntries(Object.values(TOKEN_ENV).map((name) => [name, 'stale']));
    assert.deepEqual(tokenEnv({ PATH: '/bin', ...inherited }, undefined), { PATH: '/bin' });
    assert.equal(tokenEnv({ ...inherited }, token()).HEADROOM_FENCING, '7', 'a held token replaces them');
  });
});
