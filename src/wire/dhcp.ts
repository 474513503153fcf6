/**
 * DHCPv4 messages (RFC 2131) and the options lanparty uses (RFC 2132; RFC 3396 long options;
 * RFC 6842 client identifier echo). Read RFC 2131 section 2 (message format) and 4.1 first.
 *
 * `parseDhcp` is the checked path for untrusted bytes: it throws LP_ERR_WIRE naming the field for
 * a short message, a missing magic cookie, an option that runs past the end, or a known option with
 * a bad length or value (e.g. a hostname over 63 bytes). Only the options lanparty reads are
 * collected; their RFC 3396 pieces are joined within the limits below (a client can send 60 KB of
 * client identifier in a jumbo frame otherwise), and going over one throws DhcpOptionLimitError,
 * an LP_ERR_WIRE. `emitDhcp` writes a message padded to the
 * 300-byte BOOTP minimum that some clients still expect (RFC 1542 section 2.1).
 * Leaf module: imports only util/errors.
 */
import { LanpartyError } from '../util/index.js';

export const DHCP_SERVER_PORT = 67;
export const DHCP_CLIENT_PORT = 68;
export const DHCP_FIXED_BYTES = 236;            // op .. file, before the magic cookie
export const DHCP_MIN_BYTES = DHCP_FIXED_BYTES + 4;
export const BOOTP_MIN_BYTES = 300;
export const DHCP_MAGIC_COOKIE = 0x63825363;
export const BOOTREQUEST = 1;
export const BOOTREPLY = 2;
export const DHCP_FLAG_BROADCAST = 0x8000;
/** Longest hostname (option 12) accepted: one DNS label (RFC 1035 section 2.3.4). */
export const DHCP_MAX_HOSTNAME_BYTES = 63;
/**
 * Longest client identifier (option 61) accepted, joined: one option's worth. Real ones are 7
 * bytes (type 1 + MAC) or a DUID-based 19-ish bytes (RFC 4361); a lease record keeps it.
 */
export const DHCP_MAX_CLIENT_ID_BYTES = 255;
/** Longest joined value of any other option lanparty reads (four RFC 3396 pieces of 255, and some). */
export const DHCP_MAX_OPTION_BYTES = 1024;
/** Most pieces one option may be split into (RFC 3396); 1024 bytes need five. */
export const DHCP_MAX_OPTION_PIECES = 8;
/** Most bytes of all the options lanparty reads in one message, joined. */
export const DHCP_MAX_OPTIONS_BYTES = 4096;

export const DHCPDISCOVER = 1;
export const DHCPOFFER = 2;
export const DHCPREQUEST = 3;
export const DHCPDECLINE = 4;
export const DHCPACK = 5;
export const DHCPNAK = 6;
export const DHCPRELEASE = 7;
export const DHCPINFORM = 8;

export type DhcpMessageName = 'discover' | 'offer' | 'request' | 'decline' | 'ack' | 'nak' | 'release' | 'inform' | 'other';
const MESSAGE_NAMES: readonly DhcpMessageName[] = ['other', 'discover', 'offer', 'request', 'decline', 'ack', 'nak', 'release', 'inform'];

/** 'discover' for 1 and so on; 'other' for types this module does not name (or BOOTP, null). */
export function dhcpMessageName(type: number | null): DhcpMessageName {
  return type !== null && type >= 1 && type <= 8 ? MESSAGE_NAMES[type] : 'other';
}

/** Option codes (RFC 2132 section numbers in comments). */
export const OPT = {
  pad: 0, subnetMask: 1, router: 3, dnsServer: 6, hostname: 12, domainName: 15, mtu: 26, broadcastAddress: 28,
  requestedIp: 50, leaseTime: 51, overload: 52, messageType: 53, serverId: 54, parameterRequestList: 55,
  message: 56, maxMessageSize: 57, renewalTime: 58, rebindingTime: 59, vendorClassId: 60, clientId: 61, end: 255,
} as const;

/** Byte offsets of the fixed fields. */
const field = { op: 0, htype: 1, hlen: 2, hops: 3, xid: 4, secs: 8, flags: 10, ciaddr: 12, yiaddr: 16, siaddr: 20, giaddr: 24, chaddr: 28, sname: 44, file: 108, cookie: 236, options: 240 } as const;

/**
 * A validated DHCP message. Addresses are unsigned 32-bit numbers (0 when unset); option fields
 * are null when the option is absent. Buffers are copies: a Repr may outlive the frame.
 */
export interface DhcpRepr {
  op: number;
  hops: number;
  xid: number;
  secs: number;
  broadcast: boolean;
  ciaddr: number;
  yiaddr: number;
  siaddr: number;
  giaddr: number;
  /** Client hardware address as a 48-bit number (htype 1, hlen 6 only). */
  chaddr: number;
  /** Option 53; null for a plain BOOTP message. */
  messageType: number | null;
  serverId: number | null;
  requestedIp: number | null;
  leaseSeconds: number | null;
  renewalSeconds: number | null;
  rebindingSeconds: number | null;
  subnetMask: number | null;
  broadcastAddress: number | null;
  routers: number[];
  dnsServers: number[];
  domainName: string | null;
  hostname: string | null;
  mtu: number | null;
  clientId: Buffer | null;
  parameterRequestList: number[];
  maxMessageSize: number | null;
  message: string | null;
  vendorClassId: string | null;
}

/** A Repr with every field at its empty value, for building messages. */
export function emptyDhcpRepr(): DhcpRepr {
  return {
    op: BOOTREQUEST, hops: 0, xid: 0, secs: 0, broadcast: false, ciaddr: 0, yiaddr: 0, siaddr: 0, giaddr: 0, chaddr: 0,
    messageType: null, serverId: null, requestedIp: null, leaseSeconds: null, renewalSeconds: null, rebindingSeconds: null,
    subnetMask: null, broadcastAddress: null, routers: [], dnsServers: [], domainName: null, hostname: null, mtu: null,
    clientId: null, parameterRequestList: [], maxMessageSize: null, message: null, vendorClassId: null,
  };
}

function wireError(msg: string): LanpartyError {
  return new LanpartyError('LP_ERR_WIRE', 'dhcp: ' + msg);
}

/** An option (or all options together) over one of the limits above; `option` is its code (0: all). */
export class DhcpOptionLimitError extends LanpartyError {
  constructor(readonly option: number, msg: string) {
    super('LP_ERR_WIRE', 'dhcp: ' + msg);
  }
}

/** The options `parseDhcp` reads; every other code is skipped without being collected. */
const READ_OPTIONS = new Set<number>([
  OPT.subnetMask, OPT.router, OPT.dnsServer, OPT.hostname, OPT.domainName, OPT.mtu, OPT.broadcastAddress, OPT.requestedIp,
  OPT.leaseTime, OPT.overload, OPT.messageType, OPT.serverId, OPT.parameterRequestList, OPT.message, OPT.maxMessageSize,
  OPT.renewalTime, OPT.rebindingTime, OPT.vendorClassId, OPT.clientId,
]);

/** Pieces of the read options, and the bytes collected so far over all of them. */
interface CollectedOptions {
  pieces: Map<number, Buffer[]>;
  sizes: Map<number, number>;
  totalBytes: number;
}

/**
 * Walks one options area, appending each read option's data (RFC 3396: repeated options
 * concatenate), within DHCP_MAX_OPTION_PIECES, the per-option size limits and DHCP_MAX_OPTIONS_BYTES.
 */
function collectOptions(buf: Buffer, start: number, end: number, where: string, into: CollectedOptions): boolean {
  let o = start;
  while (o < end) {
    const code = buf[o];
    if (code === OPT.pad) { o++; continue; }
    if (code === OPT.end) return true;
    if (o + 1 >= end) throw wireError(`${where}: option ${code} has no length byte`);
    const optLen = buf[o + 1];
    if (o + 2 + optLen > end) throw wireError(`${where}: option ${code} length ${optLen} runs past the end`);
    if (READ_OPTIONS.has(code)) {
      let list = into.pieces.get(code);
      if (list === undefined) { list = []; into.pieces.set(code, list); }
      if (list.length >= DHCP_MAX_OPTION_PIECES) throw new DhcpOptionLimitError(code, `option ${code} is split into more than ${DHCP_MAX_OPTION_PIECES} pieces`);
      const size = (into.sizes.get(code) ?? 0) + optLen;
      const limit = code === OPT.clientId ? DHCP_MAX_CLIENT_ID_BYTES : DHCP_MAX_OPTION_BYTES;
      if (size > limit) throw new DhcpOptionLimitError(code, `option ${code} joins to more than ${limit} bytes`);
      into.totalBytes += optLen;
      if (into.totalBytes > DHCP_MAX_OPTIONS_BYTES) throw new DhcpOptionLimitError(0, `options join to more than ${DHCP_MAX_OPTIONS_BYTES} bytes`);
      into.sizes.set(code, size);
      list.push(buf.subarray(o + 2, o + 2 + optLen));
    }
    o += 2 + optLen;
  }
  return false;   // no end option; tolerated, as most servers do
}

function fixedLen(code: number, data: Buffer, name: string, expected: number): void {
  if (data.length !== expected) throw wireError(`option ${code} (${name}) length ${data.length}, expected ${expected}`);
}

function addrList(code: number, data: Buffer, name: string): number[] {
  if (data.length === 0 || data.length % 4 !== 0) throw wireError(`option ${code} (${name}) length ${data.length} is not a non-zero multiple of 4`);
  const out: number[] = [];
  for (let i = 0; i < data.length; i += 4) out.push(data.readUInt32BE(i));
  return out;
}

/** NVT ASCII text; trailing NULs (sent by some clients) are removed, control bytes are rejected. */
function text(code: number, data: Buffer, name: string, maxBytes: number): string {
  let n = data.length;
  while (n > 0 && data[n - 1] === 0) n--;
  if (n === 0) throw wireError(`option ${code} (${name}) is empty`);
  if (n > maxBytes) throw wireError(`option ${code} (${name}) is ${n} bytes, limit ${maxBytes}`);
  for (let i = 0; i < n; i++) {
    if (data[i] < 0x20 || data[i] > 0x7e) throw wireError(`option ${code} (${name}) has byte 0x${data[i].toString(16)} at ${i}`);
  }
  return data.toString('latin1', 0, n);
}

/** Checked parse of buf[off..off+len). Keeps no reference to `buf`. */
export function parseDhcp(buf: Buffer, off: number, len: number): DhcpRepr {
  if (len < DHCP_MIN_BYTES) throw wireError(`message needs ${DHCP_MIN_BYTES} bytes, got ${len}`);
  const op = buf[off + field.op];
  if (op !== BOOTREQUEST && op !== BOOTREPLY) throw wireError(`op ${op} is neither 1 (request) nor 2 (reply)`);
  if (buf[off + field.htype] !== 1 || buf[off + field.hlen] !== 6) throw wireError(`htype/hlen ${buf[off + field.htype]}/${buf[off + field.hlen]}, expected 1/6 (Ethernet)`);
  if (buf.readUInt32BE(off + field.cookie) !== DHCP_MAGIC_COOKIE) throw wireError('magic cookie missing (BOOTP is not served)');

  const collected: CollectedOptions = { pieces: new Map(), sizes: new Map(), totalBytes: 0 };
  const raw = collected.pieces;
  collectOptions(buf, off + field.options, off + len, 'options', collected);
  const overload = raw.get(OPT.overload);
  if (overload !== undefined) {
    const v = Buffer.concat(overload);
    if (v.length !== 1 || v[0] < 1 || v[0] > 3) throw wireError(`option 52 (overload) value is invalid`);
    if (v[0] & 1) collectOptions(buf, off + field.file, off + field.file + 128, 'file', collected);
    if (v[0] & 2) collectOptions(buf, off + field.sname, off + field.sname + 64, 'sname', collected);
  }

  const r = emptyDhcpRepr();
  r.op = op;
  r.hops = buf[off + field.hops];
  r.xid = buf.readUInt32BE(off + field.xid);
  r.secs = buf.readUInt16BE(off + field.secs);
  r.broadcast = (buf.readUInt16BE(off + field.flags) & DHCP_FLAG_BROADCAST) !== 0;
  r.ciaddr = buf.readUInt32BE(off + field.ciaddr);
  r.yiaddr = buf.readUInt32BE(off + field.yiaddr);
  r.siaddr = buf.readUInt32BE(off + field.siaddr);
  r.giaddr = buf.readUInt32BE(off + field.giaddr);
  r.chaddr = buf.readUInt32BE(off + field.chaddr) * 0x10000 + buf.readUInt16BE(off + field.chaddr + 4);

  for (const [code, parts] of raw) {
    const d = parts.length === 1 ? parts[0] : Buffer.concat(parts);
    switch (code) {
      case OPT.messageType:
        fixedLen(code, d, 'message type', 1);
        if (d[0] === 0) throw wireError('option 53 (message type) is 0');
        r.messageType = d[0];
        break;
      case OPT.serverId: fixedLen(code, d, 'server identifier', 4); r.serverId = d.readUInt32BE(0); break;
      case OPT.requestedIp: fixedLen(code, d, 'requested address', 4); r.requestedIp = d.readUInt32BE(0); break;
      case OPT.leaseTime: fixedLen(code, d, 'lease time', 4); r.leaseSeconds = d.readUInt32BE(0); break;
      case OPT.renewalTime: fixedLen(code, d, 'renewal time', 4); r.renewalSeconds = d.readUInt32BE(0); break;
      case OPT.rebindingTime: fixedLen(code, d, 'rebinding time', 4); r.rebindingSeconds = d.readUInt32BE(0); break;
      case OPT.subnetMask: fixedLen(code, d, 'subnet mask', 4); r.subnetMask = d.readUInt32BE(0); break;
      case OPT.broadcastAddress: fixedLen(code, d, 'broadcast address', 4); r.broadcastAddress = d.readUInt32BE(0); break;
      case OPT.router: r.routers = addrList(code, d, 'router'); break;
      case OPT.dnsServer: r.dnsServers = addrList(code, d, 'DNS server'); break;
      case OPT.domainName: r.domainName = text(code, d, 'domain name', 253); break;
      case OPT.hostname: r.hostname = text(code, d, 'hostname', DHCP_MAX_HOSTNAME_BYTES); break;
      case OPT.message: r.message = text(code, d, 'message', 255); break;
      case OPT.vendorClassId:
        if (d.length === 0) throw wireError('option 60 (vendor class) is empty');
        r.vendorClassId = d.toString('latin1');
        break;
      case OPT.mtu:
        fixedLen(code, d, 'MTU', 2);
        if (d.readUInt16BE(0) < 68) throw wireError(`option 26 (MTU) ${d.readUInt16BE(0)} is below 68`);
        r.mtu = d.readUInt16BE(0);
        break;
      case OPT.maxMessageSize:
        fixedLen(code, d, 'maximum message size', 2);
        if (d.readUInt16BE(0) < 576) throw wireError(`option 57 (maximum message size) ${d.readUInt16BE(0)} is below 576`);
        r.maxMessageSize = d.readUInt16BE(0);
        break;
      case OPT.clientId:
        if (d.length < 2) throw wireError(`option 61 (client identifier) length ${d.length}, minimum 2`);
        r.clientId = Buffer.from(d);
        break;
      case OPT.parameterRequestList:
        r.parameterRequestList = Array.from(d);
        break;
      default:
        break;   // options lanparty does not use are skipped
    }
  }
  return r;
}

function addOption(parts: Buffer[], code: number, data: Buffer): void {
  // RFC 3396: data longer than 255 bytes is split across repeated options.
  let o = 0;
  do {
    const n = Math.min(255, data.length - o);
    const head = Buffer.from([code, n]);
    parts.push(head, data.subarray(o, o + n));
    o += n;
  } while (o < data.length);
}

function u32(v: number): Buffer { const b = Buffer.alloc(4); b.writeUInt32BE(v >>> 0); return b; }
function u16(v: number): Buffer { const b = Buffer.alloc(2); b.writeUInt16BE(v); return b; }
function addrs(list: number[]): Buffer { const b = Buffer.alloc(list.length * 4); list.forEach((a, i) => b.writeUInt32BE(a >>> 0, i * 4)); return b; }

/** The options area for `repr` in a fixed order (53 and 54 first), end option included. */
function optionBytes(r: DhcpRepr): Buffer {
  const p: Buffer[] = [];
  if (r.messageType !== null) addOption(p, OPT.messageType, Buffer.from([r.messageType]));
  if (r.serverId !== null) addOption(p, OPT.serverId, u32(r.serverId));
  if (r.requestedIp !== null) addOption(p, OPT.requestedIp, u32(r.requestedIp));
  if (r.leaseSeconds !== null) addOption(p, OPT.leaseTime, u32(r.leaseSeconds));
  if (r.renewalSeconds !== null) addOption(p, OPT.renewalTime, u32(r.renewalSeconds));
  if (r.rebindingSeconds !== null) addOption(p, OPT.rebindingTime, u32(r.rebindingSeconds));
  if (r.subnetMask !== null) addOption(p, OPT.subnetMask, u32(r.subnetMask));
  if (r.broadcastAddress !== null) addOption(p, OPT.broadcastAddress, u32(r.broadcastAddress));
  if (r.mtu !== null) addOption(p, OPT.mtu, u16(r.mtu));
  if (r.routers.length > 0) addOption(p, OPT.router, addrs(r.routers));
  if (r.dnsServers.length > 0) addOption(p, OPT.dnsServer, addrs(r.dnsServers));
  if (r.domainName !== null) addOption(p, OPT.domainName, Buffer.from(r.domainName, 'latin1'));
  if (r.hostname !== null) addOption(p, OPT.hostname, Buffer.from(r.hostname, 'latin1'));
  if (r.message !== null) addOption(p, OPT.message, Buffer.from(r.message, 'latin1'));
  if (r.maxMessageSize !== null) addOption(p, OPT.maxMessageSize, u16(r.maxMessageSize));
  if (r.parameterRequestList.length > 0) addOption(p, OPT.parameterRequestList, Buffer.from(r.parameterRequestList));
  if (r.vendorClassId !== null) addOption(p, OPT.vendorClassId, Buffer.from(r.vendorClassId, 'latin1'));
  if (r.clientId !== null) addOption(p, OPT.clientId, r.clientId);
  p.push(Buffer.from([OPT.end]));
  return Buffer.concat(p);
}

/** Bytes `emitDhcp` writes for `repr` (at least 300). */
export function dhcpBufferLen(repr: DhcpRepr): number {
  return Math.max(BOOTP_MIN_BYTES, DHCP_MIN_BYTES + optionBytes(repr).length);
}

/** Builds the message for `repr` (services and tests; allocates). */
export function emitDhcp(repr: DhcpRepr): Buffer {
  const opts = optionBytes(repr);
  const b = Buffer.alloc(Math.max(BOOTP_MIN_BYTES, DHCP_MIN_BYTES + opts.length));
  b[field.op] = repr.op;
  b[field.htype] = 1;
  b[field.hlen] = 6;
  b[field.hops] = repr.hops;
  b.writeUInt32BE(repr.xid >>> 0, field.xid);
  b.writeUInt16BE(repr.secs, field.secs);
  b.writeUInt16BE(repr.broadcast ? DHCP_FLAG_BROADCAST : 0, field.flags);
  b.writeUInt32BE(repr.ciaddr >>> 0, field.ciaddr);
  b.writeUInt32BE(repr.yiaddr >>> 0, field.yiaddr);
  b.writeUInt32BE(repr.siaddr >>> 0, field.siaddr);
  b.writeUInt32BE(repr.giaddr >>> 0, field.giaddr);
  b.writeUInt32BE(Math.floor(repr.chaddr / 0x10000), field.chaddr);
  b.writeUInt16BE(repr.chaddr % 0x10000, field.chaddr + 4);
  b.writeUInt32BE(DHCP_MAGIC_COOKIE, field.cookie);
  opts.copy(b, field.options);
  return b;
}
