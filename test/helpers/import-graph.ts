/**
 * The import graph of lanparty's own modules and the checks run on it by test/unit/deps.test.ts
 * (after tailscale's deptest). The graph is read with TypeScript's parser, so every form of import
 * counts: `import`, `import type`, `export ... from`, `import()` and `typeof import()`.
 *
 * Module paths are repository-relative with forward slashes ('src/switch/port.ts'). The checks are
 * pure functions of a graph, so test/unit/deps.test.ts also runs them on small in-memory graphs.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import ts from 'typescript';

export type ImportKind = 'import' | 'import type' | 'export from' | 'import()' | 'typeof import()';

export interface ImportEdge {
  /** Importing module, e.g. 'src/daemon/daemon.ts'. */
  from: string;
  /** Imported module, resolved to its .ts source, e.g. 'src/switch/index.ts'. */
  to: string;
  /** The specifier as written, e.g. '../switch/index.js'. */
  spec: string;
  kind: ImportKind;
  /** 1-based line of the import in `from`. */
  line: number;
}

/** Every module of the graph (keys) with its imports of other lanparty modules. */
export type ImportGraph = Map<string, ImportEdge[]>;

export type ViolationKind = 'cycle' | 'bypass' | 'own-index' | 'transport' | 'test-import' | 'layer' | 'unknown-layer';

export interface Violation {
  kind: ViolationKind;
  /** Names the module and the import without line numbers, so an allowlist survives edits. */
  key: string;
  /** What to print: the key's facts with the line, and what to do. */
  text: string;
}

export interface Rules {
  /**
   * Layer name → the layers it may import ('*' for any). A module's layer is the folder under
   * src/ ('src/switch/mac-table.ts' → 'switch'), or the top folder outside src/ ('bench', 'fuzz').
   */
  layers: Record<string, string[]>;
  /** Folders (repository-relative, no trailing slash) whose direct subfolders must not import each other. */
  siblingsApart?: string[];
  /** Top folders that must not import test/. */
  noTestImports?: string[];
  /** Top folders whose folders are reached only through their index.ts (default: src). */
  indexed?: string[];
  /** Folders of white-box test code, whose modules may import any module directly (no index.ts rule). */
  whiteBox?: string[];
}

const posix = path.posix;

/** Lists the .ts files under `dir` (repository-relative), sorted. */
export function listModules(repo: string, dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string): void => {
    for (const e of fs.readdirSync(path.join(repo, rel), { withFileTypes: true })) {
      const child = posix.join(rel, e.name);
      if (e.isDirectory()) walk(child);
      else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) out.push(child);
    }
  };
  walk(dir);
  return out.sort();
}

/** The relative imports of one module's source text. Package imports ('node:fs', 'typescript') are not lanparty modules and are left out. */
export function importsOf(from: string, text: string): ImportEdge[] {
  const sf = ts.createSourceFile(from, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const edges: ImportEdge[] = [];
  const add = (node: ts.Node, literal: ts.Expression | undefined, kind: ImportKind): void => {
    if (literal === undefined || !ts.isStringLiteralLike(literal) || !literal.text.startsWith('.')) return;
    const spec = literal.text;
    const to = posix.normalize(posix.join(posix.dirname(from), spec.replace(/\.js$/, '.ts')));
    edges.push({ from, to, spec, kind, line: sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1 });
  };
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node)) {
      const typeOnly = node.importClause?.isTypeOnly === true;
      add(node, node.moduleSpecifier, typeOnly ? 'import type' : 'import');
    } else if (ts.isExportDeclaration(node)) {
      add(node, node.moduleSpecifier, 'export from');
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      add(node, node.arguments[0], 'import()');
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) {
      add(node, node.argument.literal, 'typeof import()');
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) {
      add(node, node.moduleReference.expression, 'import');
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return edges;
}

/** Reads the import graph of every .ts module under the given top folders of `repo`. */
export function readImportGraph(repo: string, tops: string[]): ImportGraph {
  const graph: ImportGraph = new Map();
  for (const top of tops) {
    for (const mod of listModules(repo, top)) graph.set(mod, importsOf(mod, fs.readFileSync(path.join(repo, mod), 'utf8')));
  }
  return graph;
}

/** 'src/transports/wg/device.ts' → 'transports'; 'bench/run.ts' → 'bench'. */
export function layerOf(mod: string): string {
  const parts = mod.split('/');
  return parts[0] === 'src' && parts.length > 2 ? parts[1] : parts[0];
}

/** The folder that holds a layer: 'src/transports' or 'bench'. */
function layerRoot(mod: string): string {
  const parts = mod.split('/');
  return parts[0] === 'src' && parts.length > 2 ? `src/${parts[1]}` : parts[0];
}

function isWithin(dir: string, ancestor: string): boolean {
  return dir === ancestor || dir.startsWith(ancestor + '/');
}

function describe(e: ImportEdge): string {
  return `${e.from}:${e.line} ${e.kind} '${e.spec}'`;
}

function keyOf(kind: ViolationKind, e: ImportEdge): string {
  return `${kind} ${e.from} ${e.kind} '${e.spec}'`;
}

/**
 * Where a module may reach another, by folder:
 * - a module imports modules of its own folder directly, but never its own folder's index.ts
 *   (the index re-exports the module, so that closes a cycle);
 * - a module in a subfolder may import the files of its ancestor folders inside its layer (the
 *   base they share, like transports/transport.ts), but never an ancestor's index.ts;
 * - anything else goes through one index.ts: inside a layer, the index.ts of the first folder
 *   below the common ancestor (daemon/daemon.ts → daemon/commands/index.ts); across layers, the
 *   layer's index.ts (transports/wg/device.ts → switch/index.ts).
 */
function checkPlacement(e: ImportEdge, rules: Rules, out: Violation[]): void {
  if (!(rules.indexed ?? ['src']).includes(e.to.split('/')[0])) return;
  const fromDir = posix.dirname(e.from);
  const toDir = posix.dirname(e.to);
  const toIndex = posix.basename(e.to) === 'index.ts';
  if ((rules.whiteBox ?? []).some((d) => isWithin(fromDir, d))) return;
  if (isWithin(fromDir, toDir) && isWithin(fromDir, layerRoot(e.from)) && isWithin(toDir, layerRoot(e.from))) {
    if (toIndex && e.from !== e.to) {
      out.push({ kind: 'own-index', key: keyOf('own-index', e), text: `${describe(e)}: imports the index.ts of its own or an enclosing folder; import the module itself` });
    }
    return;
  }
  let entry: string;
  if (layerRoot(e.from) !== layerRoot(e.to)) {
    entry = `${layerRoot(e.to)}/index.ts`;
  } else {
    const fromParts = fromDir.split('/');
    const toParts = toDir.split('/');
    let common = 0;
    while (common < fromParts.length && common < toParts.length && fromParts[common] === toParts[common]) common++;
    entry = `${toParts.slice(0, common + 1).join('/')}/index.ts`;
  }
  if (e.to !== entry) out.push({ kind: 'bypass', key: keyOf('bypass', e), text: `${describe(e)}: imports ${e.to} past ${entry}; export it there and import that` });
}

function checkEdge(e: ImportEdge, rules: Rules, out: Violation[]): void {
  const fromTop = e.from.split('/')[0];
  if (e.to.startsWith('test/')) {
    if ((rules.noTestImports ?? []).includes(fromTop)) {
      out.push({ kind: 'test-import', key: keyOf('test-import', e), text: `${describe(e)}: ${fromTop}/ must not import test/ (${e.to}); move what both need out of test/` });
    }
    return;
  }
  for (const group of rules.siblingsApart ?? []) {
    const a = e.from.startsWith(group + '/') ? e.from.slice(group.length + 1).split('/') : [];
    const b = e.to.startsWith(group + '/') ? e.to.slice(group.length + 1).split('/') : [];
    if (a.length > 1 && b.length > 1 && a[0] !== b[0]) {
      out.push({ kind: 'transport', key: keyOf('transport', e), text: `${describe(e)}: ${group}/${a[0]} imports ${group}/${b[0]} (${e.to}); move what both use below them` });
    }
  }
  const fromLayer = layerOf(e.from);
  const toLayer = layerOf(e.to);
  const allowed = rules.layers[fromLayer];
  if (allowed === undefined) return;
  if (fromLayer !== toLayer && !allowed.includes('*') && !allowed.includes(toLayer)) {
    out.push({ kind: 'layer', key: keyOf('layer', e), text: `${describe(e)}: ${fromLayer} imports ${toLayer} (${e.to}); ${fromLayer} may use: ${allowed.join(', ') || 'nothing'}` });
  }
  checkPlacement(e, rules, out);
}

/**
 * The cycles of the graph, one per strongly connected component (Tarjan), each printed as a path
 * that starts at its smallest module and ends where it began. Type-only imports count: they still
 * tie the modules together for the reader and for tsc.
 */
export function findCycles(graph: ImportGraph): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const components: string[][] = [];
  let next = 0;
  const targets = (m: string): string[] => [...new Set((graph.get(m) ?? []).map((e) => e.to).filter((t) => graph.has(t)))];
  const strongConnect = (v: string): void => {
    index.set(v, next); low.set(v, next); next++;
    stack.push(v); onStack.add(v);
    for (const w of targets(v)) {
      if (!index.has(w)) { strongConnect(w); low.set(v, Math.min(low.get(v)!, low.get(w)!)); }
      else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const comp: string[] = [];
      let w: string;
      do { w = stack.pop()!; onStack.delete(w); comp.push(w); } while (w !== v);
      if (comp.length > 1 || targets(v).includes(v)) components.push(comp);
    }
  };
  for (const m of [...graph.keys()].sort()) if (!index.has(m)) strongConnect(m);
  // One concrete cycle per component: a shortest path (breadth-first) from its smallest module back to itself.
  return components.map((comp) => {
    const members = new Set(comp);
    const start = [...comp].sort()[0];
    const prev = new Map<string, string>();
    const queue = [start];
    for (let i = 0; i < queue.length; i++) {
      const v = queue[i];
      for (const w of targets(v).filter((t) => members.has(t)).sort()) {
        if (w === start) {
          const chain: string[] = [];
          for (let u = v; u !== start; u = prev.get(u)!) chain.unshift(u);
          return [start, ...chain, start];
        }
        if (!prev.has(w)) { prev.set(w, v); queue.push(w); }
      }
    }
    return [start, start];
  }).sort((a, b) => a[0].localeCompare(b[0]));
}

/** Every violation of `rules` in `graph`, sorted by kind then text. */
export function checkGraph(graph: ImportGraph, rules: Rules): Violation[] {
  const out: Violation[] = [];
  for (const mod of [...graph.keys()].sort()) {
    const layer = layerOf(mod);
    if (rules.layers[layer] === undefined) {
      out.push({ kind: 'unknown-layer', key: `unknown-layer ${mod}`, text: `${mod}: layer '${layer}' is not in the layer table; add it` });
    }
    for (const e of graph.get(mod)!) checkEdge(e, rules, out);
  }
  for (const cycle of findCycles(graph)) {
    const steps: string[] = [];
    for (let i = 0; i + 1 < cycle.length; i++) {
      const e = graph.get(cycle[i])!.find((x) => x.to === cycle[i + 1])!;
      steps.push(`${e.from}:${e.line} ${e.kind} '${e.spec}'`);
    }
    out.push({ kind: 'cycle', key: `cycle ${cycle.join(' → ')}`, text: `cycle ${cycle.join(' → ')} (${steps.join('; ')})` });
  }
  const seen = new Set<string>();
  return out.filter((v) => !seen.has(v.key) && seen.add(v.key))
    .sort((a, b) => (a.kind === b.kind ? a.text.localeCompare(b.text) : a.kind.localeCompare(b.kind)));
}
