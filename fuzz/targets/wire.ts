/**
 * Fuzz targets for the wire codecs (src/wire): every checked parser that reads bytes from outside.
 * Property for each: it returns a value whose fields stay inside the input, or throws a
 * LanpartyError with code LP_ERR_WIRE, and nothing else; what parses re-emits to bytes that parse
 * to the same value (round trip) where the module has an emitter.
 */
import assert from 'node:assert/strict';
import { MAX_FRAME_INPUT_BYTES, type FuzzTarget } from '../engine.js';
import { dhcpPayloads, dnsPayloads, fixChecksums, guestFrames, hostilePayloads } from '../seeds.js';
import type * as Ethernet from '../../src/wire/ethernet.js';
import type * as Arp from '../../src/wire/arp.js';
import type * as Ipv4 from '../../src/wire/ipv4.js';
import type * as Udp from '../../src/wire/udp.js';
import type * as Icmp from '../../src/wire/icmp.js';
import type * as Dhcp from '../../src/wire/dhcp.js';
import type * as Dns from '../../src/wire/dns.js';
import type * as Vxlan from '../../src/wire/vxlan.js';
import type * as Decode from '../../src/cli/decode.js';

const WIRE = ['LP_ERR_WIRE'] as const;

export const ethernetTarget: FuzzTarget = {
  name: 'ethernet',
  description: 'Ethernet/802.1Q views: MACs, group bit and VLAN ID of any frame of 14+ bytes never read outside it',
  allowedCodes: WIRE,
  maxInputBytes: 64,
  seeds: () => guestFrames().map((f) => f.subarray(0, 64)),
  async setup(load) {
    const e = await load<typeof Ethernet>('src/wire/ethernet.js');
    return {
      run(b) {
        if (b.length < 14) return;
        const dst = e.dstMac(b, 0);
        const src = e.srcMac(b, 0);
        assert.ok(dst >= 0 && dst <= 0xffffffffffff && src >= 0 && src <= 0xffffffffffff);
        assert.equal(e.isGroupDst(b, 0), (b[0] & 1) === 1);
        const vlan = e.vlanId(b, 0, b.length);
        assert.ok(vlan >= 0 && vlan <= 4095);
        assert.equal(e.parseMac(e.formatMac(src)), src);
        const copy = Buffer.alloc(14);
        e.writeMac(copy, 0, dst);
        assert.equal(e.dstMac(copy, 0), dst);
      },
    };
  },
};

export const arpTarget: FuzzTarget = {
  name: 'arp',
  description: 'parseArp: LP_ERR_WIRE or a Repr that emits back to the same 28 bytes',
  allowedCodes: WIRE,
  maxInputBytes: 64,
  seeds: () => guestFrames().filter((f) => f.readUInt16BE(12) === 0x0806).map((f) => f.subarray(14)),
  async setup(load) {
    const a = await load<typeof Arp>('src/wire/arp.js');
    const out = Buffer.alloc(28);
    return {
      run(b) {
        const r = a.parseArp(b, 0, b.length);
        a.emitArp(r, out, 0);
        assert.ok(out.equals(b.subarray(0, 28)), 'ARP round trip');
      },
    };
  },
};

export const ipv4Target: FuzzTarget = {
  name: 'ipv4-udp-icmp',
  description: 'parseIpv4 then parseUdp/parseIcmp on its payload: LP_ERR_WIRE, or lengths inside the input (byte 0 odd: checksums fixed first)',
  allowedCodes: WIRE,
  maxInputBytes: 1600,
  dictionary: [Buffer.from('4500', 'hex'), Buffer.from('4600', 'hex'), Buffer.from('0011', 'hex'), Buffer.from('4000', 'hex'), Buffer.from('2000', 'hex')],
  seeds: () => guestFrames().filter((f) => f.readUInt16BE(12) === 0x0800).map((f) => Buffer.concat([Buffer.from([1]), f.subarray(14)])),
  async setup(load) {
    const ip = await load<typeof Ipv4>('src/wire/ipv4.js');
    const udp = await load<typeof Udp>('src/wire/udp.js');
    const icmp = await load<typeof Icmp>('src/wire/icmp.js');
    return {
      run(data) {
        if (data.length < 1) return;
        const b = data.subarray(1);
        if ((data[0] & 1) === 1) fixChecksums(b, 0);
        const h = ip.parseIpv4(b, 0, b.length);
        assert.ok(h.headerBytes >= 20 && h.headerBytes + h.payloadBytes <= b.length, 'IPv4 lengths inside the input');
        const o = h.headerBytes;
        if (h.protocol === ip.IP_PROTO_UDP) {
          const u = udp.parseUdp(b, o, h.payloadBytes, h.src, h.dst);
          assert.ok(8 + u.payloadBytes <= h.payloadBytes);
        } else if (h.protocol === ip.IP_PROTO_ICMP) {
          const m = icmp.parseIcmp(b, o, h.payloadBytes);
          assert.equal(m.data.length, h.payloadBytes - 8);
        }
        ip.formatIpv4Address(h.src);
      },
    };
  },
};

export const dhcpTarget: FuzzTarget = {
  name: 'dhcp',
  description: 'parseDhcp: LP_ERR_WIRE, or a Repr within the option limits that emits and parses back to the same Repr',
  allowedCodes: WIRE,
  maxInputBytes: MAX_FRAME_INPUT_BYTES,
  dictionary: [
    Buffer.from('63825363', 'hex'), Buffer.from('350101', 'hex'), Buffer.from('350103', 'hex'), Buffer.from('340103', 'hex'),
    Buffer.from('3d07', 'hex'), Buffer.from('0c06', 'hex'), Buffer.from('ff', 'hex'), Buffer.from('3204', 'hex'), Buffer.from('3604', 'hex'),
    Buffer.from('1a0205dc', 'hex'), Buffer.from('39020240', 'hex'), Buffer.from('3701', 'hex'), Buffer.from('0f03', 'hex'),
  ],
  seeds: () => [...dhcpPayloads(), hostilePayloads().dhcp],
  async setup(load) {
    const d = await load<typeof Dhcp>('src/wire/dhcp.js');
    return {
      run(b) {
        const r = d.parseDhcp(b, 0, b.length);
        assert.ok(r.clientId === null || r.clientId.length <= d.DHCP_MAX_CLIENT_ID_BYTES, 'client id within its limit');
        assert.ok(r.parameterRequestList.length <= d.DHCP_MAX_OPTION_BYTES && (r.vendorClassId ?? '').length <= d.DHCP_MAX_OPTION_BYTES);
        const again = d.emitDhcp(r);
        assert.equal(again.length, d.dhcpBufferLen(r));
        const r2 = d.parseDhcp(again, 0, again.length);
        assert.deepEqual(r2, r, 'DHCP emit/parse round trip');
      },
    };
  },
};

export const dnsTarget: FuzzTarget = {
  name: 'dns',
  description: 'parseDns: LP_ERR_WIRE, or a Repr whose questions re-emit and parse back the same; parseDnsQuestion agrees with its first question',
  allowedCodes: WIRE,
  maxInputBytes: MAX_FRAME_INPUT_BYTES,
  dictionary: [Buffer.from('c00c', 'hex'), Buffer.from('036c616e00', 'hex'), Buffer.from('00010001', 'hex'), Buffer.from('000c0001', 'hex'), Buffer.from('0001', 'hex'), Buffer.from('c0', 'hex'), Buffer.from('3f', 'hex')],
  seeds: () => [...dnsPayloads(), hostilePayloads().dns],
  async setup(load) {
    const d = await load<typeof Dns>('src/wire/dns.js');
    return {
      run(b) {
        let first: Dns.DnsQuestion | null = null;
        try {
          first = d.parseDnsQuestion(b, 0, b.length);
        } catch (err) {
          if ((err as { code?: string }).code !== 'LP_ERR_WIRE') throw err;
        }
        const r = d.parseDns(b, 0, b.length);
        if (r.questions.length > 0) assert.deepEqual(first, r.questions[0], 'parseDnsQuestion reads the same first question');
        for (const q of r.questions) assert.ok(q.name.length <= d.DNS_MAX_NAME_BYTES);
        // Round trip only for names that emit (a parsed label may hold bytes a dotted name cannot say).
        const plain = { ...r, answers: [], authorities: [], additionals: [] };
        let out: Buffer;
        try {
          out = d.emitDns(plain);
        } catch (err) {
          if ((err as { code?: string }).code === 'LP_ERR_WIRE') return;
          throw err;
        }
        const r2 = d.parseDns(out, 0, out.length);
        assert.deepEqual(r2.questions, r.questions, 'DNS question round trip');
      },
    };
  },
};

export const vxlanTarget: FuzzTarget = {
  name: 'vxlan',
  description: 'vxlanCheck never throws and agrees with parseVxlan (LP_ERR_WIRE or the same VNI)',
  allowedCodes: WIRE,
  maxInputBytes: 64,
  seeds: () => [Buffer.from('0800000000002a00', 'hex'), Buffer.concat([Buffer.from('0800000000002a00', 'hex'), guestFrames()[2]])],
  async setup(load) {
    const v = await load<typeof Vxlan>('src/wire/vxlan.js');
    return {
      run(b) {
        const vni = b.length >= 8 ? b.readUInt32BE(4) >>> 8 : 0;
        const check = v.vxlanCheck(b, 0, b.length, 42);
        let parsed: Vxlan.VxlanRepr | null = null;
        try { parsed = v.parseVxlan(b, 0, b.length); } catch (err) {
          if ((err as { code?: string }).code !== 'LP_ERR_WIRE') throw err;
        }
        if (parsed === null) assert.ok(check === v.VXLAN_SHORT || check === v.VXLAN_BAD_FLAGS || check === v.VXLAN_BAD_RESERVED);
        else {
          assert.equal(parsed.vni, vni);
          assert.equal(check, vni === 42 ? v.VXLAN_OK : v.VXLAN_OTHER_VNI);
          const h = Buffer.alloc(8);
          v.emitVxlan(parsed, h, 0);
          assert.ok(h.equals(b.subarray(0, 8)));
        }
      },
    };
  },
};

export const decodeTarget: FuzzTarget = {
  name: 'dump-decode',
  description: 'the capture decoder (lanparty dump) describes any frame and never throws',
  allowedCodes: [],
  maxInputBytes: 1600,
  seeds: guestFrames,
  async setup(load) {
    const d = await load<typeof Decode>('src/cli/decode.js');
    return {
      run(b) {
        assert.equal(typeof d.decodePayload(b, 0, b.length), 'string');
        assert.equal(typeof d.decodeFrame(b, 0, b.length), 'string');
      },
    };
  },
};
