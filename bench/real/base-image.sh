#!/usr/bin/env bash
# The real-workload benchmark's Node.js base image, made without Docker Hub: Debian 12 (debootstrap, minbase, from
# the Debian mirror this machine's apt uses) plus this machine's Node.js and npm, imported with docker 26 and pushed
# through the registry front as 127.0.0.1:5000/cib/node:20. The root filesystem is cached between runs.
# Needs the engines up (test/integration/engines.sh up); prints the image reference.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck disable=SC1091
. "$here/../../test/integration/.engines.env"
CACHE=${CIB_ENGINES_CACHE_DIR:-/var/cache/cib-engines}/node-base
IMAGE=$CIB_REGISTRY/cib/node:20
NODE=$(command -v node)
NPM_DIR=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
log() { printf '[node-base] %s\n' "$*" >&2; }

mirror() {
  awk '/^URIs:/ { u = $2 } /^Suites:/ && / bookworm( |$)/ && u != "" { print u; exit }' /etc/apt/sources.list.d/*.sources 2>/dev/null \
    || true
}

if ! command -v debootstrap >/dev/null 2>&1; then
  log 'installing debootstrap'
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi
want="bookworm minbase cas $(cat /usr/local/share/ca-certificates/*.crt 2>/dev/null | sha256sum | cut -c1-12) node $("$NODE" --version) npm $(awk -F'"' '/"version"/ { print $4; exit }' "$NPM_DIR/package.json")"
mkdir -p "$CACHE"
if [[ ! -s $CACHE/rootfs.tar || $(cat "$CACHE/stamp" 2>/dev/null) != "$want" ]]; then
  url=$(mirror)
  url=${url:-http://deb.debian.org/debian}
  log "debootstrap bookworm from $url ($want)"
  rm -rf "$CACHE/rootfs"
  debootstrap --variant=minbase bookworm "$CACHE/rootfs" "$url" > "$CACHE/debootstrap.log" 2>&1
  install -m 755 "$NODE" "$CACHE/rootfs/usr/local/bin/node"
  mkdir -p "$CACHE/rootfs/usr/local/lib/node_modules"
  cp -a "$NPM_DIR" "$CACHE/rootfs/usr/local/lib/node_modules/npm"
  ln -sfn ../lib/node_modules/npm/bin/npm-cli.js "$CACHE/rootfs/usr/local/bin/npm"
  ln -sfn ../lib/node_modules/npm/bin/npx-cli.js "$CACHE/rootfs/usr/local/bin/npx"
  # This machine reaches the npm registry through a TLS-inspecting egress proxy: the image trusts the same local CAs
  # (ca-certificates, installed by the service's base stage, folds them into the bundle NODE_EXTRA_CA_CERTS names).
  mkdir -p "$CACHE/rootfs/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$CACHE/rootfs/usr/local/share/ca-certificates/" 2>/dev/null || true
  rm -rf "$CACHE/rootfs/var/lib/apt/lists/"* "$CACHE/rootfs/var/cache/apt/"*.bin
  tar --numeric-owner -C "$CACHE/rootfs" -cf "$CACHE/rootfs.tar.tmp" .
  mv "$CACHE/rootfs.tar.tmp" "$CACHE/rootfs.tar"
  rm -rf "$CACHE/rootfs"
  printf '%s\n' "$want" > "$CACHE/stamp"
fi

curl -fsS -o /dev/null -X PUT --data '{"imageTagMutability":"MUTABLE"}' "$CIB_REGISTRY_CONTROL/repositories/cib/node" 2>/dev/null || true
export DOCKER_HOST=$CIB_D26_HOST
docker=$CIB_D26_BIN/docker
log "importing and pushing $IMAGE"
"$docker" import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' --change 'CMD ["node"]' \
  --change 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt' \
  "$CACHE/rootfs.tar" "$IMAGE" >/dev/null
"$docker" push --quiet "$IMAGE" >/dev/null
"$docker" rmi "$IMAGE" >/dev/null
printf '%s\n' "$IMAGE"
