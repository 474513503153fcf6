import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parse as parseToml } from 'smol-toml';
import { buildConfig, parseLocator, defaultPortUrls } from '../../../src/config/index.js';
import { LanpartyError } from '../../../src/util/errors.js';

function configError(fn: () => unknown, re: RegExp) {
  assert.throws(fn, (e: unknown) => e instanceof LanpartyError && e.code === 'LP_ERR_CONFIG' && re.test(e.message));
}

test('defaults listen on this host only', () => {
  const c = buildConfig({});
  assert.equal(c.ports.length, 5);
  for (const p of c.ports) {
    if (p.scheme === 'mcast') { assert.equal(p.localaddr, '127.0.0.1'); assert.equal(p.ttl, 1); }
    if (p.scheme === 'udp' || p.scheme === 'tcp') assert.equal(p.host, '127.0.0.1');
  }
  assert.equal(c.switch.macAgeMs, 300_000);
  assert.ok(defaultPortUrls('/x').includes('unix:///x/stream.sock'));
});

test('locators parse with parameters', () => {
  assert.deepEqual(parseLocator('mcast://239.1.2.3:5555?localaddr=10.0.0.1&ttl=2', 'f'),
    { scheme: 'mcast', url: 'mcast://239.1.2.3:5555?localaddr=10.0.0.1&ttl=2', group: '239.1.2.3', port: 5555, localaddr: '10.0.0.1', ttl: 2, stp: true });
  assert.deepEqual(parseLocator('udp://127.0.0.1:1?peer=127.0.0.1:2', 'f'),
    { scheme: 'udp', url: 'udp://127.0.0.1:1?peer=127.0.0.1:2', host: '127.0.0.1', port: 1, peers: [{ host: '127.0.0.1', port: 2 }], accept: null });
  assert.equal((parseLocator('tcp+connect://127.0.0.1:5', 'f') as { connect: boolean }).connect, true);
});

test('bad locators name the field and the fix', () => {
  configError(() => parseLocator('vxlna://1.2.3.4:1', 'ports[2].url'), /^ports\[2\]\.url: unknown scheme "vxlna".*expected mcast, udp/);
  configError(() => parseLocator('mcast://10.0.0.1:5', 'x'), /not an IPv4 multicast group/);
  configError(() => parseLocator('udp://127.0.0.1:70000', 'x'), /port 70000 is out of range/);
  configError(() => parseLocator('udp://127.0.0.1', 'x'), /missing port/);
  configError(() => parseLocator('tcp://127.0.0.1:5?ttl=1', 'x'), /unknown parameter "ttl"/);
  configError(() => parseLocator('unix://relative', 'x'), /absolute path/);
  configError(() => parseLocator('mcast://239.0.0.1:5?ttl=300', 'x'), /ttl 300 is out of range/);
  configError(() => parseLocator('mcast://239.0.0.1:5?stp=no', 'x'), /stp=no must be 0 or 1/);
  assert.equal((parseLocator('mcast://239.0.0.1:5?stp=0', 'x') as { stp: boolean }).stp, false);
});

test('TOML config: fields validated with their path', () => {
  const doc = parseToml(`
[switch]
mac_age_seconds = 60
mac_table_size = 100

[[port]]
url = "udp://127.0.0.1:4000"

[[port]]
url = "tcp://127.0.0.1:4001"

[dhcp]
lease_seconds = 600
key_by = "client-id"
`) as Record<string, unknown>;
  const c = buildConfig(doc);
  assert.equal(c.switch.macAgeMs, 60_000);
  assert.equal(c.ports.length, 2);
  assert.equal(c.services.dhcp!.keyBy, 'client-id');
  configError(() => buildConfig({ switch: { mac_age_secs: 5 } }), /^switch\.mac_age_secs: unknown key/);
  configError(() => buildConfig({ switch: { mac_age_seconds: 'x' } }), /^switch\.mac_age_seconds: expected a whole number/);
  configError(() => buildConfig({ port: [{ url: 'udp://127.0.0.1:1' }, { url: 'udp://127.0.0.1:1' }] }), /^port\[1\]\.url: .*same address as port\[0\]/);
  configError(() => buildConfig({ port: [{}] }), /^port\[0\]\.url: missing/);
  configError(() => buildConfig({ dhcp: { key_by: 'uuid' } }), /^dhcp\.key_by: "uuid" is not one of/);
  configError(() => buildConfig({ dhcp: { subnet: '10.0.0.1/24' } }), /^dhcp\.subnet: .*host bits set/);
});

test('flags override the file and name the flag in errors', () => {
  const c = buildConfig({ switch: { mac_age_seconds: 60 } }, { macAgeSeconds: '10', ports: ['tcp://127.0.0.1:9'], dhcp: false });
  assert.equal(c.switch.macAgeMs, 10_000);
  assert.equal(c.ports.length, 1);
  assert.equal(c.services.dhcp, null);
  configError(() => buildConfig({}, { macAgeSeconds: '0' }), /^--mac-age: 0 is out of range/);
  configError(() => buildConfig({}, { ports: ['nope'] }), /^--port #1: "nope" is not a locator/);
});

test('busy polling: 50 µs (budget 20% of a core) by default, from the file or the flags, in range', () => {
  assert.equal(buildConfig({}).switch.busyPollUs, 50);
  assert.equal(buildConfig({}).switch.busyPollBudgetPercent, 20);
  assert.equal(buildConfig({ switch: { busy_poll_us: 0 } }).switch.busyPollUs, 0, 'off');
  assert.equal(buildConfig({ switch: { busy_poll_us: 0 } }, { busyPollUs: '100' }).switch.busyPollUs, 100);
  assert.equal(buildConfig({ switch: { busy_poll_budget_percent: 5 } }).switch.busyPollBudgetPercent, 5);
  configError(() => buildConfig({ switch: { busy_poll_us: 5000 } }), /^switch\.busy_poll_us: 5000 is out of range/);
  configError(() => buildConfig({}, { busyPollUs: 'fast' }), /^--busy-poll: /);
  configError(() => buildConfig({}, { busyPollBudgetPercent: '0' }), /^--busy-poll-budget: 0 is out of range/);
  assert.equal(buildConfig({ switch: { mac_table_size: 100 } }).switch.macPortSize, 100, 'one port may fill the table unless limited');
  assert.equal(buildConfig({ switch: { mac_port_size: 10 } }).switch.macPortSize, 10);
  configError(() => buildConfig({ switch: { mac_port_size: 0 } }), /^switch\.mac_port_size: 0 is out of range/);
});
