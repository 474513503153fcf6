import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IpSnoop, MAX_CONFLICTS, MAX_MACS_PER_CONFLICT, CONFLICT_KEEP_MS } from '../../../src/daemon/ip-snoop.js';
import { MemoryPort } from '../../helpers/memory-port.js';

const port = new MemoryPort('p');

/** An ARP request from `mac` (a number) with sender address `ip` (a number), 42 bytes. */
function arpFrom(mac: number, ip: number): Buffer {
  const f = Buffer.alloc(42);
  f.fill(0xff, 0, 6);
  f.writeUIntBE(mac, 6, 6);
  f.writeUInt16BE(0x0806, 12);
  f.writeUInt16BE(1, 14); f.writeUInt16BE(0x0800, 16); f[18] = 6; f[19] = 4; f.writeUInt16BE(1, 20);
  f.writeUIntBE(mac, 22, 6);
  f.writeUInt32BE(ip, 28);
  return f;
}

function see(s: IpSnoop, mac: number, ip: number): void {
  const f = arpFrom(mac, ip);
  s.tap(port, f, 0, f.length);
}

const MAC = 0x020000000001;
const IP = 0x0a4d0005; // 10.77.0.5

test('a MAC not heard for the age is forgotten on tick, and its address has no owner any more', () => {
  const s = new IpSnoop(16, 1000);
  s.tick(0);
  see(s, MAC, IP);
  see(s, MAC + 1, IP + 1);
  s.tick(600);
  see(s, MAC + 1, IP + 1);                       // heard again: stays
  s.tick(1000);
  assert.deepEqual(s.ipsOf(MAC), []);
  assert.deepEqual(s.ipsOf(MAC + 1), ['10.77.0.6']);
  assert.equal(s.counters.expired, 1);
  assert.equal(s.size, 1);
  see(s, MAC + 2, IP);                           // 10.77.0.5 again, by another MAC: no conflict
  assert.equal(s.conflicts.size, 0);
});

test('when full, a new MAC evicts the least recently heard one', () => {
  const s = new IpSnoop(4, 300_000);
  s.tick(1000);
  for (let i = 0; i < 4; i++) see(s, MAC + i, IP + i);
  s.tick(2000);
  see(s, MAC, IP);                               // MAC 0 heard again: MAC 1 is the oldest now
  for (let i = 4; i < 100; i++) see(s, MAC + i, IP + i);
  assert.equal(s.size, 4);
  assert.equal(s.counters.evicted, 96);
  assert.deepEqual(s.ipsOf(MAC + 99), ['10.77.0.104']);
  assert.deepEqual(s.ipsOf(MAC + 1), []);
});

test('conflicts keep a few MACs each, a bounded number of them, and go after CONFLICT_KEEP_MS', () => {
  const s = new IpSnoop(100_000, 3_600_000);
  s.tick(1000);
  for (let i = 0; i < 20; i++) see(s, MAC + i, IP);
  const c = s.conflicts.get(IP)!;
  assert.equal(c.macs.length, MAX_MACS_PER_CONFLICT);
  assert.equal(c.macs.at(-1), MAC + 19);
  for (let i = 0; i < MAX_CONFLICTS + 10; i++) {
    see(s, 0x020000100000 + 2 * i, 0x0b000000 + i);
    see(s, 0x020000100001 + 2 * i, 0x0b000000 + i);
  }
  assert.equal(s.conflicts.size, MAX_CONFLICTS);
  assert.equal(s.conflicts.has(IP), false, 'the least recently seen conflict went first');
  assert.equal(s.counters.conflictsDropped, 11);
  s.tick(1000 + CONFLICT_KEEP_MS);
  assert.equal(s.conflicts.size, MAX_CONFLICTS, 'still within the window');
  s.tick(1001 + CONFLICT_KEEP_MS);
  assert.equal(s.conflicts.size, 0);
  assert.equal(s.counters.conflictsDropped, 11 + MAX_CONFLICTS);
});

test('an address a MAC stopped using (a fifth one pushed it out) loses that owner', () => {
  const s = new IpSnoop(16, 300_000);
  for (let i = 0; i < 5; i++) see(s, MAC, IP + i);
  assert.deepEqual(s.ipsOf(MAC), ['10.77.0.6', '10.77.0.7', '10.77.0.8', '10.77.0.9']);
  see(s, MAC + 1, IP);                           // 10.77.0.5: nobody owns it now
  assert.equal(s.conflicts.size, 0);
  see(s, MAC + 2, IP + 1);                       // 10.77.0.6 still MAC's
  assert.deepEqual(s.conflicts.get(IP + 1)?.macs, [MAC, MAC + 2]);
});
