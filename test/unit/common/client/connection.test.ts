import { strict as assert } from 'node:assert';
import { isLoopbackHost, parseAddress, DEFAULT_PORT } from '../../../../common/client/connection';

describe('connection', () => {
  it('parses host:port, bracketed IPv6 and a bare host', () => {
    assert.deepEqual(parseAddress('10.0.0.5:7000'), { host: '10.0.0.5', port: 7000 });
    assert.deepEqual(parseAddress('[::1]:7401'), { host: '::1', port: 7401 });
    assert.deepEqual(parseAddress('coordinator.lan'), { host: 'coordinator.lan', port: DEFAULT_PORT });
  });

  it('rejects what is not an address, naming it', () => {
    assert.throws(() => parseAddress('a:b:c'), /a:b:c/);
    assert.throws(() => parseAddress('host:99999'), /bad port/);
  });

  it('knows loopback addresses from the rest', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', '::1', 'localhost']) assert.equal(isLoopbackHost(h), true, h);
    for (const h of ['10.0.0.1', '0.0.0.0', '::', 'example.org']) assert.equal(isLoopbackHost(h), false, h);
  });
});
