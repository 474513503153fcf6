/**
 * One-line decode of an Ethernet frame for `lanparty dump`, after tcpdump -e: MACs, then ARP,
 * IPv4/IPv6, ICMP, UDP, TCP, DHCP (type, xid, client MAC, requested/your IP) and DNS (query
 * name/type, answers). Reuses the checked wire parsers; any parse failure becomes "malformed <what>:
 * <reason>" in the line. `decodeFrame` never throws, whatever the bytes.
 */
import { formatMac, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_VLAN, ETHERTYPE_QINQ, parseArp, ARP_OP_REQUEST, ARP_OP_REPLY, parseIpv4, formatIpv4Address, IP_PROTO_ICMP, IP_PROTO_UDP, parseUdp, UDP_HEADER_BYTES, parseIcmp, parseDhcp, dhcpMessageName, DHCP_SERVER_PORT, DHCP_CLIENT_PORT, parseDns, DNS_PORT, type DnsRecord } from '../wire/index.js';

const IP_PROTO_TCP = 6;
const IP_PROTO_ICMPV6 = 58;

function why(err: unknown): string {
  const m = err instanceof Error ? err.message : String(err);
  return m.replace(/^[a-z0-9]+: /, '');
}

/** "fe80::1" style text for 16 bytes at buf[off..off+16) (RFC 5952 zero compression). */
export function formatIpv6(buf: Buffer, off: number): string {
  const words: number[] = [];
  for (let i = 0; i < 8; i++) words.push(buf.readUInt16BE(off + i * 2));
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (words[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  const hex = words.map((w) => w.toString(16));
  if (bestStart < 0) return hex.join(':');
  return hex.slice(0, bestStart).join(':') + '::' + hex.slice(bestStart + bestLen).join(':');
}

const DNS_TYPES: Record<number, string> = { 1: 'A', 2: 'NS', 5: 'CNAME', 6: 'SOA', 12: 'PTR', 15: 'MX', 16: 'TXT', 28: 'AAAA', 33: 'SRV', 41: 'OPT', 65: 'HTTPS', 255: 'ANY' };
const dnsType = (t: number) => DNS_TYPES[t] ?? `TYPE${t}`;

function dnsAnswer(r: DnsRecord): string {
  if (r.type === 1 && r.data.length === 4) return `A ${formatIpv4Address(r.data.readUInt32BE(0))}`;
  if (r.type === 28 && r.data.length === 16) return `AAAA ${formatIpv6(r.data, 0)}`;
  return dnsType(r.type);
}

const RCODES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED'];

function decodeDns(buf: Buffer, off: number, len: number): string {
  try {
    const m = parseDns(buf, off, len);
    const q = m.questions[0];
    const qText = q ? `${dnsType(q.type)}? ${q.name || '.'}` : 'no question';
    if (!m.response) return `DNS query 0x${m.id.toString(16)} ${qText}`;
    const rcode = RCODES[m.rcode] ?? `rcode${m.rcode}`;
    const answers = m.answers.map(dnsAnswer);
    return `DNS response 0x${m.id.toString(16)} ${qText} ${rcode}${answers.length ? ' ' + answers.join(', ') : ''}`;
  } catch (err) {
    return `malformed DNS: ${why(err)}`;
  }
}

function decodeDhcp(buf: Buffer, off: number, len: number): string {
  try {
    const m = parseDhcp(buf, off, len);
    const parts = [`DHCP ${dhcpMessageName(m.messageType).toUpperCase()}`, `xid 0x${m.xid.toString(16).padStart(8, '0')}`, `client ${formatMac(m.chaddr)}`];
    if (m.requestedIp !== null) parts.push(`requested ${formatIpv4Address(m.requestedIp)}`);
    if (m.ciaddr !== 0) parts.push(`ciaddr ${formatIpv4Address(m.ciaddr)}`);
    if (m.yiaddr !== 0) parts.push(`your ${formatIpv4Address(m.yiaddr)}`);
    if (m.serverId !== null) parts.push(`server ${formatIpv4Address(m.serverId)}`);
    if (m.hostname !== null) parts.push(`hostname ${m.hostname}`);
    if (m.clientId !== null) parts.push(`client-id ${m.clientId.toString('hex')}`);
    return parts.join(', ');
  } catch (err) {
    return `malformed DHCP: ${why(err)}`;
  }
}

/** UDP ports and what rides on them. `verify` runs the checked parser (IPv4 pseudo-header). */
function decodeUdp(buf: Buffer, off: number, len: number, src: string, dst: string, ips: { src: number; dst: number } | null): string {
  if (len < UDP_HEADER_BYTES) return `${src} > ${dst}: malformed UDP: header needs 8 bytes, got ${len}`;
  const sport = buf.readUInt16BE(off);
  const dport = buf.readUInt16BE(off + 2);
  const udpBytes = buf.readUInt16BE(off + 4);
  let note = '';
  if (udpBytes < UDP_HEADER_BYTES || udpBytes > len) return `${src}.${sport} > ${dst}.${dport}: malformed UDP: length field ${udpBytes} is outside 8..${len}`;
  if (ips !== null) {
    try {
      parseUdp(buf, off, len, ips.src, ips.dst);
    } catch (err) {
      note = ` [${why(err)}]`;
    }
  }
  const po = off + UDP_HEADER_BYTES;
  const pl = udpBytes - UDP_HEADER_BYTES;
  let inner: string;
  if ((sport === DHCP_CLIENT_PORT && dport === DHCP_SERVER_PORT) || (sport === DHCP_SERVER_PORT && dport === DHCP_CLIENT_PORT)) inner = decodeDhcp(buf, po, pl);
  else if (sport === DNS_PORT || dport === DNS_PORT || sport === 5353 || dport === 5353) inner = decodeDns(buf, po, pl);
  else inner = `UDP, length ${pl}`;
  return `${src}.${sport} > ${dst}.${dport}: ${inner}${note}`;
}

const TCP_FLAGS = ['F', 'S', 'R', 'P', '.', 'U', 'E', 'W'];

function decodeTcp(buf: Buffer, off: number, len: number, src: string, dst: string): string {
  if (len < 20) return `${src} > ${dst}: malformed TCP: header needs 20 bytes, got ${len}`;
  const sport = buf.readUInt16BE(off);
  const dport = buf.readUInt16BE(off + 2);
  const hdr = (buf[off + 12] >> 4) * 4;
  if (hdr < 20 || hdr > len) return `${src}.${sport} > ${dst}.${dport}: malformed TCP: data offset ${hdr} outside 20..${len}`;
  const f = buf[off + 13];
  let flags = '';
  for (let i = 0; i < 8; i++) if (f & (1 << i)) flags += TCP_FLAGS[i];
  return `${src}.${sport} > ${dst}.${dport}: TCP [${flags || 'none'}] seq ${buf.readUInt32BE(off + 4)}${f & 0x10 ? ` ack ${buf.readUInt32BE(off + 8)}` : ''} win ${buf.readUInt16BE(off + 14)}, length ${len - hdr}`;
}

const ICMP_TYPES: Record<number, string> = { 0: 'echo reply', 3: 'destination unreachable', 5: 'redirect', 8: 'echo request', 11: 'time exceeded' };

function decodeIpv4(buf: Buffer, off: number, len: number): string {
  let ip;
  try {
    ip = parseIpv4(buf, off, len);
  } catch (err) {
    return `IPv4 malformed IPv4: ${why(err)}`;
  }
  const src = formatIpv4Address(ip.src);
  const dst = formatIpv4Address(ip.dst);
  const po = off + ip.headerBytes;
  const pl = ip.payloadBytes;
  if (ip.fragmentOffsetBytes > 0) return `IPv4 ${src} > ${dst}: fragment offset ${ip.fragmentOffsetBytes}, proto ${ip.protocol}, length ${pl}`;
  const frag = ip.moreFragments ? ' (first fragment)' : '';
  switch (ip.protocol) {
    case IP_PROTO_ICMP:
      try {
        const m = parseIcmp(buf, po, pl);
        const name = ICMP_TYPES[m.type] ?? `type ${m.type} code ${m.code}`;
        const idSeq = m.type === 0 || m.type === 8 ? `, id ${m.ident}, seq ${m.seq}` : '';
        return `IPv4 ${src} > ${dst}: ICMP ${name}${idSeq}, length ${pl}${frag}`;
      } catch (err) {
        return `IPv4 ${src} > ${dst}: malformed ICMP: ${why(err)}`;
      }
    case IP_PROTO_UDP:
      return 'IPv4 ' + decodeUdp(buf, po, pl, src, dst, ip.moreFragments ? null : { src: ip.src, dst: ip.dst }) + frag;
    case IP_PROTO_TCP:
      return 'IPv4 ' + decodeTcp(buf, po, pl, src, dst) + frag;
    default:
      return `IPv4 ${src} > ${dst}: proto ${ip.protocol}, length ${pl}${frag}`;
  }
}

const ICMPV6_TYPES: Record<number, string> = {
  1: 'destination unreachable', 2: 'packet too big', 3: 'time exceeded', 128: 'echo request', 129: 'echo reply',
  133: 'router solicitation', 134: 'router advertisement', 135: 'neighbor solicitation', 136: 'neighbor advertisement',
  143: 'multicast listener report v2',
};

function decodeIpv6(buf: Buffer, off: number, len: number): string {
  if (len < 40) return `IPv6 malformed IPv6: header needs 40 bytes, got ${len}`;
  if (buf[off] >> 4 !== 6) return `IPv6 malformed IPv6: version is ${buf[off] >> 4}, expected 6`;
  const payload = buf.readUInt16BE(off + 4);
  if (40 + payload > len) return `IPv6 malformed IPv6: payload length ${payload} exceeds the ${len - 40} bytes received`;
  let next = buf[off + 6];
  const src = formatIpv6(buf, off + 8);
  const dst = formatIpv6(buf, off + 24);
  let po = off + 40;
  let pl = payload;
  // Hop-by-hop options (MLD reports carry one): skip it to reach ICMPv6.
  if (next === 0 && pl >= 8) {
    const ext = (buf[po + 1] + 1) * 8;
    if (ext > pl) return `IPv6 ${src} > ${dst}: malformed IPv6: hop-by-hop header of ${ext} bytes exceeds the payload`;
    next = buf[po];
    po += ext;
    pl -= ext;
  }
  switch (next) {
    case IP_PROTO_ICMPV6: {
      if (pl < 4) return `IPv6 ${src} > ${dst}: malformed ICMPv6: needs 4 bytes, got ${pl}`;
      const t = buf[po];
      let extra = '';
      if ((t === 135 || t === 136) && pl >= 24) extra = ` ${formatIpv6(buf, po + 8)}`;
      return `IPv6 ${src} > ${dst}: ICMPv6 ${ICMPV6_TYPES[t] ?? `type ${t}`}${extra}, length ${pl}`;
    }
    case IP_PROTO_UDP:
      return 'IPv6 ' + decodeUdp(buf, po, pl, src, dst, null);
    case IP_PROTO_TCP:
      return 'IPv6 ' + decodeTcp(buf, po, pl, src, dst);
    default:
      return `IPv6 ${src} > ${dst}: next header ${next}, length ${pl}`;
  }
}

function decodeArp(buf: Buffer, off: number, len: number): string {
  try {
    const a = parseArp(buf, off, len);
    const sip = formatIpv4Address(a.senderIp);
    const tip = formatIpv4Address(a.targetIp);
    if (a.operation === ARP_OP_REQUEST) {
      if (a.senderIp === 0) return `ARP probe who-has ${tip} tell ${formatMac(a.senderMac)}`;
      if (a.senderIp === a.targetIp) return `ARP announcement (gratuitous) ${sip} is-at ${formatMac(a.senderMac)}`;
      return `ARP request who-has ${tip} tell ${sip}`;
    }
    if (a.operation === ARP_OP_REPLY) return `ARP reply ${sip} is-at ${formatMac(a.senderMac)}`;
    return `ARP operation ${a.operation} ${sip} > ${tip}`;
  } catch (err) {
    return `malformed ARP: ${why(err)}`;
  }
}

/** The decode after the MACs: "ARP request who-has ...", "IPv4 a > b: ICMP echo request ...". */
export function decodePayload(buf: Buffer, off: number, len: number): string {
  if (len < 14) return `malformed Ethernet: frame of ${len} bytes is shorter than the 14-byte header`;
  let type = buf.readUInt16BE(off + 12);
  let o = off + 14;
  let vlan = '';
  while ((type === ETHERTYPE_VLAN || type === ETHERTYPE_QINQ) && o + 4 <= off + len) {
    vlan += `vlan ${buf.readUInt16BE(o) & 0x0fff}, `;
    type = buf.readUInt16BE(o + 2);
    o += 4;
  }
  const rest = off + len - o;
  switch (type) {
    case ETHERTYPE_ARP: return vlan + decodeArp(buf, o, rest);
    case ETHERTYPE_IPV4: return vlan + decodeIpv4(buf, o, rest);
    case ETHERTYPE_IPV6: return vlan + decodeIpv6(buf, o, rest);
    default:
      return vlan + (type < 0x0600 ? `802.3 length ${type}` : `ethertype 0x${type.toString(16).padStart(4, '0')}`) + `, length ${len}`;
  }
}

/** "src > dst, <decode>" for a whole frame. Never throws. */
export function decodeFrame(buf: Buffer, off = 0, len = buf.length - off): string {
  try {
    if (len < 14) return `malformed Ethernet: frame of ${len} bytes is shorter than the 14-byte header`;
    const dst = buf.readUInt32BE(off) * 0x10000 + buf.readUInt16BE(off + 4);
    const src = buf.readUInt32BE(off + 6) * 0x10000 + buf.readUInt16BE(off + 10);
    return `${formatMac(src)} > ${formatMac(dst)}, ${decodePayload(buf, off, len)}`;
  } catch (err) {
    // The parsers are checked; this is the last line of defence for a bug in this file.
    return `malformed frame: ${why(err)}`;
  }
}

/** "HH:MM:SS.uuuuuu" local time for a microsecond timestamp. */
export function formatTimeUs(us: number): string {
  const d = new Date(Math.floor(us / 1000));
  const p2 = (n: number) => String(n).padStart(2, '0');
  return `${p2(d.getHours())}:${p2(d.getMinutes())}:${p2(d.getSeconds())}.${String(us % 1_000_000).padStart(6, '0')}`;
}
