// Import-structure check (CI): src/ is layered so each folder imports only folders below it, and no
// import cycle crosses files, except inside src/ops where primitives' gradient closures call each
// other (add's backward sums with reduce, sum's backward expands with movement): those references
// run lazily inside functions, never at module evaluation. The file graph comes from madge (type-only
// imports skipped: they vanish at compile time). Usage: node scripts/check-layers.mjs
import madge from 'madge';

// lowest first; a folder may import itself and anything earlier in this list
const LAYERS = [
  'backend',
  'tensor',
  'ops',
  'autograd',
  'tokenizers',
  'io',
  'nn',
  'models',
  'train',
  'align',
  'infer',
  'serve',
  'cli',
];
const TOP = new Set(['index.ts', 'node.ts']); // entry points may import everything
const CYCLE_OK = (cycle) => cycle.every((f) => f.startsWith('ops/'));

// files outside src/ (the benchmarks behind `lineage bench`) count as part of the CLI layer
const layerOf = (file) => {
  if (file.startsWith('../')) return LAYERS.indexOf('cli');
  const folder = file.split('/')[0];
  const i = LAYERS.indexOf(folder);
  if (i < 0 && !TOP.has(file))
    throw new Error(`check-layers: ${file} is in folder '${folder}', which has no place in LAYERS`);
  return i;
};

// layering counts type imports too (a type from a higher layer is still a dependency on it); cycles
// count runtime imports only
const scan = (skipTypeImports) =>
  madge('src', {
    fileExtensions: ['ts'],
    tsConfig: 'tsconfig.json',
    detectiveOptions: { ts: { skipTypeImports }, es6: { skipTypeImports } },
  });
const [all, runtime] = await Promise.all([scan(false), scan(true)]);
const graph = all.obj();
const problems = [];
for (const [file, deps] of Object.entries(graph)) {
  if (TOP.has(file) || file.startsWith('../')) continue;
  const from = layerOf(file);
  for (const dep of deps) {
    if (TOP.has(dep)) problems.push(`${file} imports the entry point ${dep}`);
    else if (layerOf(dep) > from)
      problems.push(`${file} (${LAYERS[from]}) imports ${dep} (${LAYERS[layerOf(dep)]}, a higher layer)`);
  }
}
for (const cycle of runtime.circular()) if (!CYCLE_OK(cycle)) problems.push(`import cycle: ${cycle.join(' > ')}`);
if (problems.length) {
  console.error(`check-layers: ${problems.length} problem(s)\n  ${problems.join('\n  ')}`);
  process.exit(1);
}
console.log(
  `check-layers: ${Object.keys(graph).length} files, layers ${LAYERS.join(' < ')}, no upward imports, no cycles outside src/ops`,
);
