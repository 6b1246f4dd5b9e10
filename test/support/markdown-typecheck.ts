/**
 * Type-checks the ```ts blocks of a Markdown file with the TypeScript compiler API, against the
 * project's tsconfig.json (so 'nestjs-redis-lock' resolves to lib/index.ts through `paths`).
 *
 * Each block is compiled as its own module, as written. A block may be preceded (blank lines
 * allowed in between) by a directive comment:
 *
 *   <!-- ts-check: prelude=NAME -->   compile the block inside the named prelude (see PRELUDES in
 *                                      test/readme.spec.ts): code before it, and code after it
 *                                      (e.g. the closing braces of a method the block runs in)
 *   <!-- ts-check: continues -->      the block continues the previous ```ts block of the file:
 *                                      both are compiled together, as one module, in that order
 *
 * Diagnostics are reported as `FILE:LINE:COL TSxxxx: message`, with the line in the Markdown file.
 */
import fs from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

export interface Prelude {
  /** Code placed before the block(s). */
  before: string;
  /** Code placed after the block(s). */
  after?: string;
}

export interface TsBlock {
  /** Markdown file name, as given (used in messages). */
  file: string;
  /** 1-based line, in the Markdown file, of the block's first line of code. */
  line: number;
  /** The nearest heading above the block. */
  heading: string;
  code: string;
  prelude: string | undefined;
  continues: boolean;
}

/** One or more blocks compiled together as one module. */
export interface CheckUnit {
  /** e.g. `README.md:50 (Quick start)`, or `README.md:120+137 (LockService)` for continued blocks. */
  name: string;
  blocks: TsBlock[];
  prelude: string | undefined;
}

export interface UnitResult {
  unit: CheckUnit;
  /** Formatted diagnostics; empty when the unit compiles. */
  diagnostics: string[];
}

const FENCE_OPEN = /^```(\w+)?\s*$/;
const FENCE_CLOSE = /^```\s*$/;
const DIRECTIVE = /^<!--\s*ts-check:(.*?)-->\s*$/;
const TS_LANGS = new Set(['ts', 'typescript']);

/** The ```ts blocks of a Markdown text, with their directives; a malformed directive throws. */
export function extractTsBlocks(markdown: string, file: string): TsBlock[] {
  const lines = markdown.split(/\r?\n/);
  const blocks: TsBlock[] = [];
  let heading = '(top)';
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const headingMatch = /^#{1,6}\s+(.*)$/.exec(line);
    if (headingMatch) heading = headingMatch[1]!.trim();
    const open = FENCE_OPEN.exec(line);
    if (!open) continue;
    const start = i + 1;
    let end = start;
    while (end < lines.length && !FENCE_CLOSE.test(lines[end]!)) end++;
    if (end >= lines.length) throw new Error(`${file}:${i + 1}: code block is never closed`);
    const lang = (open[1] ?? '').toLowerCase();
    if (TS_LANGS.has(lang)) {
      const directive = directiveAbove(lines, i, file);
      blocks.push({
        file,
        line: start + 1,
        heading,
        code: lines.slice(start, end).join('\n'),
        prelude: directive.prelude,
        continues: directive.continues,
      });
    } else if (directiveAbove(lines, i, file).present) {
      throw new Error(`${file}:${i + 1}: a ts-check directive stands before a \`\`\`${lang} block, not a \`\`\`ts one`);
    }
    i = end;
  }
  return blocks;
}

function directiveAbove(
  lines: string[],
  fenceIndex: number,
  file: string,
): { present: boolean; prelude: string | undefined; continues: boolean } {
  let j = fenceIndex - 1;
  while (j >= 0 && lines[j]!.trim() === '') j--;
  const match = j >= 0 ? DIRECTIVE.exec(lines[j]!.trim()) : null;
  if (!match) {
    if (j >= 0 && /ts-check/.test(lines[j]!)) throw new Error(`${file}:${j + 1}: malformed ts-check directive: ${lines[j]}`);
    return { present: false, prelude: undefined, continues: false };
  }
  let prelude: string | undefined;
  let continues = false;
  for (const word of match[1]!.trim().split(/\s+/).filter(Boolean)) {
    const preludeMatch = /^prelude=([\w-]+)$/.exec(word);
    if (preludeMatch) prelude = preludeMatch[1];
    else if (word === 'continues') continues = true;
    else throw new Error(`${file}:${j + 1}: unknown ts-check directive "${word}" (known: prelude=NAME, continues)`);
  }
  if (continues && prelude !== undefined) {
    throw new Error(`${file}:${j + 1}: a continued block uses the prelude of the block it continues; drop "prelude="`);
  }
  return { present: true, prelude, continues };
}

/** Groups blocks into units: a `continues` block joins the unit before it. */
export function toUnits(blocks: TsBlock[]): CheckUnit[] {
  const units: CheckUnit[] = [];
  for (const block of blocks) {
    const last = units[units.length - 1];
    if (block.continues) {
      if (!last || last.blocks[0]!.file !== block.file) {
        throw new Error(`${block.file}:${block.line}: "ts-check: continues", but no \`\`\`ts block comes before it`);
      }
      last.blocks.push(block);
      last.name = `${block.file}:${last.blocks.map((b) => b.line).join('+')} (${last.blocks[0]!.heading})`;
    } else {
      units.push({ name: `${block.file}:${block.line} (${block.heading})`, blocks: [block], prelude: block.prelude });
    }
  }
  return units;
}

interface LineOrigin {
  file: string;
  /** 1-based line in the Markdown file; undefined inside a prelude. */
  line: number | undefined;
}

interface VirtualFile {
  unit: CheckUnit;
  fileName: string;
  text: string;
  origins: LineOrigin[];
}

function buildVirtualFile(unit: CheckUnit, index: number, root: string, preludes: Record<string, Prelude>): VirtualFile {
  const prelude = unit.prelude === undefined ? undefined : preludes[unit.prelude];
  if (unit.prelude !== undefined && !prelude) {
    throw new Error(`${unit.name}: unknown prelude "${unit.prelude}" (known: ${Object.keys(preludes).join(', ')})`);
  }
  const file = unit.blocks[0]!.file;
  const parts: string[] = [];
  const origins: LineOrigin[] = [];
  const add = (text: string, firstLine: number | undefined): void => {
    text.split('\n').forEach((line, i) => {
      parts.push(line);
      origins.push({ file, line: firstLine === undefined ? undefined : firstLine + i });
    });
  };
  if (prelude) add(prelude.before, undefined);
  for (const block of unit.blocks) add(block.code, block.line);
  if (prelude?.after) add(prelude.after, undefined);
  add('export {};', undefined); // always a module, never a global script
  const base = path.basename(file).replace(/[^\w]/g, '_');
  return {
    unit,
    // Beside tsconfig.json, so its `paths` and the package's "type": "module" apply.
    fileName: path.join(root, `__${base}_block${index}_L${unit.blocks[0]!.line}.ts`),
    text: parts.join('\n'),
    origins,
  };
}

function format(diagnostic: ts.Diagnostic, virtual: VirtualFile | undefined, preludeName: string | undefined): string {
  const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n');
  const code = `TS${diagnostic.code}`;
  if (!diagnostic.file || diagnostic.start === undefined) return `${code}: ${message}`;
  const { line, character } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start);
  if (virtual && diagnostic.file.fileName === virtual.fileName) {
    const origin = virtual.origins[line];
    if (origin?.line !== undefined) return `${origin.file}:${origin.line}:${character + 1} ${code}: ${message}`;
    return `${origin?.file ?? '?'} (prelude "${preludeName}", line ${line + 1}) ${code}: ${message}`;
  }
  return `${diagnostic.file.fileName}:${line + 1}:${character + 1} ${code}: ${message}`;
}

/** The compiler options of a tsconfig.json, as `tsc -p` would use them. */
export function loadCompilerOptions(tsconfigPath: string): ts.CompilerOptions {
  const read = ts.readConfigFile(tsconfigPath, ts.sys.readFile);
  if (read.error) throw new Error(ts.flattenDiagnosticMessageText(read.error.messageText, '\n'));
  const parsed = ts.parseJsonConfigFileContent(read.config, ts.sys, path.dirname(tsconfigPath));
  return { ...parsed.options, noEmit: true };
}

/**
 * Compiles every unit (each as its own module, all in one program) and returns each unit's
 * diagnostics, with lines mapped back to the Markdown file.
 */
export function checkUnits(
  units: CheckUnit[],
  options: { tsconfig: string; preludes: Record<string, Prelude> },
): UnitResult[] {
  const root = path.dirname(path.resolve(options.tsconfig));
  const compilerOptions = loadCompilerOptions(options.tsconfig);
  const all = units.map((unit, i) => buildVirtualFile(unit, i, root, options.preludes));
  // Some invalid syntax (e.g. a decorator before a statement) crashes TypeScript's parser with
  // "Debug Failure": report that against the unit instead of losing the whole run.
  const crashed = new Map<VirtualFile, string>();
  for (const virtual of all) {
    try {
      ts.createSourceFile(virtual.fileName, virtual.text, compilerOptions.target ?? ts.ScriptTarget.ES2022, true);
    } catch (error) {
      const first = virtual.unit.blocks[0]!;
      crashed.set(virtual, `${first.file}:${first.line}:1 TypeScript's parser crashed on this block (${(error as Error).message}); it is not valid TypeScript`);
    }
  }
  const virtuals = all.filter((v) => !crashed.has(v));
  const byName = new Map(virtuals.map((v) => [path.normalize(v.fileName), v]));
  const host = ts.createCompilerHost(compilerOptions, true);
  const { getSourceFile, fileExists, readFile } = host;
  host.fileExists = (name) => byName.has(path.normalize(name)) || fileExists.call(host, name);
  host.readFile = (name) => byName.get(path.normalize(name))?.text ?? readFile.call(host, name);
  host.getSourceFile = (name, languageVersion, onError, shouldCreate) => {
    const virtual = byName.get(path.normalize(name));
    if (virtual) return ts.createSourceFile(name, virtual.text, languageVersion, true);
    return getSourceFile.call(host, name, languageVersion, onError, shouldCreate);
  };
  const program = ts.createProgram({ rootNames: virtuals.map((v) => v.fileName), options: compilerOptions, host });
  const global = [...program.getOptionsDiagnostics(), ...program.getGlobalDiagnostics()].map((d) => format(d, undefined, undefined));
  return all.map((virtual) => {
    const crash = crashed.get(virtual);
    if (crash !== undefined) return { unit: virtual.unit, diagnostics: [crash] };
    const source = program.getSourceFile(virtual.fileName);
    const diagnostics = source
      ? [...program.getSyntacticDiagnostics(source), ...program.getSemanticDiagnostics(source)]
      : [];
    return {
      unit: virtual.unit,
      diagnostics: [...global, ...diagnostics.map((d) => format(d, virtual, virtual.unit.prelude))],
    };
  });
}

/** Extracts, groups and checks the ```ts blocks of Markdown files. */
export function checkMarkdown(
  files: Array<{ file: string; text: string }>,
  options: { tsconfig: string; preludes: Record<string, Prelude> },
): UnitResult[] {
  const units = files.flatMap(({ file, text }) => toUnits(extractTsBlocks(text, file)));
  return checkUnits(units, options);
}

/** Reads Markdown files relative to `root`. */
export function readMarkdown(root: string, files: string[]): Array<{ file: string; text: string }> {
  return files.map((file) => ({ file, text: fs.readFileSync(path.join(root, file), 'utf8') }));
}
