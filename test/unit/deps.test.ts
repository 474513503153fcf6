/**
 * Dependencies point one way (after tailscale's deptest): reads the import graph of src/, bench/,
 * fuzz/ and lab/ with TypeScript's parser (test/helpers/import-graph.ts) and fails, naming the file and
 * the import, on a cycle (type-only imports count), on an import that bypasses a folder's
 * index.ts, on a transport importing another transport, on bench/, fuzz/ or lab/ importing test/, and
 * on a layer importing one it must not.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkGraph, findCycles, importsOf, listModules, readImportGraph, type ImportGraph, type Rules } from '../helpers/import-graph.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/** Which layers each layer may import; a layer may always import itself. */
const LAYERS: Record<string, string[]> = {
  util: [],
  // wire may use util's error type, so malformed bytes raise LanpartyError('LP_ERR_WIRE').
  wire: ['util'],
  crypto: ['util'],
  switch: ['wire', 'util'],
  io: ['wire', 'util'],
  transports: ['io', 'switch', 'wire', 'crypto', 'util'],
  services: ['switch', 'wire', 'util'],
  config: ['wire', 'util'],
  control: ['util'],
  daemon: ['*'],
  // cli talks to a running daemon through control, builds and prints frames with wire, makes keys
  // with crypto and reads the config. It also needs daemon: `lanparty up` runs the daemon in its
  // own process (startDaemon, the web view, the metrics listener), status, capture and doctor
  // print the daemon's reply types, and qemu reads the same /proc facts as the daemon's doctor.
  cli: ['control', 'wire', 'crypto', 'config', 'util', 'daemon'],
  // The network lab (namespaces, guests, the lanparty process, golden captures), shared by
  // test/, bench/ and fuzz/.
  lab: ['*'],
  bench: ['*'],
  fuzz: ['*'],
};

export const RULES: Rules = {
  layers: LAYERS,
  siblingsApart: ['src/transports'],
  noTestImports: ['bench', 'fuzz', 'lab'],
  // fuzz/ is white-box like test/unit: each target fuzzes one module, loaded by its path so the
  // harness can instrument it, and the seeds build inputs with that module's own helpers.
  whiteBox: ['fuzz'],
};

/**
 * Violations known when this check was written, by key; each fix removes its line. A key that no
 * longer matches a violation fails the test too, so the list only shrinks.
 */
const KNOWN: string[] = [
];

test('src, bench and fuzz keep the dependency rules', () => {
  const graph = readImportGraph(repo, ['src', 'bench', 'fuzz', 'lab']);
  assert.ok(graph.size > 100, `read only ${graph.size} modules from ${repo}`);
  const violations = checkGraph(graph, RULES);
  const known = new Set(KNOWN);
  const fresh = violations.filter((v) => !known.has(v.key));
  const stale = KNOWN.filter((k) => !violations.some((v) => v.key === k));
  assert.deepEqual(fresh.map((v) => v.text), [], `${fresh.length} import(s) break the dependency rules`);
  assert.deepEqual(stale, [], 'these known violations are fixed: remove them from KNOWN');
});

test('only io/addon.ts loads the native addon', () => {
  const users = listModules(repo, 'src').filter((f) => /lanparty_native|\.node['"]/.test(fs.readFileSync(path.join(repo, f), 'utf8')));
  assert.deepEqual(users, ['src/io/addon.ts']);
});

// The checker itself, on small in-memory graphs, so the test above cannot pass by seeing nothing.

function fakeGraph(files: Record<string, string>): ImportGraph {
  return new Map(Object.entries(files).map(([mod, text]) => [mod, importsOf(mod, text)]));
}

const FAKE_RULES: Rules = {
  layers: { util: [], switch: ['util'], transports: ['switch', 'util'], cli: ['util'], bench: ['*'] },
  siblingsApart: ['src/transports'],
  noTestImports: ['bench'],
};

test('checker: reads every form of import', () => {
  const edges = importsOf('src/a/x.ts', [
    "import { a } from './a.js';",
    "import type { B } from '../b/index.js';",
    "export { c } from './c.js';",
    "export * from './d.js';",
    "const e = await import('./e.js');",
    "type F = typeof import('./f.js');",
    "import * as fs from 'node:fs';",
  ].join('\n'));
  assert.deepEqual(edges.map((e) => [e.to, e.kind, e.line]), [
    ['src/a/a.ts', 'import', 1],
    ['src/b/index.ts', 'import type', 2],
    ['src/a/c.ts', 'export from', 3],
    ['src/a/d.ts', 'export from', 4],
    ['src/a/e.ts', 'import()', 5],
    ['src/a/f.ts', 'typeof import()', 6],
  ]);
});

test('checker: finds a cycle through a type-only import and prints it', () => {
  const g = fakeGraph({
    'src/switch/a.ts': "import { b } from './b.js';",
    'src/switch/b.ts': "import type { C } from './c.js';",
    'src/switch/c.ts': "import { a } from './a.js';",
    'src/switch/d.ts': "import { a } from './a.js';",
  });
  assert.deepEqual(findCycles(g), [['src/switch/a.ts', 'src/switch/b.ts', 'src/switch/c.ts', 'src/switch/a.ts']]);
  const v = checkGraph(g, FAKE_RULES);
  assert.equal(v.length, 1);
  assert.equal(v[0].kind, 'cycle');
  assert.match(v[0].text, /src\/switch\/b\.ts:1 import type '\.\/c\.js'/);
});

test('checker: flags a bypassed index.ts, across layers and inside one', () => {
  const g = fakeGraph({
    'src/switch/index.ts': "export * from './port.js';",
    'src/switch/port.ts': "import { x } from '../util/index.js';",
    'src/util/index.ts': '',
    'src/transports/base.ts': '',
    'src/transports/udp/index.ts': "import { Port } from '../../switch/port.js';\nimport { b } from '../base.js';\nimport { o } from './other.js';",
    'src/transports/udp/other.ts': "import { i } from './index.js';",
    'src/transports/tcp/index.ts': "import { u } from '../udp/index.js';",
    'src/transports/tcp/deep/index.ts': "import { r } from '../../../switch/index.js';",
    'src/transports/tcp/peer.ts': "import { d } from './deep/index.js';\nimport { e } from './deep/inner.js';",
    'src/transports/tcp/deep/inner.ts': '',
  });
  const v = checkGraph(g, FAKE_RULES).filter((x) => x.kind !== 'cycle');
  assert.deepEqual(v.map((x) => x.key), [
    "bypass src/transports/tcp/peer.ts import './deep/inner.js'",
    "bypass src/transports/udp/index.ts import '../../switch/port.js'",
    "own-index src/transports/udp/other.ts import './index.js'",
    "transport src/transports/tcp/index.ts import '../udp/index.js'",
  ]);
  assert.match(v[1].text, /src\/transports\/udp\/index\.ts:1 import '\.\.\/\.\.\/switch\/port\.js': imports src\/switch\/port\.ts past src\/switch\/index\.ts/);
});

test('checker: flags a layer import and bench importing test/', () => {
  const g = fakeGraph({
    'src/util/index.ts': "import { s } from '../switch/index.js';",
    'src/switch/index.ts': '',
    'src/cli/main.ts': "import { t } from '../transports/index.js';",
    'src/transports/index.ts': '',
    'bench/run.ts': "import { n } from '../test/helpers/netns.js';\nimport { s } from '../src/switch/index.js';",
    'src/ghost/index.ts': '',
  });
  assert.deepEqual(checkGraph(g, FAKE_RULES).map((x) => x.key), [
    "layer src/cli/main.ts import '../transports/index.js'",
    "layer src/util/index.ts import '../switch/index.js'",
    "test-import bench/run.ts import '../test/helpers/netns.js'",
    'unknown-layer src/ghost/index.ts',
  ]);
});
