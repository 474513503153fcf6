import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LanpartyError } from '../../../src/util/errors.js';
import { silentLogger } from '../../../src/util/logger.js';
import { PortCounters, Switch } from '../../../src/switch/index.js';
import type { Port } from '../../../src/switch/index.js';
import { defaultServicesOptions, startServices } from '../../../src/services/index.js';
import { DHCPDISCOVER, DHCPOFFER } from '../../../src/wire/dhcp.js';
import { MAC_A, clientMsg, decodeDhcp, dhcpFrame } from './fakes.js';

const configErr = (path: string) => (e: unknown) => e instanceof LanpartyError && e.code === 'LP_ERR_CONFIG' && e.message.startsWith(path);

test('invalid options are LP_ERR_CONFIG errors naming the option', async () => {
  const base = defaultServicesOptions();
  await assert.rejects(startServices({ ...base, subnet: '10.77.0.1/24' }, new Switch(), silentLogger), configErr('services.subnet'));
  await assert.rejects(startServices({ ...base, subnet: '10.77.0.0/30' }, new Switch(), silentLogger), configErr('services.subnet'));
  await assert.rejects(startServices({ ...base, hostAddress: '10.78.0.1' }, new Switch(), silentLogger), configErr('services.hostAddress'));
  await assert.rejects(startServices({ ...base, dhcp: { ...base.dhcp!, poolStart: '10.77.0.200', poolEnd: '10.77.0.100' } }, new Switch(), silentLogger), configErr('services.dhcp.poolEnd'));
  await assert.rejects(startServices({ ...base, dhcp: { ...base.dhcp!, leaseSeconds: 5 } }, new Switch(), silentLogger), configErr('services.dhcp.leaseSeconds'));
  await assert.rejects(startServices({ ...base, dhcp: { ...base.dhcp!, staticLeases: [{ address: '10.77.0.5' }] } }, new Switch(), silentLogger), configErr('services.dhcp.staticLeases[0]'));
  await assert.rejects(startServices({ ...base, dhcp: { ...base.dhcp!, domain: 'bad domain' } }, new Switch(), silentLogger), configErr('services.dhcp.domain'));
});

test('through the real switch: a guest port gets an OFFER from the services port', async () => {
  const sw = new Switch();
  const services = await startServices({ ...defaultServicesOptions(), dhcp: { ...defaultServicesOptions().dhcp!, probeMs: 0 } }, sw, silentLogger);
  sw.addPort(services.port);
  const got: Buffer[] = [];
  const guest: Port = {
    id: 0, name: 'guest', kind: 'test', counters: new PortCounters(), maxFrameBytes: 1514,
    endpoint: () => '', send: (b, o, l) => { got.push(Buffer.from(b.subarray(o, o + l))); }, close: () => {},
  };
  sw.addPort(guest);
  const f = dhcpFrame(clientMsg(MAC_A, DHCPDISCOVER, { broadcast: true }));
  sw.input(guest, f, 0, f.length);
  assert.equal(got.length, 1);
  assert.equal(decodeDhcp(got[0]).dhcp.messageType, DHCPOFFER);
  assert.equal(services.port.counters.txFrames, 1);
  assert.equal(services.status().hostAddress, '10.77.0.1');
  sw.removePort(services.port);
  await services.close();
});
