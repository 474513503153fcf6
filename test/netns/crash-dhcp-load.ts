/**
 * A DHCP load generator that speaks DHCP to lanparty's virtual host through a wire-format udp client
 * (a QEMU `-netdev dgram` stand-in): many client MACs behind one socket, each doing
 * DISCOVER → OFFER → REQUEST → ACK, replies matched by transaction id. Used by the crash and soak suites.
 */
import { DHCPACK, DHCPDISCOVER, DHCPNAK, DHCPOFFER, DHCPREQUEST, emitDhcp, emptyDhcpRepr, parseDhcp } from '../../src/wire/dhcp.js';
import { BROADCAST_MAC } from '../../src/wire/ethernet.js';
import { IPV4_BROADCAST } from '../../src/wire/ipv4.js';
import { udpFrame } from '../../fuzz/seeds.js';
import { udpClient, type UdpClient } from './hostile-lib.js';

const HOST_IP = 0x0a4d0001;

export class DhcpLoad {
  private waiters = new Map<number, (msg: { type: number; yiaddr: number }) => void>();
  private xid = 1;
  /** ACKs seen: MAC → address. */
  readonly acked = new Map<number, number>();
  naks = 0;
  timeouts = 0;
  private constructor(readonly client: UdpClient) {
    client.sock.on('message', (m) => {
      if (m.length < 42 + 240 || m.readUInt16BE(12) !== 0x0800 || m.readUInt16BE(36) !== 68) return;
      try {
        const d = parseDhcp(m, 42, m.length - 42);
        const w = this.waiters.get(d.xid);
        if (w && d.messageType !== null) { this.waiters.delete(d.xid); w({ type: d.messageType, yiaddr: d.yiaddr }); }
      } catch { /* not for us */ }
    });
  }

  /** Binds on a fixed local port so the same peer survives lanparty restarts. */
  static async open(lanpartyPort: number, localPort: number): Promise<DhcpLoad> {
    return new DhcpLoad(await udpClient(lanpartyPort, localPort));
  }

  private exchange(mac: number, type: number, fields: { requestedIp?: number }, timeoutMs: number): Promise<{ type: number; yiaddr: number } | null> {
    const r = emptyDhcpRepr();
    r.chaddr = mac;
    r.xid = (this.xid++ * 2654435761) >>> 0;
    r.messageType = type;
    if (fields.requestedIp !== undefined) { r.requestedIp = fields.requestedIp; r.serverId = HOST_IP; }
    const frame = udpFrame(BROADCAST_MAC, mac, 0, IPV4_BROADCAST, 68, 67, emitDhcp(r));
    return new Promise((resolve) => {
      const t = setTimeout(() => { this.waiters.delete(r.xid); this.timeouts++; resolve(null); }, timeoutMs);
      this.waiters.set(r.xid, (m) => { clearTimeout(t); resolve(m); });
      this.client.send(frame).catch(() => {});
    });
  }

  /** One full lease for `mac`; resolves with the ACKed address or null. */
  async lease(mac: number, timeoutMs = 2000): Promise<number | null> {
    const offer = await this.exchange(mac, DHCPDISCOVER, {}, timeoutMs);
    if (offer === null || offer.type !== DHCPOFFER) return null;
    const ack = await this.exchange(mac, DHCPREQUEST, { requestedIp: offer.yiaddr }, timeoutMs);
    if (ack === null) return null;
    if (ack.type === DHCPNAK) { this.naks++; return null; }
    if (ack.type !== DHCPACK) return null;
    this.acked.set(mac, ack.yiaddr);
    return ack.yiaddr;
  }

  close(): void { this.client.close(); }
}
