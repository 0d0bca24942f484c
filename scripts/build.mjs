// Builds what the package ships: the cleanup handler bundle (assets/cache-cleanup, by esbuild) and the library compiled by
// jsii into dist/ with its .jsii assembly. `npm ci` and `npm install git+...` run it as `prepare`; tests need none of it
// (ts-jest compiles the sources). jsii is the only compiler that emits: `tsc --noEmit` type-checks the whole tree.
import { spawnSync } from 'child_process';
import { rmSync } from 'fs';
import { createRequire } from 'module';
import { dirname, join } from 'path';
import { fileURLToPath } from 'url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);

// A file left from an older layout (dist/bin/app.js, dist/lambda/...) must not survive into the next package.
for (const stale of ['dist/lib', 'dist/bin', 'dist/lambda', 'dist/tsconfig.tsbuildinfo', '.jsii', '.jsii.gz']) {
  rmSync(join(root, stale), { recursive: true, force: true });
}

const run = (what, args, env = {}) => {
  const r = spawnSync(process.execPath, args, { cwd: root, encoding: 'utf8', env: { ...process.env, ...env } });
  const output = `${r.stdout}${r.stderr}`.trim();
  if (output) console.log(output);
  if (r.status !== 0) {
    console.error(`build: ${what} failed (exit ${r.status ?? r.signal})`);
    process.exit(1);
  }
  return output;
};

run('bundle-lambda', [join(root, 'scripts', 'bundle-lambda.mjs')]);
// Node 20 is past its end of life and jsii says so in a banner on every run; README says which Node versions we support.
const jsii = run('jsii', [require.resolve('jsii/bin/jsii'), '--fail-on-warnings'], { JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION: '20' });
// Any jsii warning fails the build: an API another language cannot use well, or a dev dependency that does not pin the
// minimum of a peer range (the library must compile against the oldest aws-cdk-lib it claims). --fail-on-warnings
// misses the package-level ones (JSII6), so the output is read too.
if (/\bwarning JSII\d+|with warnings/i.test(jsii)) {
  console.error('build: jsii printed warnings: fix them (the package must compile without any)');
  process.exit(1);
}
console.log('built dist/ and .jsii');
