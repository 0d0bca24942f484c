// Generates the Python package from the .jsii assembly (jsii-pacmak --code-only) and checks that it is valid Python that
// names the public API. Code only: there is no PyPI here, so the wheel (pip, the jsii Python runtime) cannot be built or
// imported; the generated code is discarded.
import { spawnSync } from 'child_process';
import { mkdtempSync, readFileSync, rmSync } from 'fs';
import { createRequire } from 'module';
import { tmpdir } from 'os';
import { dirname, join, resolve } from 'path';
import { fileURLToPath } from 'url';
import { assertFreshBuild } from '../../scripts/fresh-build.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const require = createRequire(import.meta.url);
assertFreshBuild(root, 'pacmak-python');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const { module: pyModule, distName } = pkg.jsii.targets.python;
const out = mkdtempSync(join(tmpdir(), 'cib-pacmak-'));
const started = Date.now();
process.on('exit', () => rmSync(out, { recursive: true, force: true }));

run('jsii-pacmak', process.execPath, [require.resolve('jsii-pacmak/bin/jsii-pacmak'), '--code-only', '--targets', 'python', '--outdir', out], {
  // pacmak embeds `npm pack` of the package; the build is done, so its `prepare` need not run again.
  npm_config_ignore_scripts: 'true',
  JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION: '20',
});
const src = join(out, 'python', 'src', pyModule);
run('python3 -m compileall', 'python3', ['-m', 'compileall', '-q', src]);
const init = readFileSync(join(src, '__init__.py'), 'utf8');
const setup = readFileSync(join(out, 'python', 'setup.py'), 'utf8');
const missing = ['CachedImageBuild', 'CacheStrategy', 'CachedImageBuildProps', 'ImageRepositories', 'CacheCleanup', 'BuildMetric']
  .filter(name => !new RegExp(`^class ${name}\\b`, 'm').test(init));
if (missing.length > 0) fail(`the generated module has no class ${missing.join(', ')}`);
if (!setup.includes(`"name": "${distName}"`)) fail(`setup.py does not name the distribution ${distName}`);
if (!/"aws-cdk-lib>=2\.\d+\.\d+, <3\.0\.0"/.test(setup)) fail('setup.py does not depend on aws-cdk-lib 2.x');
console.log(`python (code only): ${distName} / ${pyModule} generated and compiled in ${((Date.now() - started) / 1000).toFixed(1)} s`);

function run(what, command, args, env = {}) {
  const r = spawnSync(command, args, { cwd: root, encoding: 'utf8', env: { ...process.env, ...env } });
  if (r.status !== 0) fail(`${what} failed (exit ${r.status ?? r.signal}):\n${r.stdout}${r.stderr}`);
}

function fail(message) {
  console.error(`pacmak-python: ${message}`);
  process.exit(1);
}
