import { strict as assert } from 'node:assert';
import { describeOutcome } from '../../../../coordinator/store/history-records';

describe("RELEASED's detail", () => {
  const outcome = { success: true, exitCode: 0, durationMs: 3324, message: '' };

  it('says the bytes written in binary units when the holder measured them, 0 included', () => {
    assert.equal(describeOutcome({ ...outcome, bytes: 71_885 }), 'success, exit 0, 70.2 KiB written, took 3.324s');
    assert.equal(describeOutcome({ ...outcome, bytes: 0 }), 'success, exit 0, 0 B written, took 3.324s');
  });

  it('says the bytes are unknown when the holder did not say, never 0', () => {
    assert.equal(
      describeOutcome({ ...outcome, success: false, exitCode: 3, message: 'exit code 3', consistency: 'CRASH' }),
      'failure, exit 3, bytes unknown, took 3.324s, crash-consistent: exit code 3',
    );
  });
});
