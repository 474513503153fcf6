/** Maps validated port configs to transports. The one place that knows every transport. */
import type { PortConfig } from '../config/index.js';
import { type Transport, type TransportContext, DgramTransport, McastTransport, openStream, openVxlan, WgTransport, TapTransport } from '../transports/index.js';
import type { Ipv4Net } from '../io/index.js';

/**
 * The accept list of a udp port: accept= as given; without it, only the fixed peers when there are
 * any (an empty list: the socket adds the peers), else every source (null).
 */
function udpAccept(p: Extract<PortConfig, { scheme: 'udp' }>): Ipv4Net[] | null {
  if (p.accept === 'any') return null;
  if (p.accept === null) return p.peers.length > 0 ? [] : null;
  return p.accept.map((e) => {
    const mask = e.prefixLength === 0 ? 0 : (0xffffffff << (32 - e.prefixLength)) >>> 0;
    return { network: (e.network & mask) >>> 0, mask };
  });
}

export function openTransport(p: PortConfig, ctx: TransportContext, peerIdleMs: number): Transport {
  switch (p.scheme) {
    case 'mcast':
      return new McastTransport(p.url, { group: p.group, port: p.port, localaddr: p.localaddr, ttl: p.ttl, stp: p.stp }, ctx);
    case 'udp':
      return new DgramTransport(p.url, {
        bind: { kind: 'udp4', host: p.host, port: p.port },
        peers: p.peers.map((x) => ({ kind: 'udp4' as const, host: x.host, port: x.port })),
        peerIdleMs, maxPeers: 1024, accept: udpAccept(p),
      }, ctx);
    case 'unixgram':
      return new DgramTransport(p.url, {
        bind: { kind: 'unix', path: p.path },
        peers: p.peers.map((x) => ({ kind: 'unix' as const, path: x })),
        peerIdleMs, maxPeers: 1024, accept: null,
      }, ctx);
    case 'tcp':
      return openStream(p.url, { kind: 'tcp', host: p.host, port: p.port }, p.connect, ctx);
    case 'unix':
      return openStream(p.url, { kind: 'unix', path: p.path }, p.connect, ctx);
    case 'tap':
      return new TapTransport(p.url, { name: p.name, create: p.create, address: p.address, prefixLength: p.prefixLength, mtuBytes: p.mtuBytes }, ctx);
    case 'wg':
      return new WgTransport(p.url, { privateKey: p.privateKey, listen: p.listen, address: p.address, vni: p.vni, mtuBytes: p.mtuBytes, peers: p.peers }, ctx);
    case 'vxlan':
      return openVxlan(p.url, { host: p.host, port: p.port }, {
        vni: p.vni, remotes: p.remotes, group: p.group === null ? null : { address: p.group, port: p.port },
        acceptAny: p.acceptAny, table: { macAgeMs: p.macAgeMs, vtepIdleMs: p.macAgeMs },
      }, { dev: p.dev, ttl: p.ttl }, ctx);
    default: {
      const never: never = p;
      return never;
    }
  }
}
