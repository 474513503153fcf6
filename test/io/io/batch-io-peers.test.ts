/**
 * The batch sockets' peer tables (the addon's PeerTable and the fallback's maps): ids released
 * by their owner are forgotten and reused; a table at maxPeers refuses new sources, or with
 * eviction on evicts the least recently heard unpinned id and tells the owner before the batch
 * that needed the room; an id is never reused before it was released. Real sockets on 127.0.0.1,
 * run on the native addon and on the node:dgram fallback (openBatchSocketWith chooses).
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { openBatchSocketWith, nativeAvailable, type BatchImplementation, type BatchSocket } from '../../../src/io/index.js';

async function waitFor(what: string, cond: () => boolean, ms = 3000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Events in the order the owner saw them: a batch's sources, or an eviction. */
type Event = { kind: 'rx'; peer: number; port: number } | { kind: 'evicted'; peer: number; port: number };

function suite(impl: BatchImplementation): void {
  const socks: BatchSocket[] = [];
  const senders: dgram.Socket[] = [];
  after(() => {
    for (const s of socks) s.close();
    for (const s of senders) s.close();
  });

  async function open(maxPeers: number, evict: boolean): Promise<{ s: BatchSocket; events: Event[]; port: number }> {
    const s = await openBatchSocketWith(impl, { kind: 'udp4', bind: { host: '127.0.0.1', port: 0 }, maxPeers });
    socks.push(s);
    const events: Event[] = [];
    const portOf = (id: number) => { const a = s.peerAddress(id); return a.kind === 'udp4' ? a.port : -1; };
    if (evict) s.onPeerEvicted((id) => events.push({ kind: 'evicted', peer: id, port: portOf(id) }));
    s.start((count) => {
      for (let i = 0; i < count; i++) events.push({ kind: 'rx', peer: s.rx.peers[i], port: portOf(s.rx.peers[i]) });
    });
    const a = s.localAddress();
    return { s, events, port: a.kind === 'udp4' ? a.port : 0 };
  }

  async function sender(): Promise<dgram.Socket> {
    const g = dgram.createSocket('udp4');
    senders.push(g);
    await new Promise<void>((r) => g.bind(0, '127.0.0.1', () => r()));
    return g;
  }

  /** Sends one datagram from g and waits until the socket has handled it (received or dropped). */
  async function hear(s: BatchSocket, events: Event[], g: dgram.Socket, to: number): Promise<void> {
    const before = events.filter((e) => e.kind === 'rx').length + s.stats.unaddressable;
    g.send(Buffer.alloc(8, 1), to, '127.0.0.1');
    await waitFor('the datagram', () => events.filter((e) => e.kind === 'rx').length + s.stats.unaddressable > before);
  }

  it('a released id is forgotten and then reused for a new address', async () => {
    const { s, events, port } = await open(8, false);
    const g1 = await sender();
    const g2 = await sender();
    await hear(s, events, g1, port);
    const id1 = events[0].peer;
    assert.equal(s.stats.peers, 1);
    s.releasePeer(id1);
    await waitFor('the release', () => s.stats.peers === 0);
    await hear(s, events, g2, port);
    assert.equal(events[1].peer, id1, 'the free id is reused');
    assert.equal(events[1].port, g2.address().port);
    await hear(s, events, g1, port);
    assert.notEqual(events[2].peer, id1, 'the first address came back with a new id');
    assert.equal(s.stats.peers, 2);
  });

  it('a full table without eviction refuses new sources (counted) and keeps the ones it has', async () => {
    const { s, events, port } = await open(3, false);
    const g = await Promise.all([sender(), sender(), sender(), sender()]);
    for (const x of g) await hear(s, events, x, port);
    assert.equal(events.length, 3);
    assert.equal(s.stats.unaddressable, 1);
    assert.equal(s.stats.peers, 3);
    assert.equal(s.stats.peersEvicted, 0);
  });

  it('a full table with eviction evicts the least recently heard unpinned id, reported before the batch', async () => {
    const { s, events, port } = await open(3, true);
    const g = await Promise.all([sender(), sender(), sender(), sender(), sender()]);
    const pinned = s.peerId({ kind: 'udp4', host: '127.0.0.1', port: g[0].address().port });  // a fixed peer
    await hear(s, events, g[1], port);
    await hear(s, events, g[2], port);
    await hear(s, events, g[0], port);  // the pinned one is heard too, and is still never evicted
    await hear(s, events, g[1], port);  // g[2] is now the least recently heard unpinned source
    await hear(s, events, g[3], port);
    const ev = events.findIndex((e) => e.kind === 'evicted');
    assert.ok(ev >= 0, 'an eviction was reported');
    assert.equal(events[ev].port, g[2].address().port, 'the least recently heard went');
    const rx3 = events[ev + 1];
    assert.ok(rx3.kind === 'rx' && rx3.port === g[3].address().port, 'reported before the batch that needed the room');
    assert.notEqual(rx3.peer, pinned);
    assert.equal(s.stats.peersEvicted, 1);
    assert.equal(s.stats.unaddressable, 0);
    // The evicted address comes back with an id again (evicting g[1] now), and the pinned one stays.
    await hear(s, events, g[2], port);
    const last = events[events.length - 1];
    assert.equal(last.port, g[2].address().port);
    assert.deepEqual(events.filter((e) => e.kind === 'evicted').map((e) => e.port), [g[2].address().port, g[1].address().port]);
    assert.equal(s.peerAddress(pinned).kind === 'udp4' && (s.peerAddress(pinned) as { port: number }).port, g[0].address().port);
    await waitFor('the evicted ids released', () => s.stats.peers === 3);
  });

  it('an evicted id is not reused while the owner still holds it, and no id ever names two addresses', async () => {
    const { s, events, port } = await open(4, true);
    const byId = new Map<number, number>();
    s.onPeerEvicted((id) => {
      assert.ok(byId.has(id), `evicted id ${id} was never delivered`);
      byId.delete(id);
    });
    const g = await Promise.all(Array.from({ length: 24 }, () => sender()));
    for (let round = 0; round < 2; round++) {
      for (const x of g) {
        await hear(s, events, x, port);
        const e = events[events.length - 1];
        const held = byId.get(e.peer);
        assert.ok(held === undefined || held === e.port, `id ${e.peer} named ${held} and then ${e.port} without an eviction`);
        byId.set(e.peer, e.port);
        assert.ok(byId.size <= 4);
      }
    }
    assert.equal(s.stats.peersEvicted, 2 * 24 - 4);
  });
}

for (const impl of ['native', 'js'] as const) {
  describe(`batch socket peer table (${impl})`, { skip: impl === 'native' && !nativeAvailable() ? 'native addon not built' : false }, () => suite(impl));
}
