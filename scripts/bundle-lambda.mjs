// Prebundles the cache cleanup handler with esbuild when the library builds (npm ci runs `prepare`), so a
// user's synth needs neither esbuild nor Docker: the construct loads assets/cache-cleanup with Code.fromAsset.
import { build } from 'esbuild';
import { mkdirSync } from 'fs';
import { dirname, join } from 'path';
import { fileURLToPath } from 'url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outdir = join(root, 'assets', 'cache-cleanup');
mkdirSync(outdir, { recursive: true });
await build({
  entryPoints: [join(root, 'lambda', 'cache-cleanup', 'index.ts')],
  outfile: join(outdir, 'index.js'),
  bundle: true,
  platform: 'node',
  target: 'node22',
  format: 'cjs',
  // The Lambda runtime ships the AWS SDK v3.
  external: ['@aws-sdk/*'],
  minify: false,
  sourcemap: false,
  legalComments: 'none',
  logLevel: 'warning',
});
console.log(`bundled ${join('assets', 'cache-cleanup', 'index.js')}`);
