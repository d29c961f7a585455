import { strict as assert } from 'node:assert';
import { isLoopbackHost, leaderAddressAllowed, parseAddress, DEFAULT_PORT } from '../../../../common/client/connection';

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

  it('lets a member send a client only to an IP leader address, on loopback exactly when the members given are', () => {
    const loopback = leaderAddressAllowed('127.0.0.1:7400,127.0.0.1:7401');
    assert.equal(loopback('127.0.0.1:7410'), true);
    assert.equal(loopback('[::1]:7410'), true);
    assert.equal(loopback('10.0.0.2:7410'), false, 'a plaintext channel over loopback stays there');
    const lan = leaderAddressAllowed('10.0.0.1:7400');
    assert.equal(lan('10.0.0.2:7410'), true);
    assert.equal(lan('[fd00::2]:7410'), true);
    assert.equal(lan('127.0.0.1:7410'), false);
    for (const bad of ['pve2:7410', '10.0.0.2', '', 'a:b:c']) assert.equal(lan(bad), false, bad);
    assert.equal(leaderAddressAllowed('10.0.0.1:7400', { viaMembers: true })('10.0.0.2:7410'), false);
  });
});
