/**
 * A vxlan port's per-source state under 70,000 source addresses that are no VTEP (a child process
 * sends one datagram from each, test/helpers/source-cycler): none of them keeps a socket peer id,
 * and a static VTEP's packets still come in. Real UDP underlay on 127.0.0.1.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { VxlanTransport } from '../../../src/transports/vxlan/index.js';
import { UdpUnderlay } from '../../../src/transports/vxlan/underlay.js';
import type { BatchSocket } from '../../../src/io/index.js';
import type { FrameSink } from '../../../src/switch/port.js';
import { silentLogger } from '../../../src/util/logger.js';
import { cycleSources } from '../../helpers/cycle-sources.js';

test('70,000 sources that are no VTEP leave no peer ids; the static VTEP still gets through', async () => {
  let frames = 0;
  const sink: FrameSink = { addPort: () => {}, removePort: () => {}, setForwarding: () => {}, input: () => { frames++; } };
  const vtep = dgram.createSocket('udp4');
  await new Promise<void>((r) => vtep.bind(0, '127.0.0.1', () => r()));
  const underlay = new UdpUnderlay({ host: '127.0.0.1', port: 0, group: null, acceptOnly: null, what: 'port vxlan://test' });
  const t = new VxlanTransport('vxlan://test', {
    vni: 42, remotes: [{ host: '127.0.0.1', port: vtep.address().port }], group: null, acceptAny: false,
    table: { macAgeMs: 10_000, vtepIdleMs: 20_000 },
  } as ConstructorParameters<typeof VxlanTransport>[1], { sink, log: silentLogger, maxFrameBytes: 1518 }, underlay);
  t.tick(1000);
  await t.start();
  try {
    const sock = (underlay as unknown as { sock: BatchSocket }).sock;
    const a = sock.localAddress();
    const port = a.kind === 'udp4' ? a.port : 0;
    const sent = await cycleSources(port, 70000, 180000);
    const until = Date.now() + 20_000;
    while (t.vx.rxPackets < sent && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    assert.equal(t.vx.rxUnknownVtep, sent);
    assert.equal(sock.stats.unaddressable, 0);
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(sock.stats.peers, 1, 'only the static VTEP holds an id');
    // The static VTEP (from the address it is configured with) still gets a frame in.
    const inner = Buffer.alloc(60, 0);
    inner.fill(0xff, 0, 6);
    inner.writeUInt16BE(0x0806, 12);
    const h = Buffer.alloc(8);
    h[0] = 0x08;
    h.writeUInt32BE(42 * 256, 4);
    vtep.send(Buffer.concat([h, inner]), port, '127.0.0.1');
    const by = Date.now() + 3000;
    while (frames === 0 && Date.now() < by) await new Promise((r) => setTimeout(r, 10));
    assert.equal(frames, 1);
  } finally {
    await t.close();
    vtep.close();
  }
});
