/*
 * ISC dhclient (isc-dhcp-client 4.4) against lanparty's virtual host, through a TAP port: the TAP
 * is the namespace's own interface on the LAN, so dhclient runs on it directly. A second kind of
 * client besides busybox udhcpc: it broadcasts without the broadcast flag, renews at T1 by unicast,
 * and releases by unicast from its bound address.
 *
 *   netns lp<pid>-N-dhcp-dhclient
 *   ┌─────────────────────────────────────────────────────────────────────────────────────┐
 *   │  dhclient -d -cf (send host-name "hostside") lpdc0                                  │
 *   │  ping, busybox nslookup                                                             │
 *   │        │                                                                            │
 *   │   lpdc0 (TAP, no address until dhclient's script adds one)                          │
 *   │        │                                                                            │
 *   │   lanparty up, port tap://lpdc0?create=1,  [dhcp] lease_seconds = 60                │
 *   │        └── virtual host 10.77.0.1: DHCP pool .10-.254, DNS *.lan                    │
 *   └─────────────────────────────────────────────────────────────────────────────────────┘
 *
 *   1. BOUND: the script's environment carries the lease and its options (mask, broadcast,
 *      domain, DNS = 10.77.0.1, lease 60 s, T1 30 s, T2 52 s, no router); status shows it bound.
 *   2. The namespace pings 10.77.0.1 and resolves hostside.lan and lanparty.lan; example.com is
 *      refused at once.
 *   3. RENEW at T1 (about 30 s): same address, unicast REQUEST/ACK.
 *   4. dhclient -r: RELEASE; status shows the lease released. Counters are exact throughout.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupAll, killProcess, netnsSkipReason, Netns, tempDir, waitFor } from '../../lab/netns.js';
import { lanpartyMissing, startLanparty } from '../../lab/netns-lanparty.js';
import { lanStatus, VHOST_IP, waitLeaseState } from '../helpers/dhcp-lan.js';

const skip = netnsSkipReason(['ip', 'ss', 'ping', 'dhclient', 'busybox']);
const TAP = 'lpdc0';

after(cleanupAll);

/** dhclient-script stand-in: records each call's environment (one write per call), configures only the address. */
const SCRIPT = `#!/bin/sh
block=$(echo "reason=$reason"; env | grep -E '^(new_|old_)' | sort; echo "--")
printf '%s\n' "$block" >>"$(dirname "$0")/events"
case "$reason" in
    PREINIT) ip link set dev "$interface" up ;;
    BOUND|RENEW|REBIND|REBOOT)
        if [ "$old_ip_address" != "$new_ip_address" ]; then ip -4 addr flush dev "$interface"; fi
        ip addr replace "$new_ip_address/$new_subnet_mask" broadcast "$new_broadcast_address" dev "$interface" ;;
    RELEASE|EXPIRE|FAIL|STOP) ip -4 addr flush dev "$interface" ;;
esac
exit 0
`;

interface ScriptCall {
  reason: string;
  env: Record<string, string>;
}

function scriptCalls(dir: string): ScriptCall[] {
  let text = '';
  try {
    text = readFileSync(join(dir, 'events'), 'utf8');
  } catch {
    return [];
  }
  // Only whole calls: a block counts once its "--" line is there (the test may read mid-write).
  return text.split('--\n').slice(0, -1).filter((b) => b.trim() !== '').map((block) => {
    const env: Record<string, string> = {};
    let reason = '';
    for (const line of block.split('\n')) {
      const eq = line.indexOf('=');
      if (eq < 0) continue;
      const k = line.slice(0, eq);
      const v = line.slice(eq + 1);
      if (k === 'reason') reason = v;
      else env[k] = v;
    }
    return { reason, env };
  });
}

test('ISC dhclient on a TAP: bound with the options, names, renewed at T1, released', { skip, timeout: 240_000 }, async (t) => {
  const missing = lanpartyMissing();
  assert.equal(missing, undefined, missing);
  const ns = await Netns.create('dhcp-dhclient');
  const dir = tempDir('dhcp-dhclient');
  const lp = await startLanparty({ ns, ports: [`tap://${TAP}?create=1`], configToml: '[dhcp]\nlease_seconds = 60' });
  const script = join(dir, 'dhclient-script');
  writeFileSync(script, SCRIPT);
  chmodSync(script, 0o755);
  const conf = join(dir, 'dhclient.conf');
  writeFileSync(conf, 'send host-name "hostside";\nrequest subnet-mask, broadcast-address, routers, domain-name, domain-name-servers, host-name;\n');
  const files = ['-cf', conf, '-sf', script, '-lf', join(dir, 'dhclient.leases'), '-pf', join(dir, 'dhclient.pid')];
  const dhclient = ns.spawn(['dhclient', '-4', '-d', '-v', ...files, TAP], 'dhclient');
  const dlog: string[] = [];
  dhclient.stderr!.setEncoding('utf8').on('data', (d: string) => dlog.push(...d.split('\n').filter(Boolean)));
  const dhclientLog = () => dlog.map((l) => `  dhclient| ${l}`).join('\n');

  // 1. BOUND.
  const bound = await waitFor('dhclient BOUND', () => scriptCalls(dir).find((c) => c.reason === 'BOUND'), 60_000, 200)
    .catch((err: Error) => { throw new Error(`${err.message}\n${dhclientLog()}`); });
  t.diagnostic(`BOUND: ${JSON.stringify(bound.env)}`);
  const e = bound.env;
  assert.deepEqual({
    ip: e.new_ip_address, mask: e.new_subnet_mask, broadcast: e.new_broadcast_address, domain: e.new_domain_name,
    dns: e.new_domain_name_servers, lease: e.new_dhcp_lease_time, t1: e.new_dhcp_renewal_time, t2: e.new_dhcp_rebinding_time,
    server: e.new_dhcp_server_identifier, routers: e.new_routers, hostname: e.new_host_name,
  }, {
    ip: '10.77.0.10', mask: '255.255.255.0', broadcast: '10.77.0.255', domain: 'lan',
    dns: VHOST_IP, lease: '60', t1: '30', t2: '52', server: VHOST_IP, routers: undefined, hostname: 'hostside',
  });
  const lease = await waitLeaseState(lp, (await ns.run(['cat', `/sys/class/net/${TAP}/address`])).stdout.trim(), 'bound', 10_000);
  assert.equal(lease.ip, '10.77.0.10');
  assert.equal(lease.hostname, 'hostside');
  assert.equal(lease.clientId, null, 'dhclient sends no client identifier by default');
  let s = await lanStatus(lp);
  assert.deepEqual(
    { discover: s.dhcp!.counters.rx.discover, request: s.dhcp!.counters.rx.request, offer: s.dhcp!.counters.tx.offer, ack: s.dhcp!.counters.tx.ack },
    { discover: 1, request: 1, offer: 1, ack: 1 },
  );

  // 2. The LAN's services from the namespace stack.
  const ping = await ns.run(['ping', '-c', '3', '-i', '0.2', '-W', '2', VHOST_IP]);
  assert.match(ping.stdout, / 3 received/);
  for (const [name, want] of [['hostside.lan', '10.77.0.10'], ['lanparty.lan', VHOST_IP]]) {
    const out = (await ns.run(['busybox', 'nslookup', '-type=a', name, VHOST_IP])).stdout;
    assert.match(out, new RegExp(`Name:\\s+${name.replace('.', '\\.')}\\s+Address:\\s+${want.replace(/\./g, '\\.')}\\b`), out);
  }
  const started = Date.now();
  const refused = await ns.run(['sh', '-c', `busybox nslookup -type=a example.com ${VHOST_IP} 2>&1; true`]);
  const refusedMs = Date.now() - started;
  assert.match(refused.stdout, /REFUSED/, refused.stdout);
  assert.ok(refusedMs < 2000, `REFUSED took ${refusedMs} ms (a timeout would take seconds)`);

  // 3. RENEW at T1 = 30 s after binding.
  const renew = await waitFor('dhclient RENEW', () => scriptCalls(dir).find((c) => c.reason === 'RENEW'), 60_000, 500)
    .catch((err: Error) => { throw new Error(`${err.message}\n${dhclientLog()}`); });
  assert.equal(renew.env.new_ip_address, '10.77.0.10');
  assert.equal(renew.env.old_ip_address, '10.77.0.10');
  s = await lanStatus(lp);
  assert.equal(s.dhcp!.counters.rx.request, 2);
  assert.equal(s.dhcp!.counters.tx.ack, 2);
  assert.ok(s.dhcp!.leases[0].expiresInS > 50, `renewed lease expiresInS ${s.dhcp!.leases[0].expiresInS}`);

  // 4. Release: dhclient -r stops the running client (pid file) and sends a RELEASE.
  await ns.run(['dhclient', '-4', '-r', '-v', ...files, TAP]);
  await waitFor('dhclient to exit', () => dhclient.exitCode !== null || dhclient.signalCode !== null, 10_000);
  const released = await waitLeaseState(lp, lease.mac, 'released', 10_000);
  assert.equal(released.ip, '10.77.0.10');
  assert.ok(scriptCalls(dir).some((c) => c.reason === 'RELEASE'));
  const addr = await ns.run(['ip', '-4', 'addr', 'show', 'dev', TAP]);
  assert.doesNotMatch(addr.stdout, /inet /);
  s = await lanStatus(lp);
  const c = s.dhcp!.counters;
  t.diagnostic(`dhcp counters: ${JSON.stringify(c)}`);
  t.diagnostic(`dns counters: ${JSON.stringify(s.dns!.counters)}`);
  assert.deepEqual(
    { rx: c.rx, offer: c.tx.offer, ack: c.tx.ack, nak: c.tx.nak },
    { rx: { discover: 1, offer: 0, request: 2, decline: 0, ack: 0, nak: 0, release: 1, inform: 0, other: 0 }, offer: 1, ack: 2, nak: 0 },
  );
  assert.deepEqual(
    { answered: s.dns!.counters.answered, refused: s.dns!.counters.refused, nxdomain: s.dns!.counters.nxdomain },
    { answered: 2, refused: 1, nxdomain: 0 },
  );
  assert.equal(s.dhcp!.pool.inUse, 0);

  killProcess(dhclient, 'dhclient');
  assert.equal(await lp.stop(), 0);
  await ns.destroy();
});
