/**
 * lanparty libvirt: the <interface> for each type, checked against libvirt's own schema with
 * virt-xml-validate (Debian: libvirt-clients). virt-xml-validate validates whole domains, so each
 * interface goes into a minimal domain. Without virt-xml-validate the schema test is skipped with
 * the reason; the shape tests always run.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { interfaceXml, LIBVIRT_TYPES } from '../../../src/cli/libvirt.js';
import type { TransportInfo } from '../../../src/cli/qemu.js';
import { formatMac, macForName } from '../../../src/wire/ethernet.js';

const ALL: TransportInfo[] = [
  { url: 'mcast://230.0.0.1:33000?localaddr=127.0.0.1&ttl=1', kind: 'mcast', state: 'joined', address: '', netdev: 'socket,id=n0,mcast=230.0.0.1:33000,localaddr=127.0.0.1' },
  { url: 'udp://127.0.0.1:33001', kind: 'udp', state: 'listening', address: '', netdev: 'dgram,id=n0,local.type=inet,local.host=127.0.0.1,local.port=47303,remote.type=inet,remote.host=127.0.0.1,remote.port=33001' },
  { url: 'tcp://127.0.0.1:33002', kind: 'tcp', state: 'listening', address: '', netdev: 'stream,id=n0,server=off,addr.type=inet,addr.host=127.0.0.1,addr.port=33002' },
  { url: 'tcp+connect://127.0.0.1:5555', kind: 'tcp', state: 'connecting', address: '', netdev: 'stream,id=n0,server=on,addr.type=inet,addr.host=127.0.0.1,addr.port=5555' },
];

function which(cmd: string): string | undefined {
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(':')) if (dir && existsSync(join(dir, cmd))) return join(dir, cmd);
  return undefined;
}
const validator = () => which('virt-xml-validate');
const skipSchema = !validator() ? 'virt-xml-validate is not installed (apt-get install libvirt-clients)'
  : !which('xmllint') ? 'xmllint is not installed (apt-get install libxml2-utils); virt-xml-validate runs it' : undefined;

function domain(iface: string): string {
  return `<domain type='qemu'>
  <name>lp-test</name>
  <memory unit='MiB'>256</memory>
  <os><type arch='x86_64'>hvm</type></os>
  <devices>
${iface.trimEnd().replace(/^/gm, '    ')}
  </devices>
</domain>
`;
}

test('each type gives the element libvirt documents, with the stable MAC', () => {
  const mac = formatMac(macForName('alice'));
  const udp = interfaceXml(ALL, 'alice', 'udp');
  assert.equal(udp.xml, `<interface type='udp'>\n  <mac address='${mac}'/>\n  <source address='127.0.0.1' port='33001'>\n    <local address='127.0.0.1' port='47303'/>\n  </source>\n  <model type='virtio'/>\n</interface>\n`);
  assert.match(interfaceXml(ALL, 'alice', 'mcast').xml, /<interface type='mcast'>[\s\S]*<source address='230\.0\.0\.1' port='33000'\/>/);
  assert.match(interfaceXml(ALL, 'alice', 'client').xml, /<interface type='client'>[\s\S]*<source address='127\.0\.0\.1' port='33002'\/>/);
  assert.match(interfaceXml(ALL, 'alice', 'server').xml, /<interface type='server'>[\s\S]*<source address='127\.0\.0\.1' port='5555'\/>/);
  assert.match(interfaceXml(ALL, 'alice', 'udp', 'e1000').xml, /<model type='e1000'\/>/);
});

test('default type: udp, then mcast, client, server; a missing type names the port to add', () => {
  assert.equal(interfaceXml(ALL, 'a', undefined).type, 'udp');
  assert.equal(interfaceXml(ALL.filter((t) => t.kind !== 'udp'), 'a', undefined).type, 'mcast');
  assert.equal(interfaceXml([ALL[2], ALL[3]], 'a', undefined).type, 'client');
  assert.throws(() => interfaceXml([ALL[0]], 'a', 'server'), (e: Error & { code?: string }) => e.code === 'LP_ERR_USAGE' && /tcp\+connect:\/\//.test(e.message));
});

test('every type validates against libvirt\'s schema (virt-xml-validate)', { skip: skipSchema }, (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lp-libvirt-'));
  try {
    for (const type of LIBVIRT_TYPES) {
      const file = join(dir, `${type}.xml`);
      const xml = domain(interfaceXml(ALL, 'alice', type).xml);
      writeFileSync(file, xml);
      const r = spawnSync(validator()!, [file, 'domain'], { encoding: 'utf8' });
      const out = `${r.stdout}${r.stderr}`.trim();
      t.diagnostic(`${type}: ${out}`);
      assert.equal(r.status, 0, `${type}: virt-xml-validate said:\n${out}\n${xml}`);
      assert.match(out, /validates/);
    }
    // The check has teeth: a udp interface without <local> is refused.
    const bad = join(dir, 'bad.xml');
    writeFileSync(bad, domain(interfaceXml(ALL, 'alice', 'udp').xml.replace(/\s*<local[^>]*\/>/, '')));
    assert.notEqual(spawnSync(validator()!, [bad, 'domain']).status, 0, 'a udp interface without <local> must fail');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
