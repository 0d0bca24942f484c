// Makes the tarball users install and the one to publish: dist/js/<name>-<version>.tgz (prints its path last).
//
// Why not a plain `npm pack`: the repository's package.json has a `prepare` script, because `npm install git+...` must
// build the package (dist/ and assets/ are not in git), and npm runs nothing else for a git dependency. In a tarball the
// same script is dead weight that npm 11 flags to every user ("install scripts not yet covered by allowScripts"). So the
// tarball gets the repository's files exactly as `npm pack` selects them (`files`, README, LICENSE, the bundled `yaml`),
// with a package.json without `scripts`, `devDependencies` and `allowScripts`. `npm publish` in the repository root is
// refused (scripts/refuse-root-publish.mjs); publish this tarball instead.
//
// Needs a build (npm ci and npm run build make one).
import { execFileSync } from 'child_process';
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'fs';
import { dirname, join } from 'path';
import { fileURLToPath } from 'url';
import { assertFreshBuild } from './fresh-build.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const stage = join(root, 'dist', 'stage');
const out = join(root, 'dist', 'js');

assertFreshBuild(root, 'package');

const npm = (args, cwd) => execFileSync('npm', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
// The file list npm itself would pack (`files`, always-included files, bundled dependencies), without running scripts.
const [listing] = JSON.parse(npm(['pack', '--dry-run', '--json', '--ignore-scripts'], root));

rmSync(stage, { recursive: true, force: true });
for (const { path } of listing.files) {
  if (path === 'package.json') continue;
  mkdirSync(dirname(join(stage, path)), { recursive: true });
  cpSync(join(root, path), join(stage, path));
}

const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
for (const devOnly of ['scripts', 'devDependencies', 'allowScripts']) delete pkg[devOnly];
writeFileSync(join(stage, 'package.json'), `${JSON.stringify(pkg, null, 2)}\n`);

mkdirSync(out, { recursive: true });
const [packed] = JSON.parse(npm(['pack', '--json', '--ignore-scripts', '--pack-destination', out], stage));
const staged = listing.files.map(f => f.path).sort();
const tarball = packed.files.map(f => f.path).sort();
if (JSON.stringify(staged) !== JSON.stringify(tarball)) {
  console.error('package: the tarball does not hold the files npm selected in the repository:\n'
    + `  only in the tarball: ${tarball.filter(p => !staged.includes(p)).join(', ') || '-'}\n`
    + `  only in the repository's selection: ${staged.filter(p => !tarball.includes(p)).join(', ') || '-'}`);
  process.exit(1);
}
rmSync(stage, { recursive: true, force: true });
console.log(`${packed.files.length} files, ${(packed.size / 1024).toFixed(0)} KiB packed, ${(packed.unpackedSize / 1024).toFixed(0)} KiB unpacked`);
console.log(join(out, packed.filename));

