/**
 * What the datagram transports (dgram, mcast) share, kept below them so neither imports the
 * other: the largest UDP payload and how a datagram address is printed.
 */
import type { DgramAddress } from '../io/index.js';

/** Largest UDP payload over IPv4. */
export const UDP_MAX_PAYLOAD = 65507;

/** `host:port` for UDP, the path for a unix socket, as status and logs show it. */
export function addressText(a: DgramAddress): string {
  return a.kind === 'udp4' ? `${a.host}:${a.port}` : a.path;
}
