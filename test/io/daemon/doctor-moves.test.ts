import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Daemon } from '../../../src/daemon/daemon.js';
import { buildConfig } from '../../../src/config/load.js';
import { silentLogger } from '../../../src/util/logger.js';
import { MemoryPort, frame } from '../../helpers/memory-port.js';

test('the doctor\'s MAC move history stays bounded and still sees a MAC flapping after 1,100 others did', async () => {
  const d = new Daemon(buildConfig({}, { controlSocket: '/nonexistent/lp.sock' }), silentLogger);
  try {
    const [p1, p2] = [new MemoryPort('p1'), new MemoryPort('p2')];
    d.sw.addPort(p1);
    d.sw.addPort(p2);
    const mac = (i: number) => `02:00:00:01:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`;
    const flap = (i: number) => {
      for (const p of [p1, p2, p1]) { const f = frame('ff:ff:ff:ff:ff:ff', mac(i)); d.sw.input(p, f, 0, f.length); }
    };
    for (let i = 0; i < 1100; i++) flap(i);
    flap(5000);
    const doctor = (d.control as unknown as { commands: Map<string, { handler(a: unknown, c: unknown): Promise<{ findings: Array<{ check: string; problem: string }> }> }> }).commands.get('doctor')!;
    const report = await doctor.handler({}, null);
    const moves = report.findings.filter((f) => f.check === 'duplicate-mac');
    assert.equal(moves.length, 1024, 'MAX_TRACKED_MACS histories kept');
    assert.ok(moves.some((f) => f.problem.includes(mac(5000))), 'the newest flapping MAC is among them');
  } finally {
    await d.stop();
  }
});
