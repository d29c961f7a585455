import { strict as assert } from 'node:assert';
import { createCliLogger } from '../../../ctl/cli-log';
import { cleanDetails } from '../../../common/client/call-status';

describe('ctl messages', () => {
  it('cleans status details into one line', () => {
    assert.equal(
      cleanDetails('No connection established. Last error: alert\n certificate required (t). Resolution note: '),
      'No connection established. Last error: alert certificate required (t)',
    );
    assert.equal(cleanDetails('no host x'), 'no host x');
  });

  it("logs shared code's warnings as CLI messages, hiding debug unless asked", () => {
    const lines: string[] = [];
    const log = createCliLogger('headroomctl', (l) => lines.push(l), {});
    log.warn('connecting without TLS', { address: '127.0.0.1:1' });
    log.child({ job: 'j' }).error('boom', { code: 3 });
    log.info('hidden');
    log.debug('hidden');
    assert.deepEqual(lines, [
      'headroomctl: warning: connecting without TLS (address=127.0.0.1:1)',
      'headroomctl: error: boom (job=j, code=3)',
    ]);
    const verbose: string[] = [];
    createCliLogger('headroomctl', (l) => verbose.push(l), { HEADROOM_LOG: 'debug' }).debug('shown');
    assert.deepEqual(verbose, ['headroomctl: debug: shown']);
    const quiet: string[] = [];
    createCliLogger('headroomctl', (l) => quiet.push(l), { HEADROOM_LOG: 'error' }).warn('hidden');
    assert.deepEqual(quiet, []);
  });
});
