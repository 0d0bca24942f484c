// Lists the package tarball and fails on anything a consumer would not run, on anything missing, and on a manifest that
// would make npm warn a consumer.
//
//   node test/package/check-tarball.mjs dist/js/cdk-cached-image-build-<version>.tgz
//
// What ships: the library compiled by jsii (dist/lib: .js and .d.ts for every lib/**/*.ts), the CLI (dist/bin/cached-build.js),
// the one lambda/ module lib/ loads at run time (the contract), the prebundled cleanup handler, the .jsii assembly, the
// bundled `yaml`, README.md, API.md, LICENSE and package.json. Nothing else: not the example app, not the unbundled handler.
import { builtinModules } from 'module';
import { execFileSync } from 'child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { dirname, join, posix, resolve } from 'path';
import { fileURLToPath } from 'url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const tarball = resolve(process.argv[2] ?? '');
const problems = [];

const files = execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' }).split('\n').filter(Boolean)
  .map(f => f.replace(/^package\//, '')).filter(f => f !== '' && !f.endsWith('/')).sort();
const fileSet = new Set(files);

// ---- the file list ----
const sources = readdirSync(join(root, 'lib'), { recursive: true }).filter(f => f.endsWith('.ts')).map(f => f.split('\\').join('/'));
const expected = new Set([
  'package.json', 'README.md', 'LICENSE', 'API.md', '.jsii',
  'assets/cache-cleanup/index.js',
  'dist/bin/cached-build.js',
  'dist/lambda/cache-cleanup/contract.js',
  ...sources.flatMap(f => [`dist/lib/${f.replace(/\.ts$/, '.js')}`, `dist/lib/${f.replace(/\.ts$/, '.d.ts')}`]),
]);
const bundled = (f) => /^node_modules\/yaml\//.test(f);
const unexpected = files.filter(f => !expected.has(f) && !bundled(f));
const missing = [...expected].filter(f => !fileSet.has(f));
if (unexpected.length > 0) problems.push(`unexpected files (not run by a consumer, or from a stale build):\n    ${unexpected.join('\n    ')}`);
if (missing.length > 0) problems.push(`missing files:\n    ${missing.join('\n    ')}`);
if (!files.some(f => f === 'node_modules/yaml/package.json')) problems.push('the bundled dependency yaml is missing');

// ---- the manifest ----
const scratch = mkdtempSync(join(tmpdir(), 'cib-tarball-'));
process.on('exit', () => rmSync(scratch, { recursive: true, force: true }));
execFileSync('tar', ['-xzf', tarball, '-C', scratch]);
const pkgDir = join(scratch, 'package');
const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'));
if (pkg.scripts) problems.push(`package.json has scripts (${Object.keys(pkg.scripts).join(', ')}): npm warns consumers about install scripts`);
for (const devOnly of ['devDependencies', 'allowScripts']) if (pkg[devOnly]) problems.push(`package.json has ${devOnly}`);
for (const target of [pkg.main, pkg.types, ...Object.values(pkg.bin ?? {})]) {
  if (!fileSet.has(posix.normalize(target))) problems.push(`package.json points at ${target}, which is not in the tarball`);
}
const peerMin = (name) => /^\^(\d+\.\d+\.\d+)$/.exec(pkg.peerDependencies?.[name] ?? '')?.[1];
if (!peerMin('aws-cdk-lib') || !peerMin('constructs')) problems.push('peerDependencies must be ^<minimum> ranges for aws-cdk-lib and constructs');
if (!/^>=\s*\d+/.test(pkg.engines?.node ?? '')) problems.push('engines.node is missing');
if (pkg.license !== 'Apache-2.0') problems.push(`license is ${pkg.license}, not Apache-2.0`);
if (fileSet.has('LICENSE') && !/^\s*Apache License\s+Version 2\.0, January 2004/.test(readFileSync(join(pkgDir, 'LICENSE'), 'utf8'))) {
  problems.push('LICENSE is not the Apache License 2.0 text');
}
for (const keyword of ['cdk', 'awscdk']) if (!pkg.keywords?.includes(keyword)) problems.push(`keywords lack '${keyword}' (Construct Hub)`);
if (!pkg.repository?.url) problems.push('repository.url is missing');
if (!pkg.jsii?.targets?.python) problems.push('jsii.targets.python is missing');
const notBundled = Object.keys(pkg.dependencies ?? {}).filter(d => !(pkg.bundleDependencies ?? []).includes(d));
if (notBundled.length > 0) problems.push(`dependencies not bundled (jsii needs every non-jsii dependency bundled): ${notBundled.join(', ')}`);
const assembly = JSON.parse(readFileSync(join(pkgDir, '.jsii'), 'utf8'));
if (assembly.name !== pkg.name || assembly.version !== pkg.version) problems.push('.jsii is not the assembly of this package version');

// ---- what the shipped code loads at run time ----
// Each require() must resolve inside the package, to a Node built-in, or to a declared peer or bundled dependency; the
// handler bundle may also load the AWS SDK, which the Lambda runtime provides.
const allowedPackages = new Set([...Object.keys(pkg.peerDependencies ?? {}), ...(pkg.bundleDependencies ?? [])]);
const builtins = new Set(builtinModules.flatMap(m => [m, `node:${m}`]));
for (const file of files.filter(f => f.endsWith('.js') && !bundled(f))) {
  const text = readFileSync(join(pkgDir, file), 'utf8');
  for (const [, spec] of text.matchAll(/\brequire\(\s*["']([^"']+)["']\s*\)/g)) {
    if (spec.startsWith('.')) {
      const target = posix.normalize(posix.join(posix.dirname(file), spec));
      if (![target, `${target}.js`, `${target}/index.js`].some(t => fileSet.has(t))) {
        problems.push(`${file} requires ${spec}, which is not in the tarball`);
      }
      continue;
    }
    const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0];
    const ok = builtins.has(spec) || builtins.has(name) || allowedPackages.has(name)
      || (file.startsWith('assets/cache-cleanup/') && name.startsWith('@aws-sdk/'));
    if (!ok) problems.push(`${file} requires '${spec}', which a consumer does not have`);
  }
}

const size = readFileSync(tarball).length;
if (problems.length > 0) {
  console.error(`check-tarball: ${tarball}\n  ${problems.join('\n  ')}`);
  process.exit(1);
}
console.log(`check-tarball: ${files.length} files (${files.filter(bundled).length} of them the bundled yaml), `
  + `${(size / 1024).toFixed(0)} KiB: only what a consumer runs; manifest without scripts`);
