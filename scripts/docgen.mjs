// API.md: the API reference jsii-docgen generates from the .jsii assembly (the same text Construct Hub shows).
//   node scripts/docgen.mjs           writes API.md
//   node scripts/docgen.mjs --check   fails when API.md is not what the current API generates (CI)
import { spawnSync } from 'child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'fs';
import { createRequire } from 'module';
import { tmpdir } from 'os';
import { dirname, join } from 'path';
import { fileURLToPath } from 'url';
import { assertFreshBuild } from './fresh-build.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const check = process.argv.includes('--check');
assertFreshBuild(root, 'docgen');

const scratch = mkdtempSync(join(tmpdir(), 'cib-docgen-'));
process.on('exit', () => rmSync(scratch, { recursive: true, force: true }));
const r = spawnSync(process.execPath, [require.resolve('jsii-docgen/bin/jsii-docgen'), '--output', join(scratch, 'API.md')], {
  cwd: root, encoding: 'utf8', env: { ...process.env, JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION: '20' },
});
if (r.status !== 0) {
  console.error(`docgen: jsii-docgen failed (exit ${r.status ?? r.signal}):\n${r.stdout}${r.stderr}`);
  process.exit(1);
}
const generated = readFileSync(join(scratch, 'API.md'), 'utf8');
if (!check) {
  writeFileSync(join(root, 'API.md'), generated);
  console.log('wrote API.md');
} else {
  let current = '';
  try {
    current = readFileSync(join(root, 'API.md'), 'utf8');
  } catch {
    // missing: reported below like any difference
  }
  if (current !== generated) {
    const a = current.split('\n');
    const b = generated.split('\n');
    const line = Array.from({ length: Math.max(a.length, b.length) }, (_, i) => i).find(i => a[i] !== b[i]) ?? 0;
    console.error(`docgen: API.md is stale (first difference at line ${line + 1}):\n  API.md:    ${a[line] ?? '<end>'}\n`
      + `  generated: ${b[line] ?? '<end>'}\nRun 'npm run build && npm run docgen' and commit API.md.`);
    process.exit(1);
  }
  console.log('API.md is up to date');
}
