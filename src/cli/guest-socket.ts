/**
 * The guest's end of a udp port, made by `lanparty qemu` instead of by QEMU.
 *
 * Why: QEMU's `-netdev dgram` socket gets the kernel's default receive buffer
 * (net.core.rmem_default, 208 KiB on Debian), and QEMU stops reading it whenever the guest's
 * virtio receive ring is full. TCP in a busy TCG guest then loses frames at that buffer, and every
 * loss halves its window: measured with iperf3 between two guests through a udp port, 1200-1400
 * datagrams dropped there in 20 s and 575 Mbit/s, against none and 830 Mbit/s with a 2 MiB buffer
 * (bench/RESULTS.md, "lanparty qemu udp"). QEMU has no option for the buffer, but it takes a socket
 * it did not make (`local.type=fd`, QEMU >= 7.2): so the launcher binds the same local address,
 * asks for a large SO_RCVBUF (an unprivileged process may have up to net.core.rmem_max, which the
 * kernel doubles), connects it to lanparty's port (QEMU then send()s, and the socket takes
 * datagrams from lanparty's port only: no other local process can put frames into the guest),
 * and hands it to QEMU as fd 3. The guest still survives a lanparty restart: QEMU's dgram backend
 * (net/dgram.c, 7.2) ignores a failed recv() and drops a frame whose send() fails, so the
 * ECONNREFUSED a connected socket reports while lanparty is away costs only those frames.
 *
 * Node has no public way to read a dgram socket's fd (socket._handle is deprecated, DEP0112), so
 * it is read from the handle behind the socket's state symbol; when a Node release moves it,
 * `fdOf` returns null and the launcher falls back to QEMU's own socket, saying so.
 */
import * as dgram from 'node:dgram';
import { sysctl } from '../daemon/index.js';

/** What the launcher asks for; the kernel caps it at net.core.rmem_max and then doubles it. */
export const WANTED_RCVBUF_BYTES = 4 << 20;
/** Below this (as the kernel reports it, doubled) frames were still lost in the benchmark. */
export const ENOUGH_RCVBUF_BYTES = 2 << 20;

export interface GuestUdpSocket {
  /** The socket's descriptor in this process (pass it to the child; close() after spawn). */
  readonly fd: number;
  /** SO_RCVBUF as the kernel reports it (bytes of datagrams plus overhead it will hold). */
  readonly rcvbufBytes: number;
  close(): void;
}

interface Handle { fd?: unknown; recvStop?: () => unknown }

function fdOf(sock: dgram.Socket): { fd: number; handle: Handle } | null {
  for (const sym of Object.getOwnPropertySymbols(sock)) {
    const state = (sock as unknown as Record<symbol, { handle?: Handle } | undefined>)[sym];
    const fd = state?.handle?.fd;
    if (typeof fd === 'number' && fd >= 0) return { fd, handle: state!.handle! };
  }
  return null;
}

/** A sysctl under /proc/sys/net/core as a number, or null where it cannot be read. */
export function netCoreSysctl(name: 'rmem_default' | 'rmem_max'): number | null {
  const v = Number(sysctl(`/proc/sys/net/core/${name}`) ?? NaN);
  return Number.isFinite(v) ? v : null;
}

/**
 * Binds `local`, sets the receive buffer, connects to `remote`. Rejects with Node's socket error
 * (EADDRINUSE, ...) or an Error saying the fd cannot be read from this Node.
 */
export function openGuestUdpSocket(local: { host: string; port: number }, remote: { host: string; port: number }, wantBytes = WANTED_RCVBUF_BYTES): Promise<GuestUdpSocket> {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket({ type: 'udp4', recvBufferSize: wantBytes });
    const fail = (err: Error) => {
      try { sock.close(); } catch { /* not open yet */ }
      reject(err);
    };
    sock.once('error', fail);
    sock.bind({ address: local.host, port: local.port, exclusive: true }, () => {
      sock.connect(remote.port, remote.host, () => {
        const found = fdOf(sock);
        if (found === null) return fail(new Error(`cannot read the socket's descriptor from Node ${process.version}`));
        // This process never reads it: QEMU does. Node started reading at bind.
        found.handle.recvStop?.();
        sock.off('error', fail);
        sock.on('error', () => { /* closed below; QEMU owns the socket */ });
        resolve({ fd: found.fd, rcvbufBytes: sock.getRecvBufferSize(), close: () => sock.close() });
      });
    });
  });
}

/** The launcher's line about the buffer, and what root can do when it is still small. */
export function bufferLine(name: string, rcvbufBytes: number, rmemDefault: number | null, rmemMax: number | null): string {
  const kib = (b: number) => `${Math.round(b / 1024)} KiB`;
  const own = rmemDefault !== null ? `${kib(rmemDefault)}, net.core.rmem_default` : 'net.core.rmem_default';
  let line = `${name} receives on a socket lanparty made, with a ${kib(rcvbufBytes)} buffer (QEMU's own would have ${own}), ` +
    'so a guest that falls behind a burst loses fewer frames';
  if (rcvbufBytes < ENOUGH_RCVBUF_BYTES) {
    line += `; net.core.rmem_max (${rmemMax ?? '?'}) caps it: as root, sysctl -w net.core.rmem_max=${WANTED_RCVBUF_BYTES} lets it have ${kib(2 * WANTED_RCVBUF_BYTES)}`;
  }
  return line;
}
