/*
 * The guest's udp socket that `lanparty qemu` makes and hands to QEMU (src/cli/guest-socket.ts):
 * real sockets on 127.0.0.1. The netns launcher suite checks that QEMU really uses it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { fstatSync, readFileSync } from 'node:fs';
import { bufferLine, ENOUGH_RCVBUF_BYTES, netCoreSysctl, openGuestUdpSocket, WANTED_RCVBUF_BYTES } from '../../../src/cli/guest-socket.js';
import { fdNetdev } from '../../../src/cli/qemu.js';

/** This namespace's /proc/net/udp row for 127.0.0.1:port. */
function udpRow(port: number): { remote: string; state: string; rxQueue: number } | undefined {
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  for (const line of readFileSync('/proc/net/udp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[1] === local) return { remote: f[2], state: f[3], rxQueue: parseInt(f[4].split(':')[1], 16) };
  }
  return undefined;
}

function bound(): Promise<Socket> {
  const s = createSocket('udp4');
  return new Promise((res) => s.bind(0, '127.0.0.1', () => res(s)));
}

test('openGuestUdpSocket binds the local address, connects to lanparty\'s port and takes the largest buffer allowed', async () => {
  const lanparty = await bound();
  const free = await bound();
  const port = free.address().port;
  await new Promise<void>((r) => free.close(() => r()));
  const g = await openGuestUdpSocket({ host: '127.0.0.1', port }, { host: '127.0.0.1', port: lanparty.address().port });
  try {
    assert.ok(Number.isInteger(g.fd) && g.fd > 2, `a real descriptor: ${g.fd}`);
    assert.ok(fstatSync(g.fd).isSocket(), 'fd is a socket');
    const max = netCoreSysctl('rmem_max');
    // The kernel caps SO_RCVBUF at rmem_max for an unprivileged request, then doubles it (root may
    // exceed it only with SO_RCVBUFFORCE, which this does not use).
    if (max !== null) assert.equal(g.rcvbufBytes, 2 * Math.min(WANTED_RCVBUF_BYTES, max));
    // The address is taken now: a second socket on it is refused, with the port in the error.
    await assert.rejects(openGuestUdpSocket({ host: '127.0.0.1', port }, { host: '127.0.0.1', port: lanparty.address().port }), /EADDRINUSE/);
    // /proc/net/udp shows the socket connected to lanparty's port (state 01), and a datagram sent
    // to it stays queued: nothing in this process reads it (QEMU will).
    lanparty.send(Buffer.from('x'), port, '127.0.0.1');
    let row: { remote: string; state: string; rxQueue: number } | undefined;
    for (let i = 0; i < 50 && !(row && row.rxQueue > 0); i++) {
      await new Promise((r) => setTimeout(r, 20));
      row = udpRow(port);
    }
    assert.ok(row, `the guest socket on port ${port} is in /proc/net/udp`);
    assert.equal(row.remote, `0100007F:${lanparty.address().port.toString(16).toUpperCase().padStart(4, '0')}`);
    assert.equal(row.state, '01', 'connected');
    assert.ok(row.rxQueue > 0, `the datagram waits in the queue, unread (rx_queue ${row.rxQueue})`);
  } finally {
    g.close();
    lanparty.close();
  }
});

test('fdNetdev: QEMU takes the passed socket as fd 3, with the same netdev id and no addresses', () => {
  assert.equal(fdNetdev('dgram,id=lp0,local.type=inet,local.host=127.0.0.1,local.port=40001,remote.type=inet,remote.host=127.0.0.1,remote.port=33001'),
    'dgram,id=lp0,local.type=fd,local.str=3');
});

test('bufferLine says the buffer, QEMU\'s default, and the sysctl only when the buffer is still small', () => {
  const big = bufferLine('alice', 8 << 20, 212992, 4194304);
  assert.match(big, /^alice receives on a socket lanparty made, with a 8192 KiB buffer \(QEMU's own would have 208 KiB, net\.core\.rmem_default\)/);
  assert.doesNotMatch(big, /sysctl/);
  const small = bufferLine('bob', 425984, 212992, 212992);
  assert.ok(425984 < ENOUGH_RCVBUF_BYTES);
  assert.match(small, /416 KiB buffer/);
  assert.match(small, /net\.core\.rmem_max \(212992\) caps it: as root, sysctl -w net\.core\.rmem_max=4194304 lets it have 8192 KiB$/);
});
