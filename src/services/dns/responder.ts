/**
 * A small authoritative DNS responder for the LAN (RFC 1035; reverse names per RFC 1035 3.5).
 *
 * It answers A and PTR queries for the hostnames guests sent in DHCP, in the local zone
 * (default "lan"), plus "lanparty.<zone>" for the virtual host itself. Single-label names are
 * answered as if the zone were appended. Names inside the zone or the subnet's reverse zone that
 * do not exist get NXDOMAIN; every other name is REFUSED at once, because the LAN has no upstream
 * and a quick refusal lets a guest's resolver move on. Malformed queries are counted and dropped.
 */
import type { DnsQuestion, DnsRecord, DnsRepr } from '../../wire/dns.js';
import {
  DNS_CLASS_IN, DNS_RCODE_FORMERR, DNS_RCODE_NOERROR, DNS_RCODE_NOTIMP, DNS_RCODE_NXDOMAIN, DNS_RCODE_REFUSED,
  DNS_TYPE_A, DNS_TYPE_ANY, DNS_TYPE_PTR, emitDns, encodeDnsName, parseDns,
} from '../../wire/dns.js';
import type { Ipv4Cidr } from '../../wire/ipv4.js';
import type { DnsCounters } from '../types.js';

/** Name lookups, answered by the DHCP lease table. Names are lowercase single labels. */
export interface NameTable {
  lookupName(label: string): number | null;
  lookupAddress(ip: number): string | null;
}

/** The virtual host's own name in the zone. */
export const VHOST_DNS_LABEL = 'lanparty';
/** TTL of answers, seconds: short, since leases come and go. */
const ANSWER_TTL_S = 60;

export class DnsResponder {
  readonly counters: DnsCounters = {
    queries: 0, answered: 0, nxdomain: 0, refused: 0, notImplemented: 0, malformed: 0, responsesIgnored: 0,
  };
  private readonly zone: string;
  private readonly reverseZone: string;

  constructor(zone: string, private readonly hostIp: number, private readonly subnet: Ipv4Cidr, private readonly names: NameTable) {
    this.zone = zone.toLowerCase().replace(/\.$/, '');
    this.reverseZone = reverseZoneFor(subnet);
  }

  /** Answers one query (a borrowed UDP payload). Returns the response, or null to send nothing. */
  handle(payload: Buffer): Buffer | null {
    let q: DnsRepr;
    try {
      q = parseDns(payload, 0, payload.length);
    } catch {
      this.counters.malformed++;
      return null;
    }
    if (q.response) { this.counters.responsesIgnored++; return null; }
    this.counters.queries++;
    const r: DnsRepr = {
      id: q.id, response: true, opcode: q.opcode, authoritative: false, truncated: false,
      recursionDesired: q.recursionDesired, recursionAvailable: false, rcode: DNS_RCODE_NOERROR,
      questions: q.questions, answers: [], authorities: [], additionals: [],
    };
    if (q.opcode !== 0) {
      this.counters.notImplemented++;
      r.rcode = DNS_RCODE_NOTIMP;
      return emitDns(r);
    }
    if (q.questions.length !== 1) {
      this.counters.malformed++;
      r.rcode = DNS_RCODE_FORMERR;
      return emitDns(r);
    }
    r.rcode = this.answer(q.questions[0], r.answers);
    r.authoritative = r.rcode !== DNS_RCODE_REFUSED;
    if (r.rcode === DNS_RCODE_REFUSED) this.counters.refused++;
    else if (r.rcode === DNS_RCODE_NXDOMAIN) this.counters.nxdomain++;
    else this.counters.answered++;
    try {
      return emitDns(r);
    } catch {
      // A question name that cannot be re-encoded (an empty label after parsing) is malformed.
      this.counters.malformed++;
      return null;
    }
  }

  private answer(question: DnsQuestion, out: DnsRecord[]): number {
    const name = question.name.toLowerCase();
    if (question.class !== DNS_CLASS_IN) return DNS_RCODE_REFUSED;
    const wantsA = question.type === DNS_TYPE_A || question.type === DNS_TYPE_ANY;
    const wantsPtr = question.type === DNS_TYPE_PTR || question.type === DNS_TYPE_ANY;
    let label: string | null = null;
    if (name.endsWith('.' + this.zone)) label = name.slice(0, -this.zone.length - 1);
    else if (name !== '' && !name.includes('.') && name !== this.zone) label = name;
    if (label !== null) {
      if (label.includes('.')) return DNS_RCODE_NXDOMAIN;
      const ip = label === VHOST_DNS_LABEL ? this.hostIp : this.names.lookupName(label);
      if (ip === null) return DNS_RCODE_NXDOMAIN;
      if (wantsA) out.push({ name: question.name, type: DNS_TYPE_A, class: DNS_CLASS_IN, ttl: ANSWER_TTL_S, data: u32(ip) });
      return DNS_RCODE_NOERROR;   // other types: NODATA (no answers, NOERROR)
    }
    if (name === this.zone) return DNS_RCODE_NOERROR;
    if (name.endsWith('.in-addr.arpa') && (name === this.reverseZone || name.endsWith('.' + this.reverseZone))) {
      const ip = parseReverse(name);
      if (ip === null || ((ip & this.subnet.mask) >>> 0) !== this.subnet.network) return DNS_RCODE_NXDOMAIN;
      const host = ip === this.hostIp ? VHOST_DNS_LABEL : this.names.lookupAddress(ip);
      if (host === null) return DNS_RCODE_NXDOMAIN;
      if (wantsPtr) out.push({ name: question.name, type: DNS_TYPE_PTR, class: DNS_CLASS_IN, ttl: ANSWER_TTL_S, data: encodeDnsName(`${host}.${this.zone}`) });
      return DNS_RCODE_NOERROR;
    }
    return DNS_RCODE_REFUSED;
  }
}

function u32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0);
  return b;
}

/** "d.c.b.a.in-addr.arpa" to the address, or null when it is not four decimal octets. */
function parseReverse(name: string): number | null {
  const parts = name.slice(0, -'.in-addr.arpa'.length).split('.');
  if (parts.length !== 4) return null;
  let ip = 0;
  for (let i = 3; i >= 0; i--) {
    if (!/^(0|[1-9]\d{0,2})$/.test(parts[i]) || Number(parts[i]) > 255) return null;
    ip = ip * 256 + Number(parts[i]);
  }
  return ip;
}

/** The reverse zone covering the subnet at octet granularity (a /24 gives "c.b.a.in-addr.arpa"). */
function reverseZoneFor(subnet: Ipv4Cidr): string {
  const octets = Math.floor(subnet.prefixLength / 8);
  const parts: number[] = [];
  for (let i = 0; i < octets; i++) parts.push((subnet.network >>> (24 - 8 * i)) & 255);
  return parts.reverse().map(String).concat(['in-addr', 'arpa']).join('.');
}
