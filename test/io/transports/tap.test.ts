/**
 * The TAP transport against real TAP devices, in a fresh network namespace of its own
 * (test/helpers/self-netns.ts: the kernel removes the namespace, and every device in it, when the
 * process exits). A fake sink stands in for the switch and keeps a copy of every frame.
 *
 *   unshare --net (lo up)
 *   ┌─────────────────────────────────────────────────────────────┐
 *   │  host stack ── lpc0 (created: 10.99.0.1/24, mtu 1400) ── TapTransport ── fake sink
 *   │  host stack ── lpa0 (ip tuntap add, attached)         ── TapTransport ── fake sink
 *   └─────────────────────────────────────────────────────────────┘
 *
 * Frames from the host: `ping` of a missing neighbour makes the kernel send ARP requests out of
 * the TAP. Frames to the host: an ARP reply written through the port shows up in `ip neigh`.
 */
import { describe, it, after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { INSIDE, inFreshNetns } from '../../helpers/self-netns.js';
import { TapTransport, type TapConfig } from '../../../src/transports/tap/index.js';
import { nativeAvailable } from '../../../src/io/index.js';
import type { FrameSink, Port } from '../../../src/switch/port.js';
import { createLogger } from '../../../src/util/logger.js';
import { LanpartyError } from '../../../src/util/errors.js';

class FakeSink implements FrameSink {
  readonly ports: Port[] = [];
  readonly frames: Buffer[] = [];
  addPort(port: Port): void { this.ports.push(port); }
  removePort(port: Port): void { this.ports.splice(this.ports.indexOf(port), 1); }
  setForwarding(_port: Port, _forwarding: boolean): void {}
  input(port: Port, buf: Buffer, off: number, len: number): void {
    port.counters.rxFrames++;
    port.counters.rxBytes += len;
    this.frames.push(Buffer.from(buf.subarray(off, off + len))); // Slots are reused: copy.
  }
}

function sh(argv: string[]): string {
  console.log(`# ${argv.join(' ')}`);
  return execFileSync(argv[0], argv.slice(1), { encoding: 'utf8' });
}

/** `ip -j -s link show dev NAME`, or null when there is no such link. /sys/class/net would show
 * the parent namespace here (unshare --net does not remount sysfs). */
function link(name: string): { ifindex: number; mtu: number; address: string; stats64: { rx: { packets: number } } } | null {
  try {
    return JSON.parse(execFileSync('ip', ['-j', '-s', 'link', 'show', 'dev', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }))[0];
  } catch {
    return null;
  }
}

async function until<T>(what: string, f: () => T | undefined | false, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = f();
    if (v !== undefined && v !== false) return v as T;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function makeTransport(cfg: Partial<TapConfig> & { name: string }, lines: string[] = []) {
  const sink = new FakeSink();
  const full: TapConfig = { create: false, address: null, prefixLength: 0, mtuBytes: null, ...cfg };
  const url = `tap://${cfg.name}${full.create ? '?create=1' : ''}`;
  const t = new TapTransport(url, full, { sink, log: createLogger((l) => lines.push(l)), maxFrameBytes: 1518 });
  return { t, sink, lines };
}

const HOST_MAC = '02:00:00:00:99:02';

/** An ARP reply from 10.99.0.2 (HOST_MAC) to the TAP's MAC and address. */
function arpReply(tapMac: string, tapIp: string): Buffer {
  const mac = (s: string) => Buffer.from(s.split(':').map((x) => parseInt(x, 16)));
  const ip = (s: string) => Buffer.from(s.split('.').map(Number));
  return Buffer.concat([
    mac(tapMac), mac(HOST_MAC), Buffer.from([0x08, 0x06]),
    Buffer.from([0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x02]),
    mac(HOST_MAC), ip('10.99.0.2'), mac(tapMac), ip(tapIp),
    Buffer.alloc(18), // pad to 60 bytes
  ]);
}

function isArpRequestFor(f: Buffer, target: string): boolean {
  return f.length >= 42 && f.readUInt16BE(12) === 0x0806 && f.readUInt16BE(20) === 1 && [...f.subarray(38, 42)].join('.') === target;
}

const TITLE = 'tap transport with real TAP devices in a fresh network namespace';
const NO_NATIVE = nativeAvailable() ? false : 'the TAP transport needs the native addon; build it with npm run build:native';
if (NO_NATIVE && !INSIDE) {
  test(TITLE, { skip: NO_NATIVE }, () => {}); // Counted as skipped, not as an empty inner pass.
} else if (inFreshNetns(import.meta.url, TITLE)) {
  const skip = NO_NATIVE;
  const open: TapTransport[] = [];
  after(async () => {
    for (const t of open) await t.close();
  });

  describe('tap transport', { skip }, () => {
    it('creates a TAP with address and MTU, carries frames both ways, and recreates it after deletion', async () => {
      const { t, sink, lines } = makeTransport({ name: 'lpc0', create: true, address: '10.99.0.1', prefixLength: 24, mtuBytes: 1400 });
      open.push(t);
      await t.start();
      assert.equal(sink.ports.length, 1);
      const port = sink.ports[0];
      assert.equal(port.kind, 'tap');
      assert.equal(t.deviceState(), 'up');
      assert.equal(link('lpc0')!.mtu, 1400);
      assert.match(sh(['ip', '-4', '-o', 'addr', 'show', 'dev', 'lpc0']), /inet 10\.99\.0\.1\/24 /);
      assert.equal(t.status().address, 'lpc0 10.99.0.1/24');

      // Host → LAN: the kernel ARPs for 10.99.0.2 out of lpc0.
      const ping = spawn('ping', ['-c', '2', '-W', '1', '10.99.0.2'], { stdio: 'ignore' });
      const req = await until('an ARP request from the host', () => sink.frames.find((f) => isArpRequestFor(f, '10.99.0.2')));
      assert.equal(port.counters.rxFrames, sink.frames.length);
      const tapMac = link('lpc0')!.address;
      assert.equal([...req.subarray(6, 12)].map((b) => b.toString(16).padStart(2, '0')).join(':'), tapMac);

      // LAN → host: our ARP reply lands in the neighbour table.
      const reply = arpReply(tapMac, '10.99.0.1');
      port.send(reply, 0, reply.length);
      assert.equal(port.counters.txFrames, 1);
      assert.equal(port.counters.txBytes, 60);
      await until('the neighbour entry', () => sh(['ip', 'neigh', 'show', 'dev', 'lpc0']).includes(HOST_MAC));
      // With the neighbour known, the ping's ICMP echo request comes out too.
      await until('an ICMP echo request', () => sink.frames.find((f) => f.readUInt16BE(12) === 0x0800 && f[23] === 1));
      ping.kill();

      // Delete it: reading fails (EBADFD), frames become port-down drops, tick() recreates it.
      const oldIndex = link('lpc0')!.ifindex;
      sh(['ip', 'link', 'del', 'lpc0']);
      await until('the transport to notice', () => t.deviceState() === 'absent');
      const downBefore = port.counters.drops['port-down'];
      port.send(reply, 0, reply.length);
      assert.equal(port.counters.drops['port-down'], downBefore + 1);
      assert.equal(port.counters.txFrames, 1);
      t.tick(Date.now());
      assert.equal(t.deviceState(), 'up');
      assert.notEqual(link('lpc0')!.ifindex, oldIndex);
      assert.match(sh(['ip', '-4', '-o', 'addr', 'show', 'dev', 'lpc0']), /inet 10\.99\.0\.1\/24 /);
      assert.equal(sink.ports.length, 1, 'the port stays in the switch throughout');
      assert.ok(lines.some((l) => /device gone/.test(l)), lines.join('\n'));
      assert.ok(lines.some((l) => /reattached/.test(l)), lines.join('\n'));

      await t.close();
      assert.equal(sink.ports.length, 0);
      assert.equal(link('lpc0') !== null, false, 'a created TAP goes away with lanparty');
    });

    it('attaches to a persistent TAP, follows it down and up, and reattaches when it is recreated', async () => {
      sh(['ip', 'tuntap', 'add', 'mode', 'tap', 'name', 'lpa0']);
      sh(['ip', 'link', 'set', 'lpa0', 'up']);
      const { t, sink, lines } = makeTransport({ name: 'lpa0' });
      open.push(t);
      await t.start();
      const port = sink.ports[0];
      assert.equal(t.deviceState(), 'up');
      const frame = Buffer.alloc(60);
      frame.fill(0xff, 0, 6); // broadcast, so the kernel takes it
      frame.writeUInt16BE(0x88b5, 12); // local experimental ethertype: dropped by the stack, harmlessly
      port.send(frame, 0, frame.length);
      assert.equal(port.counters.txFrames, 1);
      await until('rx_packets on lpa0', () => link('lpa0')!.stats64.rx.packets === 1);

      sh(['ip', 'link', 'set', 'lpa0', 'down']);
      t.tick(Date.now());
      assert.equal(t.deviceState(), 'down');
      port.send(frame, 0, frame.length);
      assert.equal(port.counters.drops['port-down'], 1);
      assert.equal(port.counters.txFrames, 1);
      sh(['ip', 'link', 'set', 'lpa0', 'up']);
      t.tick(Date.now());
      assert.equal(t.deviceState(), 'up');

      sh(['ip', 'link', 'del', 'lpa0']);
      await until('the transport to notice', () => t.deviceState() === 'absent');
      t.tick(Date.now());
      assert.equal(t.deviceState(), 'absent', 'attach mode waits for the device');
      port.send(frame, 0, frame.length);
      assert.equal(port.counters.drops['port-down'], 2);
      sh(['ip', 'tuntap', 'add', 'mode', 'tap', 'name', 'lpa0']);
      t.tick(Date.now());
      assert.equal(t.deviceState(), 'down', 'reattached; the new device is not up yet');
      sh(['ip', 'link', 'set', 'lpa0', 'up']);
      t.tick(Date.now());
      assert.equal(t.deviceState(), 'up');
      port.send(frame, 0, frame.length);
      assert.equal(port.counters.txFrames, 2);
      assert.equal(port.counters.drops['send-error'], 0);
      assert.ok(lines.some((l) => /interface set down/.test(l)), lines.join('\n'));

      // A second attach to the same single-queue TAP is refused with a clear error.
      const second = makeTransport({ name: 'lpa0' });
      await assert.rejects(second.t.start(), (e: unknown) => e instanceof LanpartyError && e.code === 'LP_ERR_ADDR_IN_USE' && /already attached/.test(e.message));
      await t.close();
      assert.equal(link('lpa0') !== null, true, 'a persistent TAP outlives lanparty');
      sh(['ip', 'link', 'del', 'lpa0']);
    });

    it('refuses a missing device and a non-TAP interface with errors that name the fix', async () => {
      const missing = makeTransport({ name: 'lpnone0' });
      await assert.rejects(missing.t.start(), (e: unknown) =>
        e instanceof LanpartyError && e.code === 'LP_ERR_NO_DEVICE' && /ip tuntap add mode tap user \S+ name lpnone0/.test(e.message) && /create=1/.test(e.message));
      assert.equal(link('lpnone0') !== null, false, 'attach mode never creates');
      const notTap = makeTransport({ name: 'lo' });
      await assert.rejects(notTap.t.start(), (e: unknown) => e instanceof LanpartyError && e.code === 'LP_ERR_CONFIG' && /not a TAP device/.test(e.message));
    });

    it('as an unprivileged owner attaches to its persistent TAP; creating one is refused', () => {
      sh(['ip', 'tuntap', 'add', 'mode', 'tap', 'user', 'nobody', 'name', 'lpu0']);
      // A tiny script run as nobody: attach, report, and try to create another.
      const script = `
        import { TapTransport } from ${JSON.stringify(new URL('../../../src/transports/tap/index.js', import.meta.url).href)};
        const sink = { addPort() {}, removePort() {}, input() {} };
        const log = { error() {}, info() {}, debug() {}, child() { return log; } };
        const ctx = { sink, log, maxFrameBytes: 1518 };
        const a = new TapTransport('tap://lpu0', { name: 'lpu0', create: false, address: null, prefixLength: 0, mtuBytes: null }, ctx);
        await a.start();
        console.log('attached ' + a.deviceState());
        const b = new TapTransport('tap://lpu1?create=1', { name: 'lpu1', create: true, address: null, prefixLength: 0, mtuBytes: null }, ctx);
        try { await b.start(); console.log('created?!'); } catch (e) { console.log(e.code + ' ' + e.message); }
        await a.close();
      `;
      const out = execFileSync('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', process.execPath, '--input-type=module', '-e', script], { encoding: 'utf8' });
      console.log(out);
      assert.match(out, /^attached (up|down)$/m);
      assert.match(out, /^LP_ERR_PERMISSION .*permission denied creating TAP lpu1/m);
      sh(['ip', 'link', 'del', 'lpu0']);
    });
  });
}
