/**
 * DNS messages (RFC 1035 section 4; compression in 4.1.4). Read RFC 1035 4.1 first.
 *
 * `parseDns` is the checked path: it throws LP_ERR_WIRE for a short header, a name that runs past
 * the end, a label over 63 bytes, a name over 255 bytes, a compression pointer that does not point
 * strictly backwards (which rules out loops), a name that follows more than DNS_MAX_POINTER_HOPS
 * pointers, or a record whose data runs past the end. A responder reads only the header and the
 * first question (`parseDnsQuestion`), so the work per query is one name whatever the counts say.
 * `emitDns` writes names uncompressed, except that a record owned by the first question's name
 * points to it (RFC 1035 4.1.4), so an answer costs 16 bytes over its question.
 * Leaf module: imports only util/errors.
 */
import { LanpartyError } from '../util/index.js';

export const DNS_PORT = 53;
export const DNS_HEADER_BYTES = 12;
export const DNS_MAX_NAME_BYTES = 255;
export const DNS_MAX_LABEL_BYTES = 63;
/**
 * Most compression pointers followed in one name. A name has at most 127 labels, and a pointer
 * that leads to no label is of no use, so a real name needs far fewer.
 */
export const DNS_MAX_POINTER_HOPS = 127;
/** Largest DNS message over UDP without EDNS (RFC 1035 section 4.2.1). */
export const DNS_UDP_MAX_BYTES = 512;
/** Offset of the first question: a pointer to it is 0xc00c. */
const FIRST_QUESTION_OFFSET = 12;
export const DNS_TYPE_A = 1;
export const DNS_TYPE_PTR = 12;
export const DNS_TYPE_AAAA = 28;
export const DNS_TYPE_OPT = 41;
export const DNS_TYPE_ANY = 255;
export const DNS_CLASS_IN = 1;
export const DNS_RCODE_NOERROR = 0;
export const DNS_RCODE_FORMERR = 1;
export const DNS_RCODE_SERVFAIL = 2;
export const DNS_RCODE_NXDOMAIN = 3;
export const DNS_RCODE_NOTIMP = 4;
export const DNS_RCODE_REFUSED = 5;

export interface DnsQuestion {
  /** Dotted name without the trailing dot, case as received ("" for the root). */
  name: string;
  type: number;
  class: number;
}

export interface DnsRecord {
  name: string;
  type: number;
  class: number;
  ttl: number;
  /** RDATA copied out of the message (a compressed name inside it is not expanded). */
  data: Buffer;
}

export interface DnsRepr {
  id: number;
  response: boolean;
  opcode: number;
  authoritative: boolean;
  truncated: boolean;
  recursionDesired: boolean;
  recursionAvailable: boolean;
  rcode: number;
  questions: DnsQuestion[];
  answers: DnsRecord[];
  authorities: DnsRecord[];
  additionals: DnsRecord[];
}

function wireError(msg: string): LanpartyError {
  return new LanpartyError('LP_ERR_WIRE', 'dns: ' + msg);
}

/** Reads a possibly compressed name at `o`; returns it and the offset just after it in place. */
function readName(buf: Buffer, start: number, end: number, o: number): { name: string; next: number } {
  const labels: string[] = [];
  let nameBytes = 1;
  let next = -1;
  let floor = o;   // a pointer must go strictly below every position read so far: no loops
  let hops = 0;
  for (;;) {
    if (o >= end) throw wireError('name runs past the end of the message');
    const b = buf[o];
    if (b === 0) {
      if (next < 0) next = o + 1;
      break;
    }
    if ((b & 0xc0) === 0xc0) {
      if (o + 1 >= end) throw wireError('compression pointer runs past the end');
      const target = start + (((b & 0x3f) << 8) | buf[o + 1]);
      if (target >= floor) throw wireError(`compression pointer to ${target - start} does not point backwards`);
      if (++hops > DNS_MAX_POINTER_HOPS) throw wireError(`name follows more than ${DNS_MAX_POINTER_HOPS} compression pointers`);
      if (next < 0) next = o + 2;
      o = target;
      floor = target;
      continue;
    }
    if ((b & 0xc0) !== 0) throw wireError(`label type 0x${(b & 0xc0).toString(16)} is not supported`);
    if (o + 1 + b > end) throw wireError('label runs past the end of the message');
    nameBytes += b + 1;
    if (nameBytes > DNS_MAX_NAME_BYTES) throw wireError(`name is longer than ${DNS_MAX_NAME_BYTES} bytes`);
    const label = buf.toString('latin1', o + 1, o + 1 + b);
    if (label.includes('.')) throw wireError('label contains a dot');
    labels.push(label);
    o += 1 + b;
  }
  return { name: labels.join('.'), next };
}

function readRecords(buf: Buffer, start: number, end: number, o: number, count: number, what: string, out: DnsRecord[]): number {
  for (let i = 0; i < count; i++) {
    const n = readName(buf, start, end, o);
    o = n.next;
    if (o + 10 > end) throw wireError(`${what} record ${i} header runs past the end`);
    const rdLength = buf.readUInt16BE(o + 8);
    if (o + 10 + rdLength > end) throw wireError(`${what} record ${i} data length ${rdLength} runs past the end`);
    out.push({
      name: n.name, type: buf.readUInt16BE(o), class: buf.readUInt16BE(o + 2), ttl: buf.readUInt32BE(o + 4),
      data: Buffer.from(buf.subarray(o + 10, o + 10 + rdLength)),
    });
    o += 10 + rdLength;
  }
  return o;
}

/** Checked parse of buf[off..off+len). Bytes after the last record are ignored. */
export function parseDns(buf: Buffer, off: number, len: number): DnsRepr {
  if (len < DNS_HEADER_BYTES) throw wireError(`header needs ${DNS_HEADER_BYTES} bytes, got ${len}`);
  const end = off + len;
  const flags = buf.readUInt16BE(off + 2);
  const qd = buf.readUInt16BE(off + 4);
  const an = buf.readUInt16BE(off + 6);
  const ns = buf.readUInt16BE(off + 8);
  const ar = buf.readUInt16BE(off + 10);
  // Each question takes at least 5 bytes and each record 11: reject impossible counts before looping.
  if (DNS_HEADER_BYTES + qd * 5 + (an + ns + ar) * 11 > len) throw wireError(`counts ${qd}/${an}/${ns}/${ar} do not fit in ${len} bytes`);
  const r: DnsRepr = {
    id: buf.readUInt16BE(off),
    response: (flags & 0x8000) !== 0,
    opcode: (flags >> 11) & 0xf,
    authoritative: (flags & 0x0400) !== 0,
    truncated: (flags & 0x0200) !== 0,
    recursionDesired: (flags & 0x0100) !== 0,
    recursionAvailable: (flags & 0x0080) !== 0,
    rcode: flags & 0xf,
    questions: [], answers: [], authorities: [], additionals: [],
  };
  let o = off + DNS_HEADER_BYTES;
  for (let i = 0; i < qd; i++) {
    const n = readName(buf, off, end, o);
    o = n.next;
    if (o + 4 > end) throw wireError(`question ${i} type and class run past the end`);
    r.questions.push({ name: n.name, type: buf.readUInt16BE(o), class: buf.readUInt16BE(o + 2) });
    o += 4;
  }
  o = readRecords(buf, off, end, o, an, 'answer', r.answers);
  o = readRecords(buf, off, end, o, ns, 'authority', r.authorities);
  readRecords(buf, off, end, o, ar, 'additional', r.additionals);
  return r;
}

/**
 * The first question of the message in buf[off..off+len), read without looking at the counts or
 * at anything after it (the caller checks QDCOUNT from the header first). Throws LP_ERR_WIRE.
 */
export function parseDnsQuestion(buf: Buffer, off: number, len: number): DnsQuestion {
  if (len < DNS_HEADER_BYTES) throw wireError(`header needs ${DNS_HEADER_BYTES} bytes, got ${len}`);
  const end = off + len;
  const n = readName(buf, off, end, off + DNS_HEADER_BYTES);
  if (n.next + 4 > end) throw wireError('question 0 type and class run past the end');
  return { name: n.name, type: buf.readUInt16BE(n.next), class: buf.readUInt16BE(n.next + 2) };
}

/** The wire form of a dotted name. Throws LP_ERR_WIRE for an empty or over-long label or name. */
export function encodeDnsName(name: string): Buffer {
  const trimmed = name.endsWith('.') ? name.slice(0, -1) : name;
  const labels = trimmed === '' ? [] : trimmed.split('.');
  const parts: Buffer[] = [];
  for (const label of labels) {
    const b = Buffer.from(label, 'latin1');
    if (b.length === 0 || b.length > DNS_MAX_LABEL_BYTES) throw wireError(`label "${label}" in "${name}" must be 1..${DNS_MAX_LABEL_BYTES} bytes`);
    parts.push(Buffer.from([b.length]), b);
  }
  parts.push(Buffer.from([0]));
  const out = Buffer.concat(parts);
  if (out.length > DNS_MAX_NAME_BYTES) throw wireError(`name "${name}" is longer than ${DNS_MAX_NAME_BYTES} bytes`);
  return out;
}

const POINTER_TO_FIRST_QUESTION = Buffer.from([0xc0, FIRST_QUESTION_OFFSET]);

/** `firstName`: the first question's name, which a record of the same name points to; or null. */
function emitRecord(parts: Buffer[], rec: DnsRecord, firstName: string | null): void {
  const head = Buffer.alloc(10);
  head.writeUInt16BE(rec.type, 0);
  head.writeUInt16BE(rec.class, 2);
  head.writeUInt32BE(rec.ttl >>> 0, 4);
  head.writeUInt16BE(rec.data.length, 8);
  parts.push(rec.name === firstName ? POINTER_TO_FIRST_QUESTION : encodeDnsName(rec.name), head, rec.data);
}

/** Builds the message for `repr` (allocates; only record names equal to the first question's point to it). */
export function emitDns(repr: DnsRepr): Buffer {
  const head = Buffer.alloc(DNS_HEADER_BYTES);
  head.writeUInt16BE(repr.id, 0);
  head.writeUInt16BE(
    (repr.response ? 0x8000 : 0) | ((repr.opcode & 0xf) << 11) | (repr.authoritative ? 0x0400 : 0) | (repr.truncated ? 0x0200 : 0) |
    (repr.recursionDesired ? 0x0100 : 0) | (repr.recursionAvailable ? 0x0080 : 0) | (repr.rcode & 0xf), 2);
  head.writeUInt16BE(repr.questions.length, 4);
  head.writeUInt16BE(repr.answers.length, 6);
  head.writeUInt16BE(repr.authorities.length, 8);
  head.writeUInt16BE(repr.additionals.length, 10);
  const parts: Buffer[] = [head];
  for (const q of repr.questions) {
    const tc = Buffer.alloc(4);
    tc.writeUInt16BE(q.type, 0);
    tc.writeUInt16BE(q.class, 2);
    parts.push(encodeDnsName(q.name), tc);
  }
  const firstName = repr.questions.length > 0 ? repr.questions[0].name : null;
  for (const rec of repr.answers) emitRecord(parts, rec, firstName);
  for (const rec of repr.authorities) emitRecord(parts, rec, firstName);
  for (const rec of repr.additionals) emitRecord(parts, rec, firstName);
  return Buffer.concat(parts);
}
