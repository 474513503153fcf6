/*
 * Interop: a stock Linux namespace joins a lanparty peer link with Debian's wireguard-go, a kernel
 * vxlan device over the tunnel and a bridge, and pings the host behind lanparty (lanparty's own
 * namespace, attached through a TAP port). Proves our handshake, transport, cookie-free MACs,
 * VXLAN-in-IPv4/UDP encapsulation and IP fragmentation against an implementation we did not write.
 *
 *   netns lp<pid>-N-lp                                  netns lp<pid>-N-stock
 *   ┌──────────────────────────────────┐                ┌────────────────────────────────────────┐
 *   │ tap lpt0 192.168.77.1/24         │                │ br0 192.168.77.2/24                     │
 *   │   │                              │                │   └─ vx0 vxlan id 42 local 10.99.0.2    │
 *   │ lanparty switch                  │                │        remote 10.99.0.1 dstport 4789    │
 *   │   └─ wg peer port (10.99.0.2)    │                │        dev wgsPID (wireguard-go,        │
 *   │ [wg] listen 10.50.0.1:51820      │   veth link    │        10.99.0.2/24, mtu 1420)          │
 *   │      address 10.99.0.1           │                │                                         │
 *   │              vwla 10.50.0.1/24 ──┼────────────────┼── vwlb 10.50.0.2/24 (listen 51820)      │
 *   └──────────────────────────────────┘                └────────────────────────────────────────┘
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cleanupAll, netnsSkipReason, Netns, registerCleanup, vethPair, waitFor, log, commandExists } from '../../lab/netns.js';
import { lanpartyMissing, lanpartyStatus, startLanparty } from '../../lab/netns-lanparty.js';
import { generatePrivateKey, keyText, publicKeyOf } from '../../src/crypto/index.js';

const skip = netnsSkipReason(['ip', 'ss', 'ping']) ?? (commandExists('wireguard-go') && commandExists('wg') ? undefined : 'needs wireguard-go and wg (apt-get install wireguard-go wireguard-tools)');

after(cleanupAll);

interface WgRow { wg?: { counters: Record<string, number>; peers: Array<{ reachable: boolean; role: string; forwarding: boolean; rxBytes: number; lastHandshake: string | null; counters: Record<string, number>; inner: Record<string, number> }> } }

test('stock wireguard-go + vxlan + bridge pings the host behind lanparty, 1514-byte frames included', { skip, timeout: 120_000 }, async (t) => {
  const missing = lanpartyMissing();
  assert.equal(missing, undefined, missing);
  const [lp, stock] = await Promise.all([Netns.create('lp'), Netns.create('stock')]);
  await vethPair(lp, 'vwla', '10.50.0.1/24', stock, 'vwlb', '10.50.0.2/24');

  const lpKey = generatePrivateKey();
  const stockKey = generatePrivateKey();
  const psk = generatePrivateKey(); // any 32 bytes

  // Stock side: wireguard-go in the foreground with its own interface name (one control socket
  // directory for all namespaces), configured by wg.
  const ifname = `wgs${process.pid % 100000}`;
  const env = { ...process.env, WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD: '1' };
  const wgProc = stock.spawn(['wireguard-go', '-f', ifname], 'wireguard-go', { env });
  registerCleanup(`rm socket ${ifname}`, () => { try { execFileSync('rm', ['-f', `/var/run/wireguard/${ifname}.sock`]); } catch { /* gone */ } });
  wgProc.stderr!.on('data', (d: Buffer) => log(`  wireguard-go| ${d.toString().trim()}`));
  await waitFor(`${ifname} in ${stock.name}`, async () => (await stock.run(['ip', 'link', 'show']).catch(() => ({ stdout: '' }))).stdout.includes(ifname), 10_000);
  const keyFile = `/tmp/lp-wg-${process.pid}.key`;
  const pskFile = `/tmp/lp-wg-${process.pid}.psk`;
  execFileSync('sh', ['-c', `umask 077; echo ${keyText(stockKey)} > ${keyFile}; echo ${keyText(psk)} > ${pskFile}`]);
  registerCleanup('rm key files', () => execFileSync('rm', ['-f', keyFile, pskFile]));
  await stock.run(['wg', 'set', ifname, 'private-key', keyFile, 'listen-port', '51820',
    'peer', keyText(publicKeyOf(lpKey)), 'preshared-key', pskFile, 'endpoint', '10.50.0.1:51820', 'allowed-ips', '10.99.0.1/32', 'persistent-keepalive', '5']);
  await stock.run(['ip', 'addr', 'add', '10.99.0.2/24', 'dev', ifname]);
  await stock.run(['ip', 'link', 'set', ifname, 'mtu', '1420', 'up']);
  await stock.run(['ip', 'link', 'add', 'vx0', 'type', 'vxlan', 'id', '42', 'local', '10.99.0.2', 'remote', '10.99.0.1', 'dstport', '4789']);
  await stock.run(['ip', 'link', 'set', 'vx0', 'mtu', '1500']);
  await stock.run(['ip', 'link', 'add', 'br0', 'type', 'bridge']);
  await stock.run(['ip', 'link', 'set', 'vx0', 'master', 'br0']);
  await stock.run(['ip', 'link', 'set', 'vx0', 'up']);
  await stock.run(['ip', 'addr', 'add', '192.168.77.2/24', 'dev', 'br0']);
  await stock.run(['ip', 'link', 'set', 'br0', 'mtu', '1500', 'up']);

  const lanparty = await startLanparty({
    ns: lp, label: 'lanparty',
    ports: ['tap://lpt0?create=1&address=192.168.77.1/24'],
    extraArgs: ['--no-dhcp'],
    configToml: [
      '[wg]', `private_key = "${keyText(lpKey)}"`, 'listen = "10.50.0.1:51820"', 'address = "10.99.0.1"', 'vni = 42',
      '[[wg.peer]]', `public_key = "${keyText(publicKeyOf(stockKey))}"`, `preshared_key = "${keyText(psk)}"`,
      'endpoint = "10.50.0.2:51820"', 'address = "10.99.0.2"',
    ].join('\n'),
  });

  // The peer port joins the switch once the stock host proved to be an edge (no hellos): poll.
  await waitFor('ping 192.168.77.1 from the stock host', async () => {
    try {
      await stock.run(['ping', '-c', '1', '-W', '1', '192.168.77.1']);
      return true;
    } catch {
      return false;
    }
  }, 30_000);
  const small = await stock.run(['ping', '-c', '5', '-i', '0.2', '-W', '2', '192.168.77.1']);
  assert.match(small.stdout, / 0% packet loss/);
  // 1472 bytes of ICMP payload = 1500-byte IP packet = 1514-byte Ethernet frame. The inner
  // VXLAN packet (1550 bytes) exceeds the 1420-byte tunnel MTU, so it crosses as IPv4 fragments:
  // Linux fragments its side, lanparty reassembles, and the other way round. DF stays clear:
  // Linux's vxlan refuses DF packets above its path MTU (it answers with a PMTU error instead),
  // which is why a stock host should give its guests MTU 1370 or clear DF (see docs/peer-links.md).
  const big = await stock.run(['ping', '-c', '5', '-i', '0.2', '-W', '2', '-M', 'dont', '-s', '1472', '192.168.77.1']);
  assert.match(big.stdout, / 0% packet loss/);
  const fromLp = await lp.run(['ping', '-c', '5', '-i', '0.2', '-W', '2', '-M', 'do', '-s', '1472', '192.168.77.2']);
  assert.match(fromLp.stdout, / 0% packet loss/);

  const st = await lanpartyStatus<{ transports: WgRow[] }>(lanparty);
  const wg = st.transports.find((x) => x.wg !== undefined)!.wg!;
  const peer = wg.peers[0];
  t.diagnostic(`lanparty peer: ${JSON.stringify(peer)}`);
  assert.equal(peer.reachable, true);
  assert.equal(peer.role, 'edge');
  assert.ok(peer.lastHandshake !== null);
  // Linux fragments the first big frame's VXLAN packet; after that it has learned a 1370-byte
  // path MTU towards 192.168.77.1 and fragments the inner ICMP instead, so at least one.
  assert.ok(peer.inner.reassembled >= 1, 'fragments from the Linux vxlan side were reassembled');
  assert.equal(peer.inner['fragment-dropped'], 0);
  assert.equal(peer.counters.rxReplayed, 0);
  const show = await stock.run(['wg', 'show', ifname, 'latest-handshakes']);
  assert.ok(Number(show.stdout.trim().split(/\s+/)[1]) > 0, 'wireguard-go saw a completed handshake');
  assert.equal(await lanparty.stop(), 0);
});
