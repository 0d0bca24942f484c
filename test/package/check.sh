#!/usr/bin/env bash
# The package as users get it (run by .ci/run after `npm ci`, whose `prepare` built it with jsii --fail-on-warnings):
#   1. the tarball (npm run package): only what a consumer runs, a manifest without install scripts;
#   2. installed into a scratch CDK app with the declared minimum aws-cdk-lib and constructs, and with the newest versions
#      in the declared ranges: the example type-checks and synthesizes (registry and buildah strategies), the CLI runs;
#      The minimum runs on this machine's Node.js (20, the oldest we support), the newest on Node.js 22 and 24 (binaries
#      from the npm registry's node-<os>-<arch> packages, installed into a temp dir);
#   3. installed straight from git (`npm install git+file://` of a snapshot of this work tree: committed or not, what is
#      here is what is tested): npm's clone builds it with `prepare`, and it synthesizes the same way.
# Everything happens in temp dirs; nothing is cached beyond npm's own download cache.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
export npm_config_update_notifier=false

t0=$(date +%s)

# The lower bounds of the peer ranges (^x.y.z), and the ranges themselves: npm resolves a range to its newest version.
min() { node -p "require('./package.json').peerDependencies['$1'].replace(/^\^/, '')"; }
range() { node -p "require('./package.json').peerDependencies['$1']"; }

# A snapshot of the work tree as a one-commit repository: the files git would track (tracked or new, not ignored).
snapshot="$(mktemp -d "${TMPDIR:-/tmp}/cib-git-XXXXXX")"
git_log="$snapshot.log"
nodes="$(mktemp -d "${TMPDIR:-/tmp}/cib-node-XXXXXX")"
git_pid=
cleanup() {
  # A failure in the foreground leaves the git install running: stop it (and the npm it runs) before removing its files.
  if [ -n "$git_pid" ] && kill -0 "$git_pid" 2>/dev/null; then
    pkill -TERM -P "$git_pid" 2>/dev/null || true
    kill "$git_pid" 2>/dev/null || true
    wait "$git_pid" 2>/dev/null || true
  fi
  rm -rf "$snapshot" "$git_log" "$nodes"
}
trap cleanup EXIT
git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
  if [ -e "$f" ]; then mkdir -p "$snapshot/$(dirname "$f")" && cp -p "$f" "$snapshot/$f"; fi
done
git -C "$snapshot" init -q
git -C "$snapshot" add -A
git -C "$snapshot" -c user.name=ci -c user.email=ci@localhost -c commit.gpgsign=false commit -q -m snapshot
# The git install spends most of its time in npm (the clone's own install and build): it runs beside the tarball checks.
node test/package/consumer.mjs --package "git+file://$snapshot" --label "git install, node $(node -v)" \
  --aws-cdk-lib "$(range aws-cdk-lib)" --constructs "$(range constructs)" > "$git_log" 2>&1 &
git_pid=$!

tarball="$(node scripts/package.mjs | tail -n 1)"
node test/package/check-tarball.mjs "$tarball"
node test/package/consumer.mjs --package "$tarball" --label "tarball, minimum, node $(node -v)" \
  --aws-cdk-lib "$(min aws-cdk-lib)" --constructs "$(min constructs)"
for major in 22 24; do
  pkg="node-$(node -p 'process.platform')-$(node -p 'process.arch')@$major"
  npm install --prefix "$nodes/$major" --no-audit --no-fund --no-save --loglevel=error "$pkg" > /dev/null
  mkdir -p "$nodes/$major/bin" && ln -s "$nodes/$major/node_modules/${pkg%@*}/bin/node" "$nodes/$major/bin/node"
  PATH="$nodes/$major/bin:$PATH" node test/package/consumer.mjs --package "$tarball" --label "tarball, newest, node $major" \
    --aws-cdk-lib "$(range aws-cdk-lib)" --constructs "$(range constructs)"
done

git_status=0
wait "$git_pid" || git_status=$?
git_pid=
cat "$git_log"
if [ "$git_status" -ne 0 ]; then
  echo "package checks: the git install failed" >&2
  exit "$git_status"
fi
echo "package checks passed in $(( $(date +%s) - t0 )) s"
