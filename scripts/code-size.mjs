// Reports the size of the code: lines per part (src/, native/, test/, bench/, fuzz/), the longest
// files and the longest functions (TypeScript's own parser finds them). `--json` for scripts.
// Usage: node scripts/code-size.mjs [--json] [--top N]
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';

const root = new URL('..', import.meta.url).pathname;
const args = process.argv.slice(2);
const json = args.includes('--json');
const topIdx = args.indexOf('--top');
const top = topIdx >= 0 ? Number(args[topIdx + 1]) : 5;

function walk(dir, exts, out = []) {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === 'build' || name.startsWith('.')) continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, exts, out);
    else if (exts.some((e) => name.endsWith(e))) out.push(p);
  }
  return out;
}

const parts = {};
const files = [];
const functions = [];
for (const part of ['src', 'native', 'test', 'lab', 'bench', 'fuzz', 'scripts']) {
  let dirOk = true;
  try { statSync(join(root, part)); } catch { dirOk = false; }
  if (!dirOk) continue;
  let lines = 0;
  for (const f of walk(join(root, part), ['.ts', '.cc', '.h', '.mjs', '.js', '.sh'])) {
    const text = readFileSync(f, 'utf8');
    const n = text.split('\n').length - (text.endsWith('\n') ? 1 : 0);
    lines += n;
    const rel = relative(root, f);
    files.push({ file: rel, lines: n });
    if (!f.endsWith('.ts')) continue;
    const sf = ts.createSourceFile(f, text, ts.ScriptTarget.Latest, true);
    const visit = (node) => {
      if (ts.isFunctionLike(node) && node.body !== undefined && node.kind !== ts.SyntaxKind.ArrowFunction && node.kind !== ts.SyntaxKind.FunctionExpression || (ts.isArrowFunction(node) || ts.isFunctionExpression(node)) && ts.isVariableDeclaration(node.parent)) {
        const a = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line;
        const b = sf.getLineAndCharacterOfPosition(node.getEnd()).line;
        const name = node.name?.getText(sf) ?? (ts.isVariableDeclaration(node.parent) ? node.parent.name.getText(sf) : '(anonymous)');
        functions.push({ file: rel, name, lines: b - a + 1 });
      }
      ts.forEachChild(node, visit);
    };
    visit(sf);
  }
  parts[part] = lines;
}
files.sort((x, y) => y.lines - x.lines);
functions.sort((x, y) => y.lines - x.lines);
const report = { lines: parts, longestFiles: files.slice(0, top), longestFunctions: functions.filter((f) => f.file.startsWith('src/')).slice(0, top) };
if (json) console.log(JSON.stringify(report, null, 2));
else {
  console.log('lines: ' + Object.entries(parts).map(([k, v]) => `${k} ${v}`).join(', '));
  console.log('longest files:');
  for (const f of report.longestFiles) console.log(`  ${String(f.lines).padStart(5)}  ${f.file}`);
  console.log('longest functions in src/:');
  for (const f of report.longestFunctions) console.log(`  ${String(f.lines).padStart(5)}  ${f.file} ${f.name}`);
}
