import { strict as assert } from 'node:assert';
import * as grpc from '@grpc/grpc-js';
import { errorText } from '../../../../common/client/call-status';

describe('call status texts', () => {
  it("says what a failed call says on one line, without grpc-js's empty Resolution note", () => {
    const refused = Object.assign(new Error('14 UNAVAILABLE: No connection established'), {
      code: grpc.status.UNAVAILABLE,
      details: 'No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:7499. Resolution note: ',
    });
    assert.equal(
      errorText(refused),
      'No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:7499',
    );
    const multiLine = Object.assign(new Error('x'), {
      code: grpc.status.UNAVAILABLE,
      details: 'handshake failed:\n  bad\n',
    });
    assert.equal(errorText(multiLine), 'handshake failed: bad');
    assert.equal(errorText(new Error('plain')), 'plain', 'not a call: its message');
  });
});
