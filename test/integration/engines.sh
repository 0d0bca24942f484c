#!/usr/bin/env bash
# Real build engines for the integration tests, started side by side on this
# machine WITHOUT touching the host network (no iptables, no bridge, no
# ip_forward, no /var/run/docker.sock):
#
#   d20      Debian 12 docker.io 20.10 (dockerd + its own managed containerd),
#            client /usr/bin/docker (BuildKit built in, DOCKER_BUILDKIT=1).
#   d26      Debian 13 (trixie) docker.io 26.1 + docker-buildx 0.13 +
#            containerd 1.7, unpacked (dpkg-deb -x) into a private dir, never
#            installed over the system; runs with Debian 12's runc and the
#            containerd image store (containerd-snapshotter).
#   buildah  Debian 13 (trixie) buildah 1.39 (daemonless; only checked here),
#            unpacked beside the system with trixie's netavark, glibc and
#            libsubid, its ELF interpreter and library path pointed at them
#            (patchelf: Debian 12's glibc is 2.36, it needs 2.38), run through
#            a wrapper that sets its containers.conf. CodeBuild's standard:8.0
#            ships buildah 1.33; Debian 12's 1.28 never reuses an ARG step
#            from the remote cache, nor any step after one (fixed in 1.29).
#   registry Debian docker-registry 2.8 on 127.0.0.1:5001, own config, no auth,
#            behind
#   front    the ECR-behaving registry front (test/fakes/registry-front.ts, node) on
#            127.0.0.1:5000: repositories must be created first (control API
#            http://127.0.0.1:5000/__front/), immutable tags refused like ECR,
#            every manifest write recorded. Every engine talks to the front.
#
# plus a network-free base image (busybox-static) pushed to the registry as
# 127.0.0.1:5000/cib/base:1, and a two-platform one (an index of linux/amd64
# and linux/386: Debian 12's busybox-static for amd64 and for i386, fetched
# once through a private apt config; i386 binaries run natively on an x86_64
# kernel) as 127.0.0.1:5000/cib/base-multi:1.
#
# Usage: engines.sh up|down|status|fresh-d20|fresh-d26
#   up      apt-installs what is missing (Debian 12, root), downloads the trixie
#           debs once (cached in $CACHE_DIR), stops anything a previous `up`
#           left, wipes the engines' data, starts everything and writes
#           .engines.env next to this script.
#           REQUIRE_ENGINES=1: any engine that does not start is an error.
#   down    stops everything `up` started (pid files; TERM, then KILL after a
#           timeout), unmounts what is left under the private dirs and removes
#           .engines.env. Safe to run twice or when nothing is up.
#   status  prints what is running (exit 0 if anything of ours runs).
#
# The engines' data (DATA_DIR: data roots, buildah storages, the registry's blobs)
# lives on a filesystem of its own: a new ext4, with a journal, in a sparse file
# ($CACHE_DIR/data.ext4) that `up` makes and mounts and `down` unmounts and
# removes. This machine's root filesystem is an ext4 without a journal, and
# there every file created within minutes of a large delete scans the deleted
# inodes (ext4's recently_deleted(), checked only without a journal): a docker
# restarted with an empty data root, as fresh-d26 does, took 9-10 s instead of
# 2-3 s to unpack a 116 MB base, all of it in the kernel (perf: ext4_create ->
# find_inode_bit -> recently_deleted). A fresh CodeBuild host has no such
# delete behind it. CIB_ENGINES_FS=dir keeps the data on the root filesystem.
#
# Overridable: CIB_ENGINES_CACHE_DIR, CIB_ENGINES_DATA_DIR, CIB_ENGINES_RUN_DIR,
# CIB_ENGINES_LOG_DIR, CIB_ENGINES_TIMEOUT (seconds to wait for a daemon),
# CIB_ENGINES_FS (ext4 or dir), CIB_ENGINES_FS_SIZE (the sparse file's size),
# CIB_ENGINES_386=x86-64 (the two-platform base's linux/386 variant carries the x86-64
# busybox even where the kernel runs i386 binaries: see busybox_for_386),
# CIB_TRIXIE_MIRROR (default: the bookworm mirror of the apt sources).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ENV_FILE=$SCRIPT_DIR/.engines.env

CACHE_DIR=${CIB_ENGINES_CACHE_DIR:-/var/cache/cib-engines}
DATA_DIR=${CIB_ENGINES_DATA_DIR:-/var/lib/cib-engines}
RUN_DIR=${CIB_ENGINES_RUN_DIR:-/run/cib-engines}
LOG_DIR=${CIB_ENGINES_LOG_DIR:-/var/log/cib-engines}
TIMEOUT=${CIB_ENGINES_TIMEOUT:-60}
REQUIRE_ENGINES=${REQUIRE_ENGINES:-0}
DATA_FS=${CIB_ENGINES_FS:-ext4}
DATA_FS_SIZE=${CIB_ENGINES_FS_SIZE:-40G}
DATA_FS_IMAGE=$CACHE_DIR/data.ext4
DATA_FS_USED=""

BUILDAH_DRIVER=""
BUILDAH_TEMPLATE=""

REGISTRY=127.0.0.1:5000
UPSTREAM=127.0.0.1:5001
PROJECT_DIR=$(cd "$SCRIPT_DIR/../.." && pwd)
BASE_IMAGE=$REGISTRY/cib/base:1
MULTI_BASE_IMAGE=$REGISTRY/cib/base-multi:1
MULTI_BASE_PLATFORMS=linux/amd64,linux/386

# pigz: CodeBuild's standard images ship it, and docker and containerd decompress layers with unpigz when it is on their
# PATH (AWS contract register, CB12); without it they use Go's gzip, slower than what a CodeBuild host runs.
APT_PACKAGES=(docker.io buildah docker-registry busybox-static runc containerd
  tini shellcheck curl ca-certificates uidmap fuse-overlayfs patchelf pigz e2fsprogs)
# Unpacked into D26_ROOT.
D26_PACKAGES=(docker.io docker-cli docker-buildx containerd)
# Unpacked into BUILDAH_ROOT (buildah 1.39 and what it needs that Debian 12 lacks).
BUILDAH_PACKAGES=(buildah netavark libc6 libsubid5)
TRIXIE_PACKAGES=("${D26_PACKAGES[@]}" "${BUILDAH_PACKAGES[@]}")

# Debian 12's docker 20.10: daemon in /usr/sbin, client in /usr/bin.
D20_DOCKERD=/usr/sbin/dockerd
D20_CLIENT=/usr/bin/docker
D26_ROOT=$CACHE_DIR/d26/root
BUILDAH_ROOT=$CACHE_DIR/buildah/root
# The buildah every test and this script run: a wrapper around trixie's buildah (make_client_dirs).
BUILDAH=$CACHE_DIR/buildah/bin/buildah
SYS_PATH=/usr/sbin:/usr/bin:/sbin:/bin
# trixie binaries first; runc is only found in /usr/sbin (Debian 12's runc:
# trixie's needs glibc 2.38).
D26_PATH=$D26_ROOT/usr/bin:$D26_ROOT/usr/sbin:$SYS_PATH

log() { printf '[engines] %s\n' "$*" >&2; }
warn() { printf '[engines] WARNING: %s\n' "$*" >&2; }
die() {
  printf '[engines] ERROR: %s\n' "$*" >&2
  exit 1
}

need_root() {
  [[ $(id -u) -eq 0 ]] || die "must run as root"
}

take_lock() {
  mkdir -p /run/lock
  exec 9>/run/lock/cib-engines-sh.lock
  flock -w 900 9 || die "another engines.sh is running"
}

# ---------------------------------------------------------------- install ---

pkg_installed() {
  [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]
}

apt_install() {
  local missing=() p
  for p in "${APT_PACKAGES[@]}"; do
    pkg_installed "$p" || missing+=("$p")
  done
  if [[ ${#missing[@]} -eq 0 ]]; then
    return 0
  fi
  log "apt-get install ${missing[*]}"
  # Keep package maintainer scripts from starting the distro services
  # (docker.service would rewrite iptables, docker-registry would take :5000).
  local policy=/usr/sbin/policy-rc.d made_policy=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    made_policy=1
  fi
  local rc=0
  {
    DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  } || rc=$?
  if [[ $made_policy -eq 1 ]]; then rm -f "$policy"; fi
  [[ $rc -eq 0 ]] || die "apt-get install failed (rc=$rc)"
}

trixie_mirror() {
  if [[ -n ${CIB_TRIXIE_MIRROR:-} ]]; then
    echo "$CIB_TRIXIE_MIRROR"
    return
  fi
  local uri=""
  if [[ -r /etc/apt/sources.list.d/debian.sources ]]; then
    # first "URIs:" of a stanza whose Suites include bookworm
    uri=$(awk '
      /^[[:space:]]*$/ { u=""; s=""; next }
      /^URIs:/   { u=$2 }
      /^Suites:/ { s=$0 }
      u != "" && s ~ /[[:space:]]bookworm([[:space:]]|$)/ { print u; exit }
    ' /etc/apt/sources.list.d/debian.sources)
  fi
  if [[ -z $uri && -r /etc/apt/sources.list ]]; then
    uri=$(awk '$1 == "deb" && $3 == "bookworm" { print $2; exit }' /etc/apt/sources.list)
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}

# Download the trixie debs once, through a private apt configuration.
# A private apt configuration in DIR with one sources.list line: the system's apt configuration, lists and dpkg status
# stay as they are. Sets PRIVATE_APT_OPTS to the apt-get options that use it, plus the extra options given.
private_apt() { # dir sources-line apt-options...
  local apt=$1 line=$2
  shift 2
  mkdir -p "$apt/state/lists/partial" "$apt/cache/archives/partial" "$apt/etc/preferences.d" || return 1
  : >"$apt/state/status"
  echo "$line" >"$apt/etc/sources.list"
  PRIVATE_APT_OPTS=(
    -o "Dir::State=$apt/state" -o "Dir::State::status=$apt/state/status"
    -o "Dir::Cache=$apt/cache" -o "Dir::Etc::SourceList=$apt/etc/sources.list"
    -o "Dir::Etc::SourceParts=/dev/null" -o "Dir::Etc::Preferences=/dev/null"
    -o "Dir::Etc::PreferencesParts=$apt/etc/preferences.d"
    "$@" -o "APT::Sandbox::User=root"
  )
}

trixie_fetch() {
  local debs=$CACHE_DIR/debs-trixie apt=$CACHE_DIR/apt-trixie p have=1
  for p in "${TRIXIE_PACKAGES[@]}"; do
    compgen -G "$debs/${p}_*.deb" >/dev/null || have=0
  done
  [[ $have -eq 1 ]] && return 0
  local mirror
  mirror=$(trixie_mirror)
  log "downloading ${TRIXIE_PACKAGES[*]} from $mirror trixie (private apt config)"
  mkdir -p "$debs"
  private_apt "$apt" "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror trixie main" \
    -o "APT::Architecture=amd64"
  local opts=("${PRIVATE_APT_OPTS[@]}")
  if ! apt-get "${opts[@]}" update -qq; then
    # an older debian-archive-keyring may lack the trixie keys
    log "private apt-get update failed; upgrading debian-archive-keyring and retrying"
    if DEBIAN_FRONTEND=noninteractive apt-get update -qq; then
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --only-upgrade debian-archive-keyring || true
    fi
    apt-get "${opts[@]}" update -qq || die "private apt-get update (trixie) failed"
  fi
  local tmp=$debs/.tmp
  rm -rf "$tmp"
  mkdir -p "$tmp"
  (cd "$tmp" && apt-get -qq "${opts[@]}" download "${TRIXIE_PACKAGES[@]}") ||
    die "apt-get download (trixie) failed"
  rm -f "$debs"/*.deb
  mv "$tmp"/*.deb "$debs"/
  rmdir "$tmp"
  rm -rf "$apt/cache/archives" "$apt/cache"/*.bin
}

# Debian 12's busybox-static for i386, through a private apt configuration whose only architecture is i386: the
# system's apt configuration and dpkg architectures stay as they are. Prints the path of the i386 busybox.
busybox_i386() {
  local dir=$CACHE_DIR/busybox-i386 apt=$CACHE_DIR/apt-i386 deb
  deb=$(compgen -G "$dir/busybox-static_*_i386.deb" | head -n 1 || true)
  if [[ -z $deb ]]; then
    local mirror
    mirror=$(trixie_mirror)
    log "downloading busybox-static:i386 from $mirror bookworm (private apt config)"
    mkdir -p "$dir" || return 1
    private_apt "$apt" "deb [arch=i386 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror bookworm main" \
      -o "APT::Architecture=i386" -o "APT::Architectures::=i386" || return 1
    local opts=("${PRIVATE_APT_OPTS[@]}")
    apt-get "${opts[@]}" update -qq || { warn "private apt-get update (bookworm i386) failed"; return 1; }
    (cd "$dir" && apt-get -qq "${opts[@]}" download busybox-static:i386) || { warn "apt-get download busybox-static:i386 failed"; return 1; }
    rm -rf "$apt/cache/archives" "$apt/cache"/*.bin
    deb=$(compgen -G "$dir/busybox-static_*_i386.deb" | head -n 1) || { warn "no busybox-static i386 deb in $dir"; return 1; }
  fi
  if [[ ! -x $dir/root/bin/busybox || $dir/root/bin/busybox -ot $deb ]]; then
    rm -rf "$dir/root"
    dpkg-deb -x "$deb" "$dir/root" || return 1
  fi
  echo "$dir/root/bin/busybox"
}

# The busybox for the two-platform base's linux/386 variant. Sets MULTI_BASE_386 to what the variant really carries:
#   i386    Debian 12's i386 busybox-static, when this kernel runs it (IA32 emulation);
#   x86-64  the x86-64 busybox, when the kernel runs no i386 binary (seen on CI machines whose kernel lacks IA32 emulation)
#           or when CIB_ENGINES_386=x86-64 asks for it (to try that path on a kernel that has it). BuildKit runs a
#           platform's process natively when it finds no emulator for it (moby/buildkit, solver/llbsolver/ops/exec_binfmt.go:
#           getEmulator warns and returns no emulator), runc and buildah run what they are given: the builds, caches,
#           refs, index and merge under test are the same; only the instructions executed are not i386's.
# Each variant's layer also carries /etc/cib-platform, so the two layers differ whatever busybox they hold.
MULTI_BASE_386="" BUSYBOX_386=""
busybox_for_386() { # sets BUSYBOX_386 and MULTI_BASE_386 (no subshell: the caller reads both)
  local busybox
  BUSYBOX_386=/bin/busybox MULTI_BASE_386=x86-64
  if [[ ${CIB_ENGINES_386:-} == x86-64 ]]; then
    warn "CIB_ENGINES_386=x86-64: the linux/386 variant of the two-platform base carries the x86-64 busybox"
    return 0
  fi
  busybox=$(busybox_i386) || return 1
  if "$busybox" true >/dev/null 2>&1; then
    BUSYBOX_386=$busybox MULTI_BASE_386=i386
  else
    warn "the i386 busybox does not run on this kernel (no IA32 emulation): the linux/386 variant of the two-platform base carries the x86-64 busybox, which the engines run natively"
  fi
}

trixie_unpack() {
  local debs=$CACHE_DIR/debs-trixie stamp=$CACHE_DIR/d26/unpacked.stamp want p
  want=$(cd "$debs" && ls -- *.deb)
  if [[ -f $stamp && $(cat "$stamp") == "$want" && -x $D26_ROOT/usr/sbin/dockerd && -x $BUILDAH_ROOT/usr/bin/buildah ]]; then
    return 0
  fi
  log "unpacking trixie debs into $D26_ROOT and $BUILDAH_ROOT"
  rm -rf "$D26_ROOT" "$BUILDAH_ROOT"
  mkdir -p "$D26_ROOT" "$BUILDAH_ROOT"
  local deb
  for p in "${TRIXIE_PACKAGES[@]}"; do
    deb=$(compgen -G "$debs/${p}_*.deb" | head -n 1) || die "no $p deb in $debs"
    if [[ " ${BUILDAH_PACKAGES[*]} " == *" $p "* ]]; then
      dpkg-deb -x "$deb" "$BUILDAH_ROOT" || die "dpkg-deb -x $deb failed"
    else
      dpkg-deb -x "$deb" "$D26_ROOT" || die "dpkg-deb -x $deb failed"
    fi
  done
  # trixie's docker-init points to tini-static from the (absent) tini package
  ln -sfn /usr/bin/tini-static "$D26_ROOT/usr/bin/docker-init"
  # buildah and netavark need glibc 2.38+: their own copies load trixie's glibc first, Debian 12's other libraries next.
  local lib=$BUILDAH_ROOT/usr/lib/x86_64-linux-gnu
  for p in "$BUILDAH_ROOT/usr/bin/buildah" "$BUILDAH_ROOT/usr/lib/podman/netavark"; do
    patchelf --set-interpreter "$lib/ld-linux-x86-64.so.2" --set-rpath "$lib:/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu" "$p" ||
      die "patchelf $p failed"
  done
  printf '%s\n' "$want" >"$stamp"
}

# Client-only dirs the tests prepend to PATH (nothing but the one binary).
make_client_dirs() {
  mkdir -p "$CACHE_DIR/d20/bin" "$CACHE_DIR/d26/bin" "$CACHE_DIR/buildah/bin"
  ln -sfn "$D20_CLIENT" "$CACHE_DIR/d20/bin/docker"
  ln -sfn "$D26_ROOT/usr/bin/docker" "$CACHE_DIR/d26/bin/docker"
  # buildah 1.39's containers.conf: netavark from BUILDAH_ROOT (--network host needs none, but buildah loads a backend),
  # Debian 12's runc, and rlimits no higher than this machine's hard limits (its defaults ask for more and runc fails; an
  # unlimited hard limit needs no entry). It also uses Debian 12's buildah package's /etc/containers (policy, registries).
  local limits=() n
  n=$(ulimit -Hn)
  [[ $n =~ ^[0-9]+$ ]] && limits+=("\"nofile=$n:$n\"")
  n=$(ulimit -Hu)
  [[ $n =~ ^[0-9]+$ ]] && limits+=("\"nproc=$n:$n\"")
  cat >"$CACHE_DIR/buildah/containers.conf" <<EOF
[containers]
default_ulimits = [$(IFS=,; echo "${limits[*]}")]
[network]
network_backend = "netavark"
[engine]
runtime = "runc"
helper_binaries_dir = ["$BUILDAH_ROOT/usr/lib/podman"]
EOF
  rm -f "$BUILDAH"
  cat >"$BUILDAH" <<EOF
#!/bin/sh
# trixie's buildah 1.39 (engines.sh): its containers.conf unless the caller names one.
CONTAINERS_CONF=\${CONTAINERS_CONF:-'$CACHE_DIR/buildah/containers.conf'} exec '$BUILDAH_ROOT/usr/bin/buildah' "\$@"
EOF
  chmod +x "$BUILDAH"
}

# -------------------------------------------------------------- processes ---

pidfile() { echo "$RUN_DIR/$1.pid"; }

# pid of a process we started (cmdline must mention one of our private dirs).
ours_pid() {
  local f pid cmd
  f=$(pidfile "$1")
  [[ -s $f ]] || return 1
  pid=$(cat "$f")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [[ -r /proc/$pid/cmdline ]] || return 1
  cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ $cmd == *"$RUN_DIR"* || $cmd == *"$DATA_DIR"* ]] || return 1
  echo "$pid"
}

# start_daemon NAME PATH CMD...: detached (own session), logs to LOG_DIR.
start_daemon() {
  local name=$1 path=$2
  shift 2
  local logf=$LOG_DIR/$name.log
  : >"$logf"
  (
    cd /
    # fd 9 is our lock: the daemon must not inherit it
    PATH=$path setsid "$@" >>"$logf" 2>&1 </dev/null 9>&- &
    echo $! >"$(pidfile "$name")"
  )
}

wait_gone() { # pid timeout
  local pid=$1 t=$2 i
  for ((i = 0; i < t * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  return 1
}

# stop_daemons NAME...: SIGTERM all of them at once, wait (30s), then SIGKILL.
stop_daemons() {
  local n pid pids=() labels=() i
  for n in "$@"; do
    if pid=$(ours_pid "$n"); then
      log "stopping $n (pid $pid)"
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
      labels+=("$n")
    fi
    rm -f "$(pidfile "$n")"
  done
  for i in "${!pids[@]}"; do
    pid=${pids[$i]}
    if ! wait_gone "$pid" 30; then
      warn "${labels[$i]} (pid $pid) did not exit after 30s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      wait_gone "$pid" 10 || warn "${labels[$i]} (pid $pid) still alive"
    fi
  done
}

# children_of PID: direct children (parsed from /proc/*/stat, no procps).
children_of() {
  local f st
  for f in /proc/[0-9]*/stat; do
    st=$(cat "$f" 2>/dev/null) || continue
    st=${st##*) } # fields after "(comm) ": state ppid ...
    st=${st#* }
    [[ ${st%% *} == "$1" ]] && { f=${f#/proc/}; echo "${f%/stat}"; }
  done
  return 0
}

descendants_of() {
  local c
  for c in $(children_of "$1"); do
    descendants_of "$c"
    echo "$c"
  done
}

# Leftovers after a daemon crash (containerd shims, dockerd's managed
# containerd, runc) whose command line names one of our private dirs; the
# containers below a shim are SIGKILLed first (they would outlive the shim).
sweep_leftovers() {
  local sig pid cmd comm found d
  for sig in TERM KILL; do
    found=0
    for pid in /proc/[0-9]*; do
      pid=${pid#/proc/}
      [[ $pid -eq $$ ]] && continue
      comm=$(cat "/proc/$pid/comm" 2>/dev/null) || continue
      case $comm in
        containerd* | dockerd | docker-registry | runc | buildkit*) ;;
        *) continue ;;
      esac
      cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || continue
      [[ $cmd == *"$RUN_DIR"* || $cmd == *"$DATA_DIR"* ]] || continue
      log "leftover $comm (pid $pid): SIG$sig"
      if [[ $comm == containerd-shim* ]]; then
        for d in $(descendants_of "$pid"); do
          kill -KILL "$d" 2>/dev/null || true
        done
      fi
      kill "-$sig" "$pid" 2>/dev/null || true
      found=1
      if [[ $sig == TERM ]]; then wait_gone "$pid" 10 || true; fi
    done
    [[ $found -eq 0 ]] && break
  done
  return 0
}

# unmount_under DIR...: every mount point at or below the DIRs, deepest first.
unmount_under() {
  local pass m mounts
  for pass in 1 2 3; do
    mounts=$(awk -v dirs="$*" '
      BEGIN { n = split(dirs, d, " ") }
      { p = $5; gsub(/\\040/, " ", p)
        for (i = 1; i <= n; i++) if (p == d[i] || index(p, d[i] "/") == 1) { print p; break } }
    ' /proc/self/mountinfo | sort -r -u)
    [[ -z $mounts ]] && return 0
    while IFS= read -r m; do
      [[ $pass -eq 1 ]] && log "unmounting $m"
      umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done <<<"$mounts"
  done
  warn "still mounted: $mounts"
}

docker_ok() { # client host
  timeout 10 "$1" -H "$2" version >/dev/null 2>&1
}

wait_for() { # label pidname check-cmd...
  local label=$1 name=$2 i why="did not answer within ${TIMEOUT}s"
  shift 2
  for ((i = 0; i < TIMEOUT * 4; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    if ! ours_pid "$name" >/dev/null; then
      why="exited during startup"
      break
    fi
    sleep 0.25
  done
  warn "$label $why; tail of $LOG_DIR/$name.log:"
  tail -n 30 "$LOG_DIR/$name.log" >&2 || true
  return 1
}

# ------------------------------------------------------------------ start ---

port_busy() { # HOST:PORT
  (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null
}

start_registry() {
  local dir=$DATA_DIR/registry
  mkdir -p "$dir/storage"
  cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: info
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/storage
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: $UPSTREAM
  headers:
    X-Content-Type-Options: [nosniff]
EOF
  if port_busy "$UPSTREAM"; then
    warn "something already listens on $UPSTREAM"
    return 1
  fi
  start_daemon registry "$SYS_PATH" /usr/bin/docker-registry serve "$dir/config.yml"
  wait_for registry registry curl -fsS -o /dev/null "http://$UPSTREAM/v2/"
}

# The ECR-behaving front before docker-registry (test/fakes/registry-front.ts).
start_front() {
  local node ts_node=$PROJECT_DIR/node_modules/ts-node/register/transpile-only
  node=$(command -v node) || {
    warn "node is not installed: the registry front needs it"
    return 1
  }
  [[ -e $ts_node.js ]] || {
    warn "ts-node is missing in $PROJECT_DIR/node_modules: run npm ci first"
    return 1
  }
  if port_busy "$REGISTRY"; then
    warn "something already listens on $REGISTRY"
    return 1
  fi
  mkdir -p "$RUN_DIR/front"
  start_daemon front "$SYS_PATH" env TS_NODE_PROJECT="$PROJECT_DIR/tsconfig.json" "$node" -r "$ts_node" \
    "$PROJECT_DIR/test/fakes/registry-front.ts" --listen "$REGISTRY" --upstream "$UPSTREAM" --state-dir "$RUN_DIR/front"
  wait_for "registry front" front curl -fsS -o /dev/null "http://$REGISTRY/v2/"
}

# create_repository NAME MUTABLE|IMMUTABLE: like ECR's CreateRepository, through the front's control API.
create_repository() {
  curl -fsS -o /dev/null -X PUT --data "{\"imageTagMutability\":\"$2\"}" "http://$REGISTRY/__front/repositories/$1"
}

start_d20() {
  mkdir -p "$DATA_DIR/d20" "$RUN_DIR/d20"
  echo '{}' >"$DATA_DIR/d20.json"
  # no --containerd: dockerd 20.10 runs its own containerd (Debian 12's 1.6)
  start_daemon d20 "$SYS_PATH" "$D20_DOCKERD" \
    --config-file "$DATA_DIR/d20.json" \
    -H "unix://$RUN_DIR/d20.sock" \
    --data-root "$DATA_DIR/d20" --exec-root "$RUN_DIR/d20" \
    --pidfile "$RUN_DIR/d20/dockerd.pid" \
    --iptables=false --ip-forward=false --ip-masq=false --bridge=none
  wait_for "docker 20.10" d20 docker_ok "$D20_CLIENT" "unix://$RUN_DIR/d20.sock"
}

start_d26() {
  local cdir=$DATA_DIR/d26-containerd csock=$RUN_DIR/d26-ctd.sock
  mkdir -p "$cdir/root" "$cdir/opt" "$RUN_DIR/d26-containerd" "$DATA_DIR/d26" "$RUN_DIR/d26"
  cat >"$cdir/config.toml" <<EOF
version = 2
root = "$cdir/root"
state = "$RUN_DIR/d26-containerd"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "$csock"

[ttrpc]
  address = ""

[debug]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "$cdir/opt"
EOF
  start_daemon d26-containerd "$D26_PATH" "$D26_ROOT/usr/bin/containerd" \
    --config "$cdir/config.toml"
  wait_for "containerd 1.7" d26-containerd \
    timeout 5 "$D26_ROOT/usr/bin/ctr" --address "$csock" version || return 1

  echo '{"features":{"containerd-snapshotter":true}}' >"$DATA_DIR/d26.json"
  start_daemon d26 "$D26_PATH" "$D26_ROOT/usr/sbin/dockerd" \
    --config-file "$DATA_DIR/d26.json" \
    --containerd "$csock" \
    -H "unix://$RUN_DIR/d26.sock" \
    --data-root "$DATA_DIR/d26" --exec-root "$RUN_DIR/d26" \
    --pidfile "$RUN_DIR/d26/dockerd.pid" \
    --iptables=false --ip-forward=false --ip-masq=false --bridge=none
  wait_for "docker 26" d26 docker_ok "$D26_ROOT/usr/bin/docker" "unix://$RUN_DIR/d26.sock" || return 1

  # buildx as a CLI plugin, only for clients using this DOCKER_CONFIG
  local cfg=$DATA_DIR/d26-docker-config
  mkdir -p "$cfg/cli-plugins"
  ln -sfn "$D26_ROOT/usr/libexec/docker/cli-plugins/docker-buildx" "$cfg/cli-plugins/docker-buildx"
  DOCKER_CONFIG=$cfg "$D26_ROOT/usr/bin/docker" -H "unix://$RUN_DIR/d26.sock" buildx version >/dev/null ||
    {
      warn "docker buildx plugin does not work with the docker 26 client"
      return 1
    }
}

# storage.conf template for buildah; @ROOT@ is replaced by a per-build dir.
write_buildah_template() { # driver
  local t=$DATA_DIR/buildah/storage.conf.template
  mkdir -p "$DATA_DIR/buildah"
  cat >"$t" <<EOF
# containers-storage.conf(5) template for buildah in the integration tests.
# Replace @ROOT@ with a fresh empty directory per build, write the result to
# a file and point CONTAINERS_STORAGE_CONF at it.
[storage]
driver = "$1"
graphroot = "@ROOT@/graph"
runroot = "@ROOT@/run"
EOF
  echo "$t"
}

# Check buildah with a throw-away storage: pull the base image from the
# registry; picks the storage driver (overlay if it works here, else vfs).
check_buildah() {
  [[ -x $BUILDAH ]] || {
    warn "buildah not installed"
    return 1
  }
  local driver root conf ok=0 out
  for driver in overlay vfs; do
    root=$DATA_DIR/buildah/check-$driver
    rm -rf "$root"
    mkdir -p "$root"
    conf=$root/storage.conf
    sed "s|@ROOT@|$root|g" "$(write_buildah_template "$driver")" >"$conf"
    if out=$(CONTAINERS_STORAGE_CONF=$conf "$BUILDAH" from --pull-always --tls-verify=false \
      --quiet "$BASE_IMAGE" 2>&1) &&
      CONTAINERS_STORAGE_CONF=$conf "$BUILDAH" run --network host "$out" -- /bin/sh -c 'echo ok >/x' >/dev/null 2>&1; then
      CONTAINERS_STORAGE_CONF=$conf "$BUILDAH" rm -a >/dev/null 2>&1 || true
      CONTAINERS_STORAGE_CONF=$conf "$BUILDAH" rmi -af >/dev/null 2>&1 || true
      ok=1
    else
      warn "buildah with the $driver driver failed: ${out//$'\n'/ }"
    fi
    unmount_under "$root"
    rm -rf "$root"
    if [[ $ok -eq 1 ]]; then
      BUILDAH_DRIVER=$driver
      BUILDAH_TEMPLATE=$(write_buildah_template "$driver")
      return 0
    fi
  done
  return 1
}

# Network-free base image: busybox-static and its applet links. Args: the busybox binary (default the system's) and
# the tar's name (default base).
make_base_tar() { # [busybox] [name] [platform: written to /etc/cib-platform]
  local busybox=${1:-/bin/busybox} name=${2:-base} platform=${3:-}
  local tar=$CACHE_DIR/base/$name.tar
  local stamp=$CACHE_DIR/base/$name.busybox want
  want="$(sha256sum "$busybox" | cut -d ' ' -f 1) $platform"
  if [[ -s $tar && -f $stamp && $(cat "$stamp") == "$want" ]]; then
    echo "$tar"
    return 0
  fi
  local rootfs=$CACHE_DIR/base/rootfs-$name a
  rm -rf "$rootfs"
  mkdir -p "$rootfs"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,root,proc,sys,dev,var/tmp}
  chmod 1777 "$rootfs/tmp" "$rootfs/var/tmp"
  cp "$busybox" "$rootfs/bin/busybox"
  while IFS= read -r a; do
    [[ -z $a || $a == bin/busybox ]] && continue
    mkdir -p "$rootfs/$(dirname "$a")"
    ln -sfn /bin/busybox "$rootfs/$a"
  done < <("$busybox" --list-full)
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$rootfs/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
  [[ -z $platform ]] || printf '%s\n' "$platform" >"$rootfs/etc/cib-platform"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
    -C "$rootfs" -cf "$tar.tmp" .
  mv "$tar.tmp" "$tar"
  rm -rf "$rootfs"
  echo "$want" >"$stamp"
  echo "$tar"
}

push_base() { # engine-that-is-up
  local tar
  mkdir -p "$CACHE_DIR/base"
  tar=$(make_base_tar)
  local changes=(--change 'CMD ["/bin/sh"]'
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin')
  case $1 in
    d20 | d26)
      local cli=$D20_CLIENT
      [[ $1 == d26 ]] && cli=$D26_ROOT/usr/bin/docker
      local h=unix://$RUN_DIR/$1.sock
      "$cli" -H "$h" import "${changes[@]}" "$tar" "$BASE_IMAGE" >/dev/null &&
        "$cli" -H "$h" push --quiet "$BASE_IMAGE" >/dev/null &&
        "$cli" -H "$h" rmi "$BASE_IMAGE" >/dev/null
      ;;
    buildah)
      local root=$DATA_DIR/buildah/base-push c rc=0
      rm -rf "$root"
      mkdir -p "$root"
      sed "s|@ROOT@|$root|g" "$DATA_DIR/buildah/storage.conf.template" >"$root/storage.conf"
      {
        c=$(CONTAINERS_STORAGE_CONF=$root/storage.conf "$BUILDAH" from scratch) &&
          CONTAINERS_STORAGE_CONF=$root/storage.conf "$BUILDAH" add "$c" "$tar" / >/dev/null &&
          CONTAINERS_STORAGE_CONF=$root/storage.conf "$BUILDAH" config --cmd /bin/sh \
            --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$c" &&
          CONTAINERS_STORAGE_CONF=$root/storage.conf "$BUILDAH" commit --quiet --format docker \
            "$c" "$BASE_IMAGE" >/dev/null &&
          CONTAINERS_STORAGE_CONF=$root/storage.conf "$BUILDAH" push --quiet --tls-verify=false \
            "$BASE_IMAGE" >/dev/null
      } || rc=$?
      unmount_under "$root"
      rm -rf "$root"
      return "$rc"
      ;;
  esac
}

# upload_blob REPO FILE: one blob, the registry API's monolithic upload (POST, then PUT with the digest). Prints
# "digest size".
upload_blob() {
  local repo=$1 file=$2 digest size location
  digest=sha256:$(sha256sum "$file" | cut -d ' ' -f 1)
  size=$(stat -c %s "$file")
  location=$(curl -fsS -o /dev/null -D - -X POST "http://$REGISTRY/v2/$repo/blobs/uploads/" |
    tr -d '\r' | awk 'tolower($1) == "location:" { print $2 }')
  [[ -n $location ]] || return 1
  [[ $location == http* ]] || location=http://$REGISTRY$location
  [[ $location == *\?* ]] && location=$location\&digest=$digest || location=$location\?digest=$digest
  curl -fsS -o /dev/null -X PUT -H 'Content-Type: application/octet-stream' --data-binary "@$file" "$location" || return 1
  echo "$digest $size"
}

# put_manifest REPO REFERENCE MEDIATYPE FILE: prints "digest size".
put_manifest() {
  curl -fsS -o /dev/null -X PUT -H "Content-Type: $3" --data-binary "@$4" "http://$REGISTRY/v2/$1/manifests/$2" || return 1
  echo "sha256:$(sha256sum "$4" | cut -d ' ' -f 1) $(stat -c %s "$4")"
}

# The two-platform base (linux/amd64 + linux/386) as an index, written with the registry API (no engine holds a 386
# image here): each platform's layer, config and manifest by digest, then the index under the tag. Called where
# set -e does not apply (a failure is a warning): every command checks its own status.
push_multi_base() {
  local repo=${MULTI_BASE_IMAGE#*/} tmp rc=0
  repo=${repo%:*}
  create_repository "$repo" MUTABLE || return 1
  tmp=$(mktemp -d) || return 1
  write_multi_base "$repo" "$tmp" || rc=$?
  rm -rf "$tmp"
  return "$rc"
}

write_multi_base() { # repo tmpdir
  local repo=$1 tmp=$2 arch tar busybox entries=() layer config manifest diff
  for arch in amd64 386; do
    busybox=/bin/busybox
    if [[ $arch == 386 ]]; then busybox_for_386 || return 1; busybox=$BUSYBOX_386; fi
    tar=$(make_base_tar "$busybox" "base-$arch" "linux/$arch") && [[ -s $tar ]] || return 1
    gzip -n -c "$tar" >"$tmp/$arch.tar.gz" || return 1
    diff=sha256:$(sha256sum "$tar" | cut -d ' ' -f 1)
    printf '{"created":"2026-01-01T00:00:00Z","architecture":"%s","os":"linux","config":{"Env":["PATH=%s"],"Cmd":["/bin/sh"]},"rootfs":{"type":"layers","diff_ids":["%s"]},"history":[{"created":"2026-01-01T00:00:00Z","created_by":"engines.sh: busybox-static %s"}]}' \
      "$arch" /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$diff" "$arch" >"$tmp/$arch.config.json"
    layer=$(upload_blob "$repo" "$tmp/$arch.tar.gz") || return 1
    config=$(upload_blob "$repo" "$tmp/$arch.config.json") || return 1
    printf '{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"%s","digest":"%s","size":%s},"layers":[{"mediaType":"%s","digest":"%s","size":%s}]}' \
      application/vnd.docker.distribution.manifest.v2+json application/vnd.docker.container.image.v1+json "${config% *}" "${config#* }" \
      application/vnd.docker.image.rootfs.diff.tar.gzip "${layer% *}" "${layer#* }" >"$tmp/$arch.manifest.json"
    manifest=$(put_manifest "$repo" "sha256:$(sha256sum "$tmp/$arch.manifest.json" | cut -d ' ' -f 1)" \
      application/vnd.docker.distribution.manifest.v2+json "$tmp/$arch.manifest.json") || return 1
    entries+=("$(printf '{"mediaType":"%s","digest":"%s","size":%s,"platform":{"architecture":"%s","os":"linux"}}' \
      application/vnd.docker.distribution.manifest.v2+json "${manifest% *}" "${manifest#* }" "$arch")")
  done
  printf '{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[%s,%s]}' \
    "${entries[0]}" "${entries[1]}" >"$tmp/index.json" || return 1
  put_manifest "$repo" "${MULTI_BASE_IMAGE##*:}" application/vnd.docker.distribution.manifest.list.v2+json "$tmp/index.json" >/dev/null
}

d26_check_runc() {
  local v
  v=$("$D26_ROOT/usr/bin/docker" -H "unix://$RUN_DIR/d26.sock" info --format '{{.RuncCommit.ID}}' 2>/dev/null || true)
  log "docker 26 uses runc commit ${v:-?} (Debian 12's /usr/sbin/runc: $(/usr/sbin/runc --version | awk 'NR==1{print $3}'))"
}

# mount_data_fs: a new ext4 with a journal at DATA_DIR (see the top of this file), or, when CIB_ENGINES_FS=dir or it cannot be
# made, DATA_DIR as a plain directory. Sets DATA_FS_USED. Inode tables are not zeroed (sparse file: they read as zeros).
mount_data_fs() {
  mkdir -p "$DATA_DIR"
  case $DATA_FS in
    dir)
      DATA_FS_USED="dir"
      return 0
      ;;
    ext4) ;;
    *) die "CIB_ENGINES_FS must be ext4 or dir, not '$DATA_FS'" ;;
  esac
  mkdir -p "$CACHE_DIR"
  rm -f "$DATA_FS_IMAGE"
  local step="" need avail
  need=$(numfmt --from=iec "$DATA_FS_SIZE" 2>/dev/null) || die "CIB_ENGINES_FS_SIZE must be a size such as 40G, not '$DATA_FS_SIZE'"
  avail=$(($(stat -f -c '%a * %S' "$CACHE_DIR")))
  if ((avail < need)); then
    step="free space: $CACHE_DIR has $(numfmt --to=iec "$avail") free, the file may grow to $DATA_FS_SIZE (CIB_ENGINES_FS_SIZE)"
  elif ! truncate -s "$DATA_FS_SIZE" "$DATA_FS_IMAGE" 2>>"$LOG_DIR/data-fs.log"; then
    step="truncate"
  elif ! mkfs.ext4 -q -F -j -L cib-engines -E lazy_itable_init=1,lazy_journal_init=1,nodiscard "$DATA_FS_IMAGE" >>"$LOG_DIR/data-fs.log" 2>&1; then
    step="mkfs.ext4"
  elif ! mount -o loop,noinit_itable "$DATA_FS_IMAGE" "$DATA_DIR" 2>>"$LOG_DIR/data-fs.log"; then
    step="mount -o loop (no loop device?)"
  fi
  if [[ -z $step ]]; then
    DATA_FS_USED="ext4"
    log "engines' data on a new ext4 with a journal ($DATA_FS_IMAGE, $DATA_FS_SIZE sparse) at $DATA_DIR"
    return 0
  fi
  warn "could not make the engines' ext4 at $DATA_DIR ($step; log: $LOG_DIR/data-fs.log): the data stays on the root filesystem, where the benchmarks' fresh hosts are slow"
  rm -f "$DATA_FS_IMAGE"
  DATA_FS_USED="dir-fallback"
}

# trim_data_fs: gives the sparse file back the blocks of what was just deleted (the filesystem reuses them anyway, but its
# allocator spreads over block groups, and without this the file would grow toward its full size over a long session).
trim_data_fs() {
  [[ $DATA_FS == ext4 ]] && mountpoint -q "$DATA_DIR" || return 0
  fstrim "$DATA_DIR" 2>/dev/null || true
}

# unmount_data_fs: DATA_DIR's own filesystem (if mounted) unmounted, its file removed.
unmount_data_fs() {
  unmount_under "$DATA_DIR"
  [[ -e $DATA_FS_IMAGE ]] || return 0
  local loops
  loops=$(losetup -j "$DATA_FS_IMAGE" 2>/dev/null | cut -d: -f1 | tr '\n' ' ')
  if [[ -n ${loops// /} ]]; then
    # A lazy unmount leaves the loop device holding the file until its last user goes: removing the file now would hide
    # the space it takes. The next `up` removes it.
    warn "$DATA_FS_IMAGE is still attached ($loops): something still uses $DATA_DIR; not removing it"
    return 0
  fi
  rm -f "$DATA_FS_IMAGE"
}

# -------------------------------------------------------------- commands ---

kill_containers() { # client host
  local ids
  [[ -S ${2#unix://} && -x $1 ]] || return 0
  ids=$(timeout 10 "$1" -H "$2" ps -q 2>/dev/null) || return 0
  if [[ -n $ids ]]; then
    # shellcheck disable=SC2086 # one id per word
    timeout 20 "$1" -H "$2" kill $ids >/dev/null 2>&1 || true
  fi
}

cmd_down() {
  # dockerd would give each running container its 10s stop timeout
  kill_containers "$D26_ROOT/usr/bin/docker" "unix://$RUN_DIR/d26.sock"
  kill_containers "$D20_CLIENT" "unix://$RUN_DIR/d20.sock"
  # dockerd 26 needs its containerd while shutting down
  stop_daemons d26 d20 front registry
  stop_daemons d26-containerd
  sweep_leftovers
  unmount_under "$RUN_DIR"
  unmount_data_fs
  rm -rf "$RUN_DIR"
  rm -f "$ENV_FILE"
  log "down"
}

cmd_up() {
  local t0=$SECONDS
  apt_install
  # The daemons inherit this PATH: they decompress with unpigz as CodeBuild's docker does (CB12), or the times differ.
  local p
  for p in "$SYS_PATH" "$D26_PATH"; do
    PATH=$p command -v unpigz >/dev/null \
      || die "unpigz (Debian package pigz) is not on the daemons' PATH ($p): they would decompress layers more slowly than docker on CodeBuild's images"
  done
  trixie_fetch
  trixie_unpack
  make_client_dirs

  cmd_down >/dev/null 2>&1 || true
  if mountpoint -q "$DATA_DIR"; then
    die "$DATA_DIR is still a mount point after stopping the engines (something still uses it): unmount it and run up again"
  fi
  rm -rf "$DATA_DIR" "$RUN_DIR"
  mkdir -p "$LOG_DIR"
  mount_data_fs
  mkdir -p "$DATA_DIR/scratch" "$RUN_DIR"
  chmod 700 "$RUN_DIR"

  local started=() failed=() e
  if ! start_registry; then
    cmd_down >/dev/null 2>&1 || true
    die "registry did not start on $UPSTREAM (log: $LOG_DIR/registry.log)"
  fi
  if ! start_front; then
    cmd_down >/dev/null 2>&1 || true
    die "the registry front did not start on $REGISTRY (log: $LOG_DIR/front.log)"
  fi
  local base_repo=${BASE_IMAGE#*/}
  create_repository "${base_repo%:*}" MUTABLE || die "could not create the repository ${base_repo%:*} on the front"
  log "registry up on $UPSTREAM, ECR-behaving front on $REGISTRY"

  if start_d20; then started+=(d20); else failed+=(d20); fi
  if start_d26; then started+=(d26); else failed+=(d26); fi

  local base_by=""
  for e in "${started[@]}"; do
    if push_base "$e"; then
      base_by=$e
      break
    fi
    warn "pushing the base image with $e failed"
  done
  if [[ -z $base_by ]]; then
    if check_buildah && push_base buildah; then base_by=buildah; fi
  fi
  [[ -n $base_by ]] || {
    cmd_down >/dev/null 2>&1 || true
    die "could not push the base image $BASE_IMAGE with any engine"
  }
  log "base image $BASE_IMAGE pushed (imported with $base_by)"
  local multi_base=""
  if push_multi_base; then
    multi_base=$MULTI_BASE_IMAGE
    log "two-platform base image $MULTI_BASE_IMAGE pushed ($MULTI_BASE_PLATFORMS; linux/386 carries the $MULTI_BASE_386 busybox)"
  else
    warn "the two-platform base image $MULTI_BASE_IMAGE could not be pushed: the multi-platform tests will not run"
  fi

  if [[ -n $BUILDAH_TEMPLATE ]] || check_buildah; then
    started+=(buildah)
    log "buildah ok ($BUILDAH_DRIVER storage driver)"
  else
    failed+=(buildah)
  fi
  [[ " ${started[*]} " == *" d26 "* ]] && d26_check_runc

  if [[ ${#failed[@]} -gt 0 ]]; then
    if [[ $REQUIRE_ENGINES == 1 ]]; then
      cmd_down >/dev/null 2>&1 || true
      die "REQUIRE_ENGINES=1 and these engines did not start: ${failed[*]} (logs in $LOG_DIR)"
    fi
    warn "engines not started: ${failed[*]} (logs in $LOG_DIR)"
  fi

  cat >"$ENV_FILE.tmp" <<EOF
# Written by engines.sh up on $(date -u +%FT%TZ); removed by engines.sh down.
export CIB_REGISTRY=$REGISTRY
# the ECR-behaving front's control API (create repositories, read manifest writes)
export CIB_REGISTRY_CONTROL=http://$REGISTRY/__front
export CIB_BASE_IMAGE=$BASE_IMAGE
# an index of linux/amd64 and linux/386 (empty when it could not be pushed)
export CIB_MULTI_BASE_IMAGE=$multi_base
export CIB_MULTI_BASE_PLATFORMS=$MULTI_BASE_PLATFORMS
# what linux/386's variant runs: i386 (this kernel runs i386 binaries) or x86-64 (it does not: see busybox_for_386)
export CIB_MULTI_BASE_386=$MULTI_BASE_386
# docker 20.10: prepend CIB_D20_BIN to PATH, DOCKER_HOST=CIB_D20_HOST, DOCKER_BUILDKIT=1
export CIB_D20_BIN=$CACHE_DIR/d20/bin
export CIB_D20_HOST=unix://$RUN_DIR/d20.sock
# docker 26 + buildx 0.13: prepend CIB_D26_BIN to PATH, DOCKER_HOST=CIB_D26_HOST,
# DOCKER_CONFIG=CIB_D26_DOCKER_CONFIG (holds cli-plugins/docker-buildx)
export CIB_D26_BIN=$CACHE_DIR/d26/bin
export CIB_D26_HOST=unix://$RUN_DIR/d26.sock
export CIB_D26_DOCKER_CONFIG=$DATA_DIR/d26-docker-config
# buildah: prepend CIB_BUILDAH_BIN to PATH. For a fresh storage per build:
#   root=\$(mktemp -d); sed "s|@ROOT@|\$root|g" "\$CIB_BUILDAH_STORAGE_TEMPLATE" >"\$root/storage.conf"
#   CONTAINERS_STORAGE_CONF=\$root/storage.conf buildah build ...
# then: buildah rm -a; buildah rmi -af (same env), umount anything under \$root, rm -rf \$root.
# Storage driver: $BUILDAH_DRIVER
export CIB_BUILDAH_BIN=$CACHE_DIR/buildah/bin
export CIB_BUILDAH_STORAGE_TEMPLATE=$BUILDAH_TEMPLATE
# where the engines' data lives: ext4 (a new one with a journal, at the data dir), dir (the root filesystem,
# CIB_ENGINES_FS=dir) or dir-fallback (the ext4 could not be made: see the warning of up)
export CIB_ENGINES_FS=$DATA_FS_USED
# scratch space on that filesystem (buildah storages of the tests and benchmarks)
export CIB_ENGINES_SCRATCH=$DATA_DIR/scratch
# engines that actually started
export CIB_ENGINES="${started[*]}"
EOF
  mv "$ENV_FILE.tmp" "$ENV_FILE"
  log "engines up: ${started[*]} ($((SECONDS - t0))s); env in $ENV_FILE"
}

cmd_status() {
  local n pid any=0
  for n in registry front d20 d26-containerd d26; do
    if pid=$(ours_pid "$n"); then
      any=1
      printf '%-15s running  pid %-7s log %s\n' "$n" "$pid" "$LOG_DIR/$n.log"
    else
      printf '%-15s stopped\n' "$n"
    fi
  done
  if curl -fsS -o /dev/null "http://$REGISTRY/v2/" 2>/dev/null; then
    echo "registry answers on http://$REGISTRY/v2/"
  fi
  if [[ -S $RUN_DIR/d20.sock ]] && docker_ok "$D20_CLIENT" "unix://$RUN_DIR/d20.sock"; then
    echo "docker 20.10 answers on unix://$RUN_DIR/d20.sock"
  fi
  if [[ -S $RUN_DIR/d26.sock ]] && docker_ok "$D26_ROOT/usr/bin/docker" "unix://$RUN_DIR/d26.sock"; then
    echo "docker 26 answers on unix://$RUN_DIR/d26.sock"
  fi
  if [[ -f $ENV_FILE ]]; then
    echo "env file: $ENV_FILE"
    grep '^export CIB_ENGINES=' "$ENV_FILE" || true
  else
    echo "no env file (not up)"
  fi
  [[ $any -eq 1 ]]
}

# remove_state DIR...: removes a stopped daemon's state, unmounting what is still mounted below it first.
remove_state() {
  local dir
  for dir in "$@"; do
    [[ -d $dir ]] || continue
    unmount_under "$dir"
    rm -rf "$dir"
  done
  trim_data_fs
}

# fresh-d20: docker 20.10 restarted with none of its state (images, layers, BuildKit's cache keys and records), as a CodeBuild
# host starts every build. Its BuildKit (0.8) keeps cache keys across `docker builder prune` and, with them, drops inline-cache
# records of later builds (see stages.sh.ts): a test that models a fresh host must not inherit the builds before it.
cmd_fresh_d20() {
  [[ -f $ENV_FILE ]] || die "engines are not up (no $ENV_FILE)"
  kill_containers "$D20_CLIENT" "unix://$RUN_DIR/d20.sock"
  stop_daemons d20
  remove_state "$DATA_DIR/d20"
  start_d20 || die "docker 20.10 did not start again (log: $LOG_DIR/d20.log)"
  log "docker 20.10 restarted with an empty data root"
}

# fresh-d26: docker 26 and its containerd restarted with none of their state, for the same reason: a two-platform scenario
# that followed another on the same steps re-ran the 386 platform's first steps (platforms.test.ts after native.test.ts: 2 of
# 4 series; alone: 0 of 6). Both roots go: with only BuildKit's directory removed, containerd kept the content BuildKit had
# leased, and the next "fresh" build pulled nothing (bench:real, a source change: 0.0 MB pulled instead of 169 MB).
cmd_fresh_d26() {
  [[ -f $ENV_FILE ]] || die "engines are not up (no $ENV_FILE)"
  kill_containers "$D26_ROOT/usr/bin/docker" "unix://$RUN_DIR/d26.sock"
  stop_daemons d26
  stop_daemons d26-containerd
  remove_state "$DATA_DIR/d26" "$DATA_DIR/d26-containerd/root" "$DATA_DIR/d26-containerd/opt"
  start_d26 || die "docker 26 did not start again (log: $LOG_DIR/d26.log)"
  log "docker 26 restarted with empty data roots"
}

main() {
  case ${1:-} in
    up)
      need_root
      take_lock
      cmd_up
      ;;
    down)
      need_root
      take_lock
      cmd_down
      ;;
    status) cmd_status ;;
    fresh-d20 | fresh-d26)
      need_root
      take_lock
      "cmd_${1//-/_}"
      ;;
    *)
      echo "usage: $0 up|down|status|fresh-d20|fresh-d26" >&2
      exit 2
      ;;
  esac
}

main "$@"
