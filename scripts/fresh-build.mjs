// Whether the build (dist/, .jsii, the handler bundle) is there and newer than every source it is made of.
import { existsSync, readdirSync, statSync } from 'fs';
import { join } from 'path';

export function assertFreshBuild(root, who) {
  for (const built of ['dist/lib/index.js', '.jsii', 'assets/cache-cleanup/index.js']) {
    if (!existsSync(join(root, built))) fail(`${built} is missing`);
  }
  const newest = ['lib', 'bin', 'lambda']
    .flatMap(d => readdirSync(join(root, d), { recursive: true }).filter(f => f.endsWith('.ts')).map(f => join(root, d, f)))
    // The assembly also carries package.json's metadata and the README.
    .concat(join(root, 'package.json'), join(root, 'README.md'))
    .reduce((m, f) => Math.max(m, statSync(f).mtimeMs), 0);
  if (statSync(join(root, '.jsii')).mtimeMs < newest) fail('the build is older than the sources');

  function fail(why) {
    console.error(`${who}: ${why}: run 'npm run build' first`);
    process.exit(1);
  }
}
