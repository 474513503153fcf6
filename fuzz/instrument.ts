/**
 * Coverage instrumentation for the fuzzer: compiles a copy of src/ with the TypeScript compiler
 * (already a dev dependency) and a transformer that adds one counter bump per branch edge, the
 * way libFuzzer's -fsanitize-coverage=edge and Jazzer.js's instrumentor do:
 *
 *   - the start of every block (function bodies, loop bodies, then/else blocks, catch, finally);
 *   - both arms of every if (a missing else gets an empty one, so "not taken" is an edge too);
 *   - every case/default clause;
 *   - both arms of `?:`, and the right side of `&&`, `||` and `??`;
 *   - arrow functions with an expression body.
 *
 * A bump is `__lpcov[N]++` on one global Uint8Array (wraps at 256, like AFL's map). Constructor
 * bodies get no bump at their start: statements before super() would change TypeScript's
 * parameter-property emit. The copy keeps src/'s relative imports, so it loads as a whole tree.
 *
 * Why our own: @jazzer.js/core 4.0.0, the only current release, ships a prebuilt addon linked
 * against glibc 2.38 (Debian 12 has 2.36: "GLIBC_2.38 not found"), and 2.1.0 fetches its addon
 * from GitHub at install time (prebuild-install), which this project's machines cannot reach.
 */
import ts from 'typescript';
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface InstrumentedTree {
  /** Directory that holds the instrumented `src/` (import from `${root}/src/...`). */
  root: string;
  /** Number of counters (edges) over every file. */
  edgeCount: number;
  /** Counter id range [start, end) of each file, keyed by path relative to the repo ("src/wire/dhcp.ts"). */
  ranges: Record<string, [number, number]>;
}

function coverageTransformer(nextId: () => number): ts.TransformerFactory<ts.SourceFile> {
  return (ctx) => {
    const f = ctx.factory;
    const bump = (): ts.Expression =>
      f.createPostfixIncrement(f.createElementAccessExpression(f.createIdentifier('__lpcov'), f.createNumericLiteral(nextId())));
    const bumpStatement = (): ts.Statement => f.createExpressionStatement(bump());
    const withBump = (e: ts.Expression): ts.Expression => f.createParenthesizedExpression(f.createCommaListExpression([bump(), e]));
    const asBlock = (s: ts.Statement): ts.Block => (ts.isBlock(s) ? s : f.createBlock([bumpStatement(), s], true));

    const visit = (node: ts.Node): ts.Node => {
      if (ts.isConstructorDeclaration(node) && node.body) {
        // Visit the body's statements but do not bump in front of a possible super() call.
        const body = node.body;
        const statements = body.statements.map((s) => ts.visitNode(s, visit) as ts.Statement);
        const params = node.parameters.map((p) => ts.visitNode(p, visit) as ts.ParameterDeclaration);
        return f.updateConstructorDeclaration(node, node.modifiers, params, f.updateBlock(body, statements));
      }
      const v = ts.visitEachChild(node, visit, ctx);
      if (ts.isBlock(v)) {
        return f.updateBlock(v, [bumpStatement(), ...v.statements]);
      }
      if (ts.isIfStatement(v)) {
        const elseStatement = v.elseStatement === undefined ? f.createBlock([bumpStatement()], false)
          : ts.isIfStatement(v.elseStatement) ? v.elseStatement : asBlock(v.elseStatement);
        return f.updateIfStatement(v, v.expression, asBlock(v.thenStatement), elseStatement);
      }
      if (ts.isForStatement(v)) return f.updateForStatement(v, v.initializer, v.condition, v.incrementor, asBlock(v.statement));
      if (ts.isForOfStatement(v)) return f.updateForOfStatement(v, v.awaitModifier, v.initializer, v.expression, asBlock(v.statement));
      if (ts.isForInStatement(v)) return f.updateForInStatement(v, v.initializer, v.expression, asBlock(v.statement));
      if (ts.isWhileStatement(v)) return f.updateWhileStatement(v, v.expression, asBlock(v.statement));
      if (ts.isDoStatement(v)) return f.updateDoStatement(v, asBlock(v.statement), v.expression);
      if (ts.isCaseClause(v)) return f.updateCaseClause(v, v.expression, [bumpStatement(), ...v.statements]);
      if (ts.isDefaultClause(v)) return f.updateDefaultClause(v, [bumpStatement(), ...v.statements]);
      if (ts.isConditionalExpression(v)) {
        return f.updateConditionalExpression(v, v.condition, v.questionToken, withBump(v.whenTrue), v.colonToken, withBump(v.whenFalse));
      }
      if (ts.isBinaryExpression(v)) {
        const k = v.operatorToken.kind;
        if (k === ts.SyntaxKind.AmpersandAmpersandToken || k === ts.SyntaxKind.BarBarToken || k === ts.SyntaxKind.QuestionQuestionToken) {
          return f.updateBinaryExpression(v, v.left, v.operatorToken, withBump(v.right));
        }
      }
      if (ts.isArrowFunction(v) && !ts.isBlock(v.body)) {
        return f.updateArrowFunction(v, v.modifiers, v.typeParameters, v.parameters, v.type, v.equalsGreaterThanToken, withBump(v.body as ts.Expression));
      }
      return v;
    };
    return (sf) => ts.visitNode(sf, visit) as ts.SourceFile;
  };
}

function walk(dir: string, out: string[]): void {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else out.push(p);
  }
}

/**
 * Writes an instrumented copy of `${repo}/src` under `${outDir}/tree/src` (non-TS files copied as
 * they are) and returns where it is. `${outDir}/package.json` is a copy of the repo's: code that
 * reads `../../../package.json` relative to itself (the daemon's version) finds it there.
 */
export function buildInstrumentedTree(repo: string, outDir: string): InstrumentedTree {
  const files: string[] = [];
  walk(path.join(repo, 'src'), files);
  files.sort();
  const root = path.join(outDir, 'tree');
  fs.rmSync(outDir, { recursive: true, force: true });
  fs.mkdirSync(root, { recursive: true });
  fs.copyFileSync(path.join(repo, 'package.json'), path.join(outDir, 'package.json'));
  let next = 0;
  const ranges: Record<string, [number, number]> = {};
  for (const file of files) {
    const rel = path.relative(repo, file);
    const dest = path.join(root, rel);
    fs.mkdirSync(path.dirname(dest), { recursive: true });
    if (!file.endsWith('.ts') || file.endsWith('.d.ts')) {
      fs.copyFileSync(file, dest);
      continue;
    }
    const start = next;
    const out = ts.transpileModule(fs.readFileSync(file, 'utf8'), {
      fileName: file,
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, sourceMap: false },
      transformers: { before: [coverageTransformer(() => next++)] },
    });
    ranges[rel] = [start, next];
    fs.writeFileSync(dest.replace(/\.ts$/, '.js'), out.outputText);
  }
  const tree: InstrumentedTree = { root, edgeCount: next, ranges };
  fs.writeFileSync(path.join(outDir, 'edges.json'), JSON.stringify(tree));
  return tree;
}
