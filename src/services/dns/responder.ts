/**
 * A small authoritative DNS responder for the LAN (RFC 1035; reverse names per RFC 1035 3.5).
 *
 * It answers A and PTR queries for the hostnames guests sent in DHCP, in the local zone
 * (default "lan"), plus "lanparty.<zone>" for the virtual host itself. Single-label names are
 * answered as if the zone were appended. Names inside the zone or the subnet's reverse zone that
 * do not exist get NXDOMAIN; every other name is REFUSED at once, because the LAN has no upstream
 * and a quick refusal lets a guest's resolver move on. Malformed queries are counted and dropped.
 *
 * The source address of a query can be forged, so a reply is never a lever: only the header and
 * the first question are read (QDCOUNT is checked first), FORMERR and NOTIMP carry the header
 * alone, a reply without answers is never larger than its query, and one with an answer never
 * larger than its query or 512 bytes (RFC 1035 4.2.1), whichever is more; past that the reply is
 * cut to the header with TC set. Work per query: one name of at most 255 bytes and 127 pointers.
 */
import { type Logger, RateLimitedLog, silentLogger } from '../../util/index.js';
import type { DnsQuestion, DnsRecord, DnsRepr, Ipv4Cidr } from '../../wire/index.js';
import {
  DNS_CLASS_IN, DNS_HEADER_BYTES, DNS_RCODE_FORMERR, DNS_RCODE_NOERROR, DNS_RCODE_NOTIMP, DNS_RCODE_NXDOMAIN, DNS_RCODE_REFUSED,
  DNS_TYPE_A, DNS_TYPE_ANY, DNS_TYPE_PTR, DNS_UDP_MAX_BYTES, emitDns, encodeDnsName, parseDnsQuestion,
} from '../../wire/index.js';
import { type Clock, type DnsCounters, systemClock } from '../types.js';

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
    truncated: 0, handlerErrors: 0,
  };
  private readonly zone: string;
  private readonly reverseZone: string;
  private readonly errorLog: RateLimitedLog;

  constructor(
    zone: string, private readonly hostIp: number, private readonly subnet: Ipv4Cidr, private readonly names: NameTable,
    log: Logger = silentLogger, private readonly clock: Clock = systemClock,
  ) {
    this.zone = zone.toLowerCase().replace(/\.$/, '');
    this.reverseZone = reverseZoneFor(subnet);
    this.errorLog = new RateLimitedLog((m) => log.error(m), 5, 60_000);
  }

  /**
   * Answers one query (a borrowed UDP payload). Returns the response, or null to send nothing.
   * Never throws: a bug in a handler is counted as `handlerErrors`, logged (rate limited), and the
   * query goes unanswered.
   */
  handle(payload: Buffer): Buffer | null {
    try {
      return this.respond(payload);
    } catch (err) {
      this.counters.handlerErrors++;
      this.errorLog.write(this.clock.nowMs(), `internal error answering a DNS query (dropped; DNS keeps serving): ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      return null;
    }
  }

  private respond(payload: Buffer): Buffer | null {
    if (payload.length < DNS_HEADER_BYTES) { this.counters.malformed++; return null; }
    const flags = payload.readUInt16BE(2);
    if ((flags & 0x8000) !== 0) { this.counters.responsesIgnored++; return null; }
    this.counters.queries++;
    const opcode = (flags >> 11) & 0xf;
    const r: DnsRepr = {
      id: payload.readUInt16BE(0), response: true, opcode, authoritative: false, truncated: false,
      recursionDesired: (flags & 0x0100) !== 0, recursionAvailable: false, rcode: DNS_RCODE_NOERROR,
      questions: [], answers: [], authorities: [], additionals: [],
    };
    // FORMERR and NOTIMP carry the header alone (RFC 1035 leaves the question out to the server).
    if (opcode !== 0) {
      this.counters.notImplemented++;
      r.rcode = DNS_RCODE_NOTIMP;
      return emitDns(r);
    }
    if (payload.readUInt16BE(4) !== 1) {
      this.counters.malformed++;
      r.rcode = DNS_RCODE_FORMERR;
      return emitDns(r);
    }
    let question: DnsQuestion;
    try {
      question = parseDnsQuestion(payload, 0, payload.length);
    } catch {
      this.counters.malformed++;
      return null;
    }
    r.questions = [question];
    r.rcode = this.answer(question, r.answers);
    r.authoritative = r.rcode !== DNS_RCODE_REFUSED;
    if (r.rcode === DNS_RCODE_REFUSED) this.counters.refused++;
    else if (r.rcode === DNS_RCODE_NXDOMAIN) this.counters.nxdomain++;
    else this.counters.answered++;
    let reply: Buffer;
    try {
      reply = emitDns(r);
    } catch {
      // A question name that cannot be re-encoded (an empty label after parsing) is malformed.
      this.counters.malformed++;
      return null;
    }
    // A compressed question (a pointer into the header) grows when written out; an answer adds a
    // record. Past the limit the reply is the header alone with TC set.
    const limit = r.answers.length === 0 ? payload.length : Math.max(payload.length, DNS_UDP_MAX_BYTES);
    if (reply.length <= limit) return reply;
    this.counters.truncated++;
    r.truncated = true;
    r.questions = [];
    r.answers = [];
    return emitDns(r);
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
