// `npm publish` in the repository root would publish its package.json with the `prepare` script (for git installs) and
// the dev-only fields: npm 11 would then warn every user about install scripts. Publish the tarball scripts/package.mjs
// makes instead, which npm publishes without running any script.
console.error('Do not publish the repository root. Run `npm run package`, then `npm publish dist/js/<name>-<version>.tgz`.');
process.exit(1);
