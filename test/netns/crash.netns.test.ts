/**
 * kill -9 in the middle of DHCP exchanges and lease writes, in a loop, against a real `lanparty up`
 * in a network namespace of its own:
 *
 *   netns (unshare --net), lo only
 *   ┌────────────────────────────────────────────────────────────────────────────┐
 *   │ DHCP load (udp 127.0.0.1:33399, many MACs) ─► udp://127.0.0.1:33301 ─► lanparty up
 *   │                                               lease file DIR/leases.json (kept across kills)
 *   └────────────────────────────────────────────────────────────────────────────┘
 *
 * Each iteration: start lanparty on the same lease file, lease new MACs and renew old ones
 * concurrently, SIGKILL lanparty after a random 50-600 ms, then check the lease file parses and
 * holds every lease that was ACKed (a new binding is written before its ACK), that no address
 * belongs to two MACs, and that nothing was moved aside as corrupt; at the next start, that the
 * temporary file a kill left mid-write is gone. LP_CRASH_ITERATIONS sets the
 * count (default 20). The udp client keeps its socket across restarts, as a QEMU dgram guest does;
 * the `up` output must tell QEMU 7.2 stream clients that they cannot reconnect.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { inFreshNetns } from '../helpers/self-netns.js';
import { cleanupAll, tempDir } from '../../lab/netns.js';
import { lanpartyMissing } from '../../lab/netns-lanparty.js';
import { formatIpv4Address } from '../../src/wire/ipv4.js';
import { macText, sleep, startSelf, status } from './hostile-lib.js';
import { DhcpLoad } from './crash-dhcp-load.js';

const ITERATIONS = Number(process.env.LP_CRASH_ITERATIONS ?? 20);
// Up to 10 new MACs per iteration: a /20 pool (4000 addresses) holds the leases of 400 iterations.
// Every MAC comes through one udp port, so its lease limit (64 by default) is lifted.
const DHCP_TOML = '[dhcp]\nprobe_ms = 0\nsubnet = "10.77.0.0/20"\nmax_leases_per_port = 0';

const TEMP_FILE = /^leases\.json\.tmp-\d+$/;

interface FileLease { mac: string; ip: string; state: string }

function readLeaseFile(file: string): FileLease[] {
  if (!fs.existsSync(file)) return [];
  const doc = JSON.parse(fs.readFileSync(file, 'utf8')) as { version: number; leases: FileLease[] };
  assert.equal(doc.version, 1);
  assert.ok(Array.isArray(doc.leases));
  return doc.leases;
}

if (inFreshNetns(import.meta.url, 'kill -9 lanparty during DHCP load, in a loop (own netns)')) {
  after(cleanupAll);

  test(`${ITERATIONS} kills during DHCP exchanges and lease writes: no ACKed lease lost, no address twice`, { skip: lanpartyMissing(), timeout: 900_000 }, async (t) => {
    const dir = tempDir('crash');
    const leaseFile = path.join(dir, 'leases.json');
    const load = await DhcpLoad.open(33301, 33399);
    // A failed assertion must not leave the client socket open: the inner run would never exit.
    t.after(() => load.close());
    let nextMac = 0x020000c00000;
    let kills = 0;
    const ackedEver = new Map<number, number>();
    for (let i = 0; i < ITERATIONS; i++) {
      const lp = await startSelf({ ports: ['udp://127.0.0.1:33301'], leaseFile, label: `lanparty#${i}`, configToml: DHCP_TOML });
      if (i === 0) {
        const text = lp.output.join('\n');
        assert.doesNotMatch(text, /error/i);
      }
      // After a restart every lease ACKed before is in the table, at the same address.
      const st = await status(lp);
      const leftover = fs.readdirSync(dir).filter((f) => TEMP_FILE.test(f) && f !== `leases.json.tmp-${st.pid}`);
      assert.deepEqual(leftover, [], `iteration ${i}: temporary lease files of killed runs removed at start`);
      const rows = st.services.lan!.dhcp!.leases;
      for (const [mac, ip] of ackedEver) {
        const row = rows.find((r) => r.mac === macText(mac));
        assert.ok(row, `iteration ${i}: lease of ${macText(mac)} (${formatIpv4Address(ip)}) lost after kill -9`);
        assert.equal(row.ip, formatIpv4Address(ip), `iteration ${i}: ${macText(mac)} moved address`);
      }
      // Load until the kill: 8 concurrent clients; up to 10 new MACs per round, then renewals of
      // leased ones (DISCOVER/REQUEST again), so the kill lands in exchanges and in lease writes.
      load.acked.clear();
      let running = true;
      let newThisRound = 0;
      const worker = async () => {
        while (running) {
          const known = [...ackedEver.keys(), ...load.acked.keys()];
          const mac = newThisRound < 10 || known.length === 0 ? (newThisRound++, nextMac++) : known[Math.floor(Math.random() * known.length)];
          await load.lease(mac, 400);
        }
      };
      const work = Promise.all(Array.from({ length: 8 }, worker));
      await sleep(100 + Math.floor(Math.random() * 900));
      process.kill(st.pid, 'SIGKILL');
      kills++;
      await lp.exited();
      running = false;
      await work;
      for (const [mac, ip] of load.acked) {
        const before = ackedEver.get(mac);
        assert.ok(before === undefined || before === ip, `${macText(mac)} was ACKed ${formatIpv4Address(ip)} after ${formatIpv4Address(before!)}`);
        ackedEver.set(mac, ip);
      }
      // The file parses, has every ACKed lease, and no address twice.
      const file = readLeaseFile(leaseFile);
      const byIp = new Map<string, string>();
      for (const l of file) {
        if (l.state !== 'bound' && l.state !== 'offered') continue;
        assert.ok(!byIp.has(l.ip) || byIp.get(l.ip) === l.mac, `address ${l.ip} held by ${byIp.get(l.ip)} and ${l.mac}`);
        byIp.set(l.ip, l.mac);
      }
      for (const [mac, ip] of ackedEver) {
        assert.ok(file.some((l) => l.mac === macText(mac) && l.ip === formatIpv4Address(ip)), `iteration ${i}: ACKed lease ${macText(mac)} ${formatIpv4Address(ip)} missing from the lease file`);
      }
      // A kill during a write leaves its temporary file (leases.json.tmp-PID); the next start removes it.
      const aside = fs.readdirSync(dir).filter((f) => f !== 'leases.json' && f.startsWith('leases'));
      assert.deepEqual(aside.filter((f) => !TEMP_FILE.test(f)), [], 'no lease file moved aside as corrupt');
      t.diagnostic(`iteration ${i}: killed after ${load.acked.size} MACs ACKed this round, ${ackedEver.size} leases in total, file has ${file.length} records`);
    }
    // One last clean start: everything still there, and it serves.
    const lp = await startSelf({ ports: ['udp://127.0.0.1:33301'], leaseFile, label: 'lanparty#final', configToml: DHCP_TOML });
    // A DHCP client retries; so does this one (a busy machine may take a moment after start).
    let fresh: number | null = null;
    for (let k = 0; k < 3 && fresh === null; k++) fresh = await load.lease(nextMac++, 3000);
    assert.notEqual(fresh, null, 'serves DHCP after the last restart');
    assert.equal(await lp.stop(), 0);
    t.diagnostic(`kills survived: ${kills}; leases ACKed and kept: ${ackedEver.size}; NAKs ${load.naks}; timeouts ${load.timeouts}`);
    fs.writeFileSync(path.join(process.env.LP_RELIABILITY_OUT ?? dir, 'crash-figures.json'), JSON.stringify({ kills, leases: ackedEver.size, naks: load.naks, timeouts: load.timeouts }));
  });

  test('lanparty up tells QEMU 7.2 stream clients how to come back after a restart; Ctrl-C the moment it is ready stops it cleanly', { skip: lanpartyMissing(), timeout: 120_000 }, async () => {
    // SIGINT as soon as "ready" is read: the signal handlers must be in place before that line is
    // printed, or lanparty dies by the signal. Ten times over, on a busy machine.
    for (let i = 0; i < 10; i++) {
      const dir = tempDir('note');
      const lp = await startSelf({ ports: [`tcp://127.0.0.1:33302`, `unix://${dir}/s.sock`, 'udp://127.0.0.1:33303'], label: `lanparty#${i}` });
      const text = lp.output.join('\n');
      assert.match(text, /on QEMU 7\.2 start the guest after lanparty; it cannot reconnect/);
      const code = await lp.stop();
      assert.equal(code, 0, `start ${i}: exit code ${code} (128: killed by the signal); output:\n${lp.output.slice(-15).join('\n')}`);
      assert.ok(!fs.existsSync(`${dir}/s.sock`), `start ${i}: the unix socket file was removed on the way out`);
    }
  });
}
