import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LanpartyError } from '../../../src/util/errors.js';
import { DNS_MAX_POINTER_HOPS, DNS_TYPE_A, DNS_TYPE_PTR, emitDns, encodeDnsName, parseDns, parseDnsQuestion } from '../../../src/wire/dns.js';
import { NSLOOKUP_A_QUERY_HEX, NSLOOKUP_PTR_QUERY_HEX } from '../../../lab/golden.js';

const wireErr = (e: unknown) => e instanceof LanpartyError && e.code === 'LP_ERR_WIRE';

test('parses real busybox nslookup queries and re-emits them byte for byte', () => {
  for (const [hex, name, type] of [[NSLOOKUP_A_QUERY_HEX, 'guest1.lan', DNS_TYPE_A], [NSLOOKUP_PTR_QUERY_HEX, '10.0.77.10.in-addr.arpa', DNS_TYPE_PTR]] as const) {
    const b = Buffer.from(hex, 'hex');
    const q = parseDns(b, 0, b.length);
    assert.equal(q.response, false);
    assert.equal(q.recursionDesired, true);
    assert.deepEqual(q.questions, [{ name, type, class: 1 }]);
    assert.deepEqual(emitDns(q), b);
  }
});

test('every truncation of a query throws LP_ERR_WIRE', () => {
  const b = Buffer.from(NSLOOKUP_A_QUERY_HEX, 'hex');
  for (let len = 0; len < b.length; len++) assert.throws(() => parseDns(b, 0, len), wireErr, `len ${len}`);
});

test('compression: backward pointers decode, loops and forward pointers are rejected', () => {
  // Response with the answer name as a pointer to the question name at offset 12.
  const q = Buffer.from(NSLOOKUP_A_QUERY_HEX, 'hex');
  const ans = Buffer.concat([q, Buffer.from('c00c000100010000003c00040a4d000a', 'hex')]);
  ans.writeUInt16BE(1, 6);
  ans[2] |= 0x80;
  const r = parseDns(ans, 0, ans.length);
  assert.equal(r.answers[0].name, 'guest1.lan');
  assert.deepEqual(r.answers[0].data, Buffer.from('0a4d000a', 'hex'));

  const self = Buffer.from('000001000001000000000000c00c00010001', 'hex');   // pointer to itself
  assert.throws(() => parseDns(self, 0, self.length), /does not point backwards/);
  const fwd = Buffer.from('000001000001000000000000c01201000100010161000', 'hex');
  assert.throws(() => parseDns(fwd, 0, fwd.length), wireErr);
  // Two labels pointing at each other: a -> b -> a.
  const loop = Buffer.from('000001000001000000000000' + '0161c010' + '0162c00c' + '00010001', 'hex');
  assert.throws(() => parseDns(loop, 0, loop.length), /backwards/);
});

test('label and name limits', () => {
  const mk = (labels: string[]) => Buffer.concat([
    Buffer.from('000001000001000000000000', 'hex'),
    ...labels.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])),
    Buffer.from('0000010001', 'hex'),
  ]);
  const ok = mk(['a'.repeat(63), 'b'.repeat(63), 'c'.repeat(63), 'd'.repeat(61)]);   // 255 bytes on the wire
  assert.equal(parseDns(ok, 0, ok.length).questions[0].name.length, 253);
  const long = mk(['a'.repeat(63), 'b'.repeat(63), 'c'.repeat(63), 'd'.repeat(62)]);
  assert.throws(() => parseDns(long, 0, long.length), /longer than 255/);
  const label64 = Buffer.from('000001000001000000000000' + '4000000000', 'hex');
  assert.throws(() => parseDns(label64, 0, label64.length), /label type/);
  assert.throws(() => encodeDnsName('a'.repeat(64) + '.lan'), wireErr);
  assert.throws(() => encodeDnsName('a..lan'), wireErr);
  const counts = Buffer.from('00000100ffff000000000000', 'hex');
  assert.throws(() => parseDns(counts, 0, counts.length), /counts/);
});

test('random bytes raise only LP_ERR_WIRE', () => {
  let seed = 3;
  const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff);
  const base = Buffer.from(NSLOOKUP_PTR_QUERY_HEX, 'hex');
  for (let i = 0; i < 5000; i++) {
    const b = Buffer.from(base);
    for (let k = 0; k < 3; k++) b[rnd() % b.length] = rnd() & 0xff;
    try { parseDns(b, 0, b.length); } catch (e) { assert.ok(wireErr(e), String(e)); }
  }
});

test('a name may follow at most DNS_MAX_POINTER_HOPS pointers; parseDnsQuestion reads the first question alone', () => {
  // Question 0 is the root name at 12; question i is a pointer to question i-1's name, so its
  // name follows i pointers.
  const chain = (questions: number): Buffer => {
    const b = Buffer.alloc(17 + 6 * (questions - 1));
    b.writeUInt16BE(questions, 4);
    b.writeUInt32BE(0x00010001, 13);
    for (let i = 1, o = 17, prev = 12; i < questions; i++, prev = o, o += 6) {
      b.writeUInt16BE(0xc000 | prev, o);
      b.writeUInt32BE(0x00010001, o + 2);
    }
    return b;
  };
  assert.equal(parseDns(chain(DNS_MAX_POINTER_HOPS + 1), 0, chain(DNS_MAX_POINTER_HOPS + 1).length).questions.length, 128);
  const tooMany = chain(DNS_MAX_POINTER_HOPS + 2);
  assert.throws(() => parseDns(tooMany, 0, tooMany.length), (e: unknown) => wireErr(e) && /more than 127 compression pointers/.test((e as Error).message));

  const two = Buffer.from('00770100' + '0002' + '000000000000' + '016100' + '00010001' + 'ff', 'hex');
  assert.deepEqual(parseDnsQuestion(two, 0, two.length), { name: 'a', type: 1, class: 1 });
  assert.throws(() => parseDns(two, 0, two.length), wireErr);
  assert.throws(() => parseDnsQuestion(two, 0, 11), /header needs 12 bytes/);
});
