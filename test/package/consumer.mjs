// Installs the library into a scratch CDK app the way a user does, and synthesizes the example pipeline there.
//
//   node test/package/consumer.mjs --package <tarball | git+file://...> --aws-cdk-lib <version> --constructs <version> [--label L]
//   node test/package/consumer.mjs ... --legacy-peer-deps     (measuring versions below the declared range; not for CI)
//
// Every step runs on the Node.js that runs this script (the first `node` on PATH for npm and the app).
// The scratch app lives in a fresh temp dir and is removed afterwards (KEEP_SCRATCH=1 keeps it). It gets only what a user
// would have: the package, aws-cdk-lib, constructs, cdk-nag for the example's AwsSolutions checks, and @types/node. Exactly as the user's
// tools would, it then: type-checks the example (bin/app.ts importing 'cdk-cached-image-build' instead of '../lib') and the
// README's complete code blocks against the package's .d.ts, runs `cdk synth` on the example (the repository's aws-cdk
// CLI, offline) and the README blocks, checks the templates, and runs the package's `cached-build` CLI. It fails on a failed step and on an npm warning (install scripts, engines, peers).
import { spawnSync } from 'child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { dirname, join, resolve } from 'path';
import { fileURLToPath } from 'url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const args = parseArgs(process.argv.slice(2));
const label = args.label ?? `aws-cdk-lib ${args['aws-cdk-lib']}`;
const started = Date.now();
const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8'));
const devVersion = (name) => lock.packages[`node_modules/${name}`].version;

const dir = mkdtempSync(join(tmpdir(), 'cib-consumer-'));
process.on('exit', () => {
  if (process.env.KEEP_SCRATCH !== '1') rmSync(dir, { recursive: true, force: true });
  else console.log(`[${label}] scratch app kept in ${dir}`);
});
main();

function main() {
  const spec = args.package.startsWith('git+') ? args.package : resolve(args.package);
  const pkg = {
    name: 'scratch-consumer',
    version: '1.0.0',
    private: true,
    dependencies: {
      'cdk-cached-image-build': spec,
      'aws-cdk-lib': args['aws-cdk-lib'],
      'constructs': args.constructs,
      // The example runs the AwsSolutions pack; the version the repository develops with.
      'cdk-nag': devVersion('cdk-nag'),
      // A TypeScript CDK app has them (the example checks `require.main`).
      '@types/node': devVersion('@types/node'),
    },
    // A git dependency runs its `prepare` (the build) when npm clones it; the README tells users to allow it like this.
    ...(spec.startsWith('git+') ? { allowScripts: { [spec]: true } } : {}),
  };
  writeFileSync(join(dir, 'package.json'), JSON.stringify(pkg, null, 2));
  const install = ['install', '--no-audit', '--no-fund', '--prefer-offline', ...(args['legacy-peer-deps'] ? ['--legacy-peer-deps'] : [])];
  const out = step('npm install', 'npm', install);
  const warnings = out.split('\n').filter(l => /^npm warn/i.test(l));
  if (warnings.length > 0) fail(`npm install printed warnings a user would see:\n${warnings.join('\n')}`);

  const installed = (name) => JSON.parse(readFileSync(join(dir, 'node_modules', name, 'package.json'), 'utf8')).version;
  console.log(`[${label}] node ${process.version}; installed aws-cdk-lib ${installed('aws-cdk-lib')}, constructs ${installed('constructs')}, `
    + `cdk-nag ${installed('cdk-nag')}, cdk-cached-image-build ${installed('cdk-cached-image-build')}`);

  // The example, as a user's own app would import the library.
  mkdirSync(join(dir, 'bin'));
  for (const file of ['app.ts', 'nag-acknowledgements.ts']) {
    const text = readFileSync(join(root, 'bin', file), 'utf8');
    const rewritten = text.replace(/from '\.\.\/lib'/g, 'from \'cdk-cached-image-build\'');
    if (file === 'app.ts' && rewritten === text) fail('bin/app.ts no longer imports the library from \'../lib\': update this check');
    writeFileSync(join(dir, 'bin', file), rewritten);
  }
  // The README's code blocks marked `<!-- synth-check -->` (the README the package ships): complete programs a user copies.
  const readme = readFileSync(join(dir, 'node_modules', 'cdk-cached-image-build', 'README.md'), 'utf8');
  const snippets = [...readme.matchAll(/<!-- synth-check[^>]*-->\s*```ts\n([\s\S]*?)```/g)].map(m => m[1]);
  if (snippets.length < 2) fail(`the README has ${snippets.length} synth-check blocks, expected the quick start and the pipeline stack`);
  snippets.forEach((code, i) => writeFileSync(join(dir, 'bin', `readme-${i + 1}.ts`), code));
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({
    compilerOptions: {
      target: 'ES2022', module: 'commonjs', lib: ['es2022'], strict: true, esModuleInterop: true, skipLibCheck: true,
      outDir: 'build', rootDir: '.', types: ['node'],
    },
    include: ['bin/**/*.ts'],
  }, null, 2));
  const cdkJson = JSON.parse(readFileSync(join(root, 'cdk.json'), 'utf8'));
  writeFileSync(join(dir, 'cdk.json'), JSON.stringify({ app: 'node build/bin/app.js', context: cdkJson.context }, null, 2));
  step('tsc (the example against the package\'s types)', process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', '.']);

  // The CLI of the repository: a user's `npx cdk` would fetch the same from the registry. The default (registry) strategy,
  // then buildah, whose build image (LinuxBuildImage.STANDARD_8_0) is undefined in aws-cdk-lib before 2.274.0: there the
  // project silently fell back to CodeBuild's default image, an Ubuntu whose buildah cannot use a remote cache.
  const cdk = [join(root, 'node_modules', 'aws-cdk', 'bin', 'cdk'), 'synth', '--quiet', '--no-notices', '--no-version-reporting'];
  let resources = 0;
  for (const [strategy, image] of [['registry', 'aws/codebuild/standard:7.0'], ['buildah', 'aws/codebuild/standard:8.0']]) {
    const outdir = `cdk.out.${strategy}`;
    step(`cdk synth (${strategy})`, process.execPath, [...cdk, '-c', `strategy=${strategy}`, '-o', outdir]);
    const template = JSON.parse(readFileSync(join(dir, outdir, 'CachedImagePipeline.template.json'), 'utf8'));
    const all = Object.values(template.Resources);
    const types = all.map(r => r.Type);
    for (const type of ['AWS::CodeBuild::Project', 'AWS::ECR::Repository', 'AWS::Lambda::Function', 'AWS::CodePipeline::Pipeline']) {
      if (!types.includes(type)) fail(`${strategy}: the synthesized template has no ${type}`);
    }
    const project = all.find(r => r.Type === 'AWS::CodeBuild::Project');
    if (project.Properties.Environment.Image !== image) {
      fail(`${strategy}: the project's build image is ${project.Properties.Environment.Image}, not ${image}`);
    }
    const fn = all.find(r => r.Type === 'AWS::Lambda::Function' && r.Properties.Runtime?.startsWith('nodejs'));
    const asset = fn?.Metadata?.['aws:asset:path'];
    if (!asset || !readdirSync(join(dir, outdir, asset)).includes('index.js')) {
      fail(`the cleanup function's asset (${asset}) has no index.js: the bundled handler is missing from the package`);
    }
    resources = all.length;
  }

  for (let i = 1; i <= snippets.length; i++) {
    const outdir = join(dir, `cdk.out.readme-${i}`);
    step(`README block ${i} (synth)`, process.execPath, [join('build', 'bin', `readme-${i}.js`)], { CDK_OUTDIR: outdir });
    if (!readdirSync(outdir).some(f => f.endsWith('.template.json'))) fail(`README block ${i} synthesized no template`);
  }

  const script = step('cached-build script (the package\'s CLI)', 'npx', ['--no-install', 'cached-build', 'script', '--strategy', 'inline']);
  if (!script.startsWith('#!/usr/bin/env bash')) fail(`cached-build script printed no bash script:\n${script.slice(0, 300)}`);
  console.log(`[${label}] OK: installed, type-checked, synthesized (${resources} resources), CLI ran; ${((Date.now() - started) / 1000).toFixed(0)} s`);
}

function step(name, command, argv, env = {}) {
  const t0 = Date.now();
  const r = spawnSync(command, argv, {
    cwd: dir, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024,
    env: { ...process.env, npm_config_update_notifier: 'false', JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION: '20', ...env },
  });
  const output = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  if (r.status !== 0) fail(`${name} failed (exit ${r.status ?? r.signal}):\n${output.split('\n').slice(-60).join('\n')}`);
  console.log(`[${label}] ${name}: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return output;
}

function fail(message) {
  console.error(`[${label}] FAIL: ${message}`);
  process.exit(1);
}

function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    const key = argv[i].replace(/^--/, '');
    if (key === 'legacy-peer-deps') out[key] = true;
    else out[key] = argv[++i];
  }
  for (const required of ['package', 'aws-cdk-lib', 'constructs']) {
    if (!out[required]) {
      console.error(`usage: consumer.mjs --package <tarball|git+file://...> --aws-cdk-lib <version> --constructs <version> [--label L]`);
      process.exit(2);
    }
  }
  return out;
}
