import { EngineScript } from './engine';

/**
 * `buildah build --layers` with `--cache-from/--cache-to` on the cache repository. buildah stores one
 * content-addressed tag per step there and pushes only the layers it built, so branches share the cache
 * and a no-op build pushes nothing.
 */
export function buildahEngine(): EngineScript {
  return {
    strategy: 'buildah',
    logFormat: 'buildah',
    functions: `cib_engine_setup() {
  # CodeBuild's standard images ship docker, not buildah: install it from the image's own packages.
  if ! command -v buildah >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1; then
      cib_log 'buildah is missing: installing it with apt-get'
      apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q buildah >&2
    elif command -v dnf >/dev/null 2>&1; then
      cib_log 'buildah is missing: installing it with dnf'
      dnf install -y -q buildah >&2
    else
      cib_die 'buildah is not installed and neither apt-get nor dnf is available: use a build image with buildah'
    fi
  fi
  local version
  version=$(buildah --version 2>&1) || cib_die "buildah does not run here: $version"
  version=$(printf '%s\\n' "$version" | awk '{ print $3; exit }')
  # --cache-from/--cache-to came in buildah 1.27 (Ubuntu 22.04, CodeBuild standard:7.0, packages 1.23); 1.27 and 1.28 never pull
  # an ARG step from the remote cache, and every step after a missed one runs (fixed in 1.29, containers/buildah 3223610).
  if ! printf '%s\\n' "$version" | awk -F . '{ exit !($1 + 0 > 1 || ($1 + 0 == 1 && $2 + 0 >= 29)) }'; then
    if printf '%s\\n' "$version" | awk -F . '{ exit !($1 + 0 == 1 && $2 + 0 >= 27) }'; then
      cib_die "buildah $version never reuses an ARG step from the remote cache, nor any step after one (fixed in buildah 1.29):" \\
        'use a build image whose buildah is 1.29 or later (CodeBuild standard:8.0, Ubuntu 24.04, installs 1.33), or the registry or inline strategy'
    fi
    cib_die "buildah $version has no --cache-from/--cache-to (they came in buildah 1.27, and reuse ARG steps from 1.29): use a build" \\
      'image whose buildah is 1.29 or later (CodeBuild standard:8.0, Ubuntu 24.04, installs 1.33), or the registry or inline strategy'
  fi
}

# buildah stats $DOCKER_CONFIG/config.json for credentials and fails (exit 125, "checking authfile") when DOCKER_CONFIG
# names a directory without one: then it runs as if DOCKER_CONFIG were unset (its own auth file still applies).
cib_buildah() {
  if [ -n "\${DOCKER_CONFIG:-}" ] && [ ! -f "$DOCKER_CONFIG/config.json" ]; then
    env -u DOCKER_CONFIG buildah "$@"
  else
    buildah "$@"
  fi
}

cib_engine_login() {
  cib_buildah login --username AWS --password-stdin "$1" >/dev/null
}

cib_engine_login_hosts() { :; }

cib_buildah_tls() {
  CIB_TLS=()
  if cib_is_local_registry "\${1%%/*}"; then CIB_TLS=(--tls-verify=false); fi
}

cib_engine_build() {
  local args=() cache_to=()
  cib_buildah_tls "$CACHE_REPOSITORY_URI"
  if [ -n "$CACHE_READ_TAGS" ]; then args+=(--cache-from "$CACHE_REPOSITORY_URI"); fi
  if [ -n "$CACHE_WRITE_TAG" ]; then cache_to=(--cache-to "$CACHE_REPOSITORY_URI"); fi
  local status=0
  # Docker format: OCI image config has no HEALTHCHECK (buildah drops it, and other Docker-only settings, with a warning);
  # no io.buildah.version label: the image is the one the docker strategies would push.
  cib_buildah build --layers --format docker --identity-label=false \${CIB_TLS[@]+"\${CIB_TLS[@]}"} \${args[@]+"\${args[@]}"} \${cache_to[@]+"\${cache_to[@]}"} "\${CIB_FLAGS[@]}" \\
    --tag "$IMAGE_URI" "$CIB_CONTEXT" 2>&1 | cib_timestamp "$CIB_WORK_DIR/build.tlog" | tee "$CIB_WORK_DIR/build.log" >&2 || status=$?
  if [ "$status" -ne 0 ] && [ "\${#cache_to[@]}" -gt 0 ] && cib_buildah_cache_push_failed "$CIB_WORK_DIR/build.log"; then
    # A failed cache export must not fail the build: build again without --cache-to (local layers hit).
    cib_warn "cache export failed ($(cib_buildah_error "$CIB_WORK_DIR/build.log" | head -c 300)); building again without --cache-to"
    cib_state_set CIB_CACHE_PUSH_FAILED 1
    status=0
    cib_buildah build --layers --format docker --identity-label=false \${CIB_TLS[@]+"\${CIB_TLS[@]}"} "\${CIB_FLAGS[@]}" --tag "$IMAGE_URI" "$CIB_CONTEXT" > "$CIB_WORK_DIR/rebuild.log" 2>&1 \\
      || { status=$?; cat "$CIB_WORK_DIR/rebuild.log" >&2; }
  fi
  [ "$status" -eq 0 ] || cib_die "buildah build failed (exit $status)"
  cib_buildah_tls "$APP_REPOSITORY_URI"
  cib_buildah push \${CIB_TLS[@]+"\${CIB_TLS[@]}"} --digestfile "$CIB_WORK_DIR/digest" "$IMAGE_URI" "docker://$IMAGE_URI" >&2 \\
    || cib_die "buildah push $IMAGE_URI failed (exit $?)"
  cib_state_set IMAGE_DIGEST "$(cat "$CIB_WORK_DIR/digest")"
  # buildah's refs are the step tags it pulled: what the cleanup must keep alive (1.39 may say so twice for one step).
  cib_state_set CACHE_REFS_READ "$(sed -n 's/^--> Cache pulled from remote .*:\\([0-9a-f]\\{64\\}\\)$/\\1/p' "$CIB_WORK_DIR/build.log" | awk '!seen[$0]++' | paste -sd , -)"
  cib_buildah_warn_pulled_unused "$CIB_WORK_DIR/build.log"
  : > "$CIB_WORK_DIR/restored-refs"
  if [ "\${#cache_to[@]}" -gt 0 ] && [ -z "\${CIB_CACHE_PUSH_FAILED:-}" ]; then cib_buildah_restore_refs; fi
}

# A step tag buildah pulled and then pushed again is a step it found in the cache and ran anyway: it reuses a pulled step image
# only when the image's history matches the base's entry by entry, and a base whose history entries have no "created" time
# never does (the step image, in Docker format, says 0001-01-01T00:00:00Z there). Every build would then run every step.
cib_buildah_warn_pulled_unused() {
  local unused
  # Per step: the tag it pulled, whether it then said "Using cache", and the tag it pushed. (A later stage that hits a step
  # locally pushes its tag again after "Using cache": that is no miss.)
  unused=$(awk '/STEP [0-9]+\\/[0-9]+: / { pulled = ""; used = 0 }
    /^--> Cache pulled from remote / { n = split($NF, a, ":"); pulled = a[n] }
    /^--> Using cache / { used = 1 }
    /^--> Pushing cache / { n = split($NF, a, ":"); if (a[n] == pulled && !used && !(a[n] in seen)) { seen[a[n]] = 1; print a[n] } }' "$1" \\
    | paste -sd , -)
  [ -z "$unused" ] || cib_warn "buildah pulled the cached step $unused and ran it anyway: buildah reuses a cached step only when" \\
    "the base image's history matches the cached image's, and a base image whose history entries have no 'created' time never" \\
    "matches. Rebuild the base image with created times (docker, buildah and BuildKit write them), or use the registry or inline strategy"
}

# buildah's final error line: what stopped it.
cib_buildah_error() {
  grep -E '^(Error|error):? ' "$1" | tail -n 1
}

# Whether buildah stopped because a cache push failed, told by what failed (its final error), not by what it printed before:
# it prints "Pushing cache" for every step whose cache it pushed, and a step that fails later says "building at STEP".
cib_buildah_cache_push_failed() {
  local error
  error=$(cib_buildah_error "$1")
  [[ $error == *'pushing cache to'* && $error != *'building at STEP'* ]]
}

# buildah pushes the cache of the steps it ran, never of those it pulled: a step tag deleted while this build read it (by a
# cleanup, by a person) would stay missing, and every later build would run that step and all after it. Each step tag this
# build read that is gone (one HEAD a tag) is pushed back from the copy the build pulled.
cib_buildah_restore_refs() {
  local tag status
  cib_buildah_tls "$CACHE_REPOSITORY_URI"
  for tag in \${CACHE_REFS_READ//,/ }; do
    status=0
    cib_remote_digest "$CACHE_REPOSITORY_URI:$tag" > /dev/null || status=$?
    [ "$status" -eq 1 ] || continue
    if cib_buildah push \${CIB_TLS[@]+"\${CIB_TLS[@]}"} "$CACHE_REPOSITORY_URI:$tag" "docker://$CACHE_REPOSITORY_URI:$tag" > "$CIB_WORK_DIR/restore.log" 2>&1; then
      cib_log "cache step $tag was gone from the cache repository: pushed back"
      printf '%s\\n' "$tag" >> "$CIB_WORK_DIR/restored-refs"
    else
      cib_warn "cache step $tag is gone from the cache repository and could not be pushed back: $(tail -n 1 "$CIB_WORK_DIR/restore.log" | head -c 300)"
      cib_state_set CIB_CACHE_PUSH_FAILED 1
    fi
  done
}

cib_engine_cache_push() {
  # buildah pushed the cache of every executed step during the build.
  [ -z "\${CIB_CACHE_PUSH_FAILED:-}" ]
}

# Passes lines through and appends them, timestamped, to a file (per-step times; bash >= 5 has EPOCHREALTIME).
cib_timestamp() {
  local line
  # bash before 5 has no EPOCHREALTIME: no timed copy, and the steps are read from the plain log (without their seconds).
  if [ -z "\${EPOCHREALTIME:-}" ]; then cat; return; fi
  while IFS= read -r line; do
    printf '%s\\t%s\\n' "\${EPOCHREALTIME:-}" "$line" >> "$1"
    printf '%s\\n' "$line"
  done
}

# buildah pushed nothing separately: its cache went out during the build.
cib_engine_cache_snapshot() { :; }

# The distinct blobs (compressed, as the registry holds them) of the step images buildah pushed, less those of the step
# images it pulled: each step image carries every layer below it, so counting them per image counts the base again
# and again. Read from the registry: buildah's local manifests hold uncompressed sizes.
cib_engine_cache_bytes() {
  local tag
  cib_ecr_password "$CACHE_REPOSITORY_URI"
  for tag in \${CACHE_REFS_READ//,/ }; do cib_registry_curl "$CACHE_REPOSITORY_URI:$tag" -f | cib_manifest_blobs; done \\
    | sort -u > "$CIB_WORK_DIR/cache-before.txt"
  for tag in $(cib_engine_written_refs); do cib_registry_curl "$CACHE_REPOSITORY_URI:$tag" -f | cib_manifest_blobs; done | sort -u \\
    | awk 'FILENAME == ARGV[1] { seen[$1] = 1; next } !($1 in seen) { s += $2 } END { print s + 0 }' "$CIB_WORK_DIR/cache-before.txt" -
}

# The step tags buildah pushed (content-addressed, shared by all branches).
cib_engine_written_refs() {
  sed -n 's/^--> Pushing cache .*:\\([0-9a-f]\\{64\\}\\)$/\\1/p' "$CIB_WORK_DIR/build.log"
  cat "$CIB_WORK_DIR/restored-refs" 2>/dev/null || true
}`,
  };
}
