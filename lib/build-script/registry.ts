import { EngineScript } from './engine';
import { INLINE_FUNCTIONS } from './inline';
import { DOCKER_CACHE_BYTES_SHELL } from './shell';

/**
 * `docker buildx build` with a registry cache in the separate cache repository.
 *
 * The app image is built and pushed first with `--cache-from` only. Cache is exported by a second, fully locally
 * cached invocation with `--cache-to` (and no `--cache-from`, see `cib_engine_cache_push`), and only when a step
 * executed: a no-op build pushes nothing to the cache repository.
 *
 * The builder is chosen after login (its BuildKit image may live in a private ECR repository): the docker driver on
 * the containerd image store exports registry cache itself; another current builder is used as it is; otherwise a
 * docker-container builder runs `CIB_BUILDKIT_IMAGE`. When that image cannot be started (Docker Hub's anonymous pull
 * limit, an outage), the build falls back to the inline strategy for this build, with a warning and the
 * `BuilderFallback` metric, instead of failing: BuildKit's registry importer reads the inline cache such a build
 * writes to the branch ref, and the next good build writes a full registry cache again. A multi-platform build (several
 * comma-separated platforms) fails there instead: the inline strategy builds one platform.
 *
 * Several platforms are one BuildKit build: the app image is an index of one manifest a platform (its digest is
 * IMAGE_DIGEST), the cache export holds every platform's records in one ref, and the log names each step's platform
 * (`[linux/amd64 2/6]`), which the report counts per platform.
 *
 * Default attestations are off (`BUILDX_NO_DEFAULT_ATTESTATIONS`): with them the image is an index, and the docker
 * driver on the containerd image store pushes the tag again "with docker", which an immutable ECR repository refuses.
 */
export function registryEngine(): EngineScript {
  return {
    strategy: 'registry',
    logFormat: 'buildkit',
    functions: `cib_engine_setup() {
  command -v docker >/dev/null 2>&1 || cib_die 'docker is not installed: the registry strategy needs docker with the buildx plugin'
  docker buildx version >/dev/null 2>&1 \\
    || cib_die 'docker buildx is not available: install the buildx plugin, or use the inline strategy'
  cib_state_set CIB_HAS_BUILDX 1
}

cib_engine_login() {
  docker login --username AWS --password-stdin "$1" >/dev/null
}

# The BuildKit image's registry, when it is one we log in to (an ECR copy of moby/buildkit).
cib_engine_login_hosts() {
  local host="\${CIB_BUILDKIT_IMAGE%%/*}"
  if [[ $CIB_BUILDKIT_IMAGE == */* ]] && { cib_is_ecr_host "$host" || cib_is_local_registry "$host"; }; then
    printf '%s\\n' "$host"
  fi
}

# Picks the builder, before the snapshot (the snapshot reads stage refs when the build falls back to inline); on a builder
# that cannot start, falls back to the inline strategy.
cib_engine_prepare() {
  local out driver builder=''
  out=$(docker buildx inspect 2>&1) || cib_die "docker buildx inspect failed: $out"
  driver=$(printf '%s\\n' "$out" | awk -F ': *' '$1 == "Driver" { print $2; exit }')
  if [ -n "\${CIB_BUILDER:-}" ]; then
    builder="$CIB_BUILDER"
  elif [ "$driver" = docker ] && docker info --format '{{json .DriverStatus}}' 2>/dev/null | grep -q 'io.containerd.snapshotter'; then
    cib_log 'builder: docker driver on the containerd image store (exports registry cache)'
    cib_state_set CIB_CONTAINERD_STORE 1
  elif [ -n "$driver" ] && [ "$driver" != docker ]; then
    cib_log "builder: current buildx builder (driver $driver)"
  else
    # The classic image store cannot export registry cache, and ECR needs BuildKit >= 0.12 for
    # image-manifest cache: run our own BuildKit in a container.
    builder='cached-build'
    if ! docker buildx inspect "$builder" >/dev/null 2>&1; then
      local config="$CIB_WORK_DIR/buildkitd.toml" host
      : > "$config"
      for host in $(cib_registry_hosts); do
        if cib_is_local_registry "$host"; then
          printf '[registry."%s"]\\n  http = true\\n  insecure = true\\n' "$host" >> "$config"
        fi
      done
      cib_log "builder: creating docker-container builder '$builder' with $CIB_BUILDKIT_IMAGE"
      if ! docker buildx create --name "$builder" --driver docker-container \\
        --driver-opt "image=$CIB_BUILDKIT_IMAGE" --driver-opt network=host \\
        --buildkitd-config "$config" --bootstrap > "$CIB_WORK_DIR/builder.log" 2>&1; then
        docker buildx rm "$builder" >/dev/null 2>&1 || true
        local why
        why=$(grep -m1 'ERROR' "$CIB_WORK_DIR/builder.log" || tail -n 1 "$CIB_WORK_DIR/builder.log")
        if [[ $CIB_PLATFORM == *,* ]]; then
          # The inline strategy builds one platform: falling back would push an image without the others.
          cib_die "the BuildKit image $CIB_BUILDKIT_IMAGE could not be started ($why), and a multi-platform build" \\
            "(CIB_PLATFORM '$CIB_PLATFORM') cannot fall back to the inline strategy: set CIB_BUILDKIT_IMAGE to a copy of moby/buildkit in ECR"
        fi
        cib_warn "the BuildKit image $CIB_BUILDKIT_IMAGE could not be started: $why"
        cib_warn 'this build falls back to the inline strategy (set CIB_BUILDKIT_IMAGE to a copy of moby/buildkit in ECR; see the README)'
        builder=''
        cib_state_set CIB_FALLBACK inline
      fi
    fi
  fi
  cib_state_set CIB_BUILDER "$builder"
}

cib_registry_cache_args() {
  local ref
  CIB_CACHE_ARGS=()
  for ref in $CACHE_READ_TAGS; do
    CIB_CACHE_ARGS+=(--cache-from "type=registry,ref=$CACHE_REPOSITORY_URI:$ref")
  done
}

${INLINE_FUNCTIONS}

cib_engine_build() {
  if [ "\${CIB_FALLBACK:-}" = inline ]; then
    cib_inline_build
    return
  fi
  cib_registry_cache_args
  local output=(--tag "$IMAGE_URI" --push) options=push=true status=0
  if [ -n "\${CIB_CONTAINERD_STORE:-}" ]; then
    # Pushed by BuildKit only, never stored: storing unpacks every layer into the image store (4 s of a 5 s no-op build of
    # a 170 MB image, measured), which a build that only pushes does not need. buildx then pushes the tag again "with
    # docker", finds no image and fails; cib_registry_pushed tells that from a real failure.
    options+=,store=false
  fi
  if [ "$CIB_CACHE_COMPRESSION" = zstd ]; then
    # The cache holds zstd layers (cib_engine_cache_push): the app image is gzip, whatever its layers came as (only layers
    # that are not gzip are recompressed), so that every runtime can pull it.
    options+=,compression=gzip,force-compression=true
  fi
  if [ "$options" != push=true ]; then
    output=(--output "type=image,name=$IMAGE_URI,$options")
  fi
  BUILDX_NO_DEFAULT_ATTESTATIONS=1 docker buildx build \${CIB_BUILDER:+--builder "$CIB_BUILDER"} --progress=plain \\
    --metadata-file "$CIB_WORK_DIR/metadata.json" \${CIB_CACHE_ARGS[@]+"\${CIB_CACHE_ARGS[@]}"} "\${CIB_FLAGS[@]}" \\
    \${output[@]+"\${output[@]}"} "$CIB_CONTEXT" 2>&1 | tee "$CIB_WORK_DIR/build.log" >&2 || status=$?
  local digest=''
  if [ -f "$CIB_WORK_DIR/metadata.json" ]; then
    digest=$(sed -n 's/.*"containerimage\\.digest": *"\\(sha256:[0-9a-f]*\\)".*/\\1/p' "$CIB_WORK_DIR/metadata.json" | head -n 1)
  fi
  if [ "$status" -ne 0 ] && [ -n "\${CIB_CONTAINERD_STORE:-}" ]; then
    # The ECR password asked in this shell, not in the subshell below: the inputs record, started from this shell, reuses it.
    cib_ecr_password "$IMAGE_URI"
    if digest=$(cib_registry_pushed); then status=0; fi
  fi
  [ "$status" -eq 0 ] || cib_die "docker buildx build failed (exit $status)"
  cib_state_set IMAGE_DIGEST "$digest"
}

# The export runs from the local cache the build just filled, without --cache-from: when the remote cache is imported
# again, BuildKit matches steps to lazy remote records, and a mode=max export silently drops records whose base blobs
# are lazy (moby/buildkit#6893): measured here, 2 of 5 multi-stage series lost the deps stage's record that way (the
# next builds re-ran npm ci); without the import, 0 of 9 series did.
# After a store=false build: the build failed only because buildx's second push "with docker" found no image, and the
# registry has the tag at the digest BuildKit pushed. Prints that digest.
cib_registry_pushed() {
  local log="$CIB_WORK_DIR/build.log" pushed remote
  # buildx ends a failed build with one top-level "ERROR: <cause>" line (a missing cache ref is only a vertex's warning).
  awk -v ref="$IMAGE_URI" '/^ERROR: / { n++; if ($0 != "ERROR: tag does not exist: " ref) bad = 1 } END { exit (bad || n != 1) }' "$log" \\
    || return 1
  pushed=$(awk -v p="pushing manifest for $IMAGE_URI@" 'index($0, p) { s = substr($0, index($0, p) + length(p)); print substr(s, 1, 71); exit }' "$log")
  [[ $pushed =~ ^sha256:[0-9a-f]{64}$ ]] || return 1
  # Where the registry can be asked, it must agree; where it cannot, BuildKit's own "done" stands.
  local asked=0
  remote=$(cib_remote_digest "$IMAGE_URI") || asked=$?
  if [ "$asked" -eq 1 ] || { [ "$asked" -eq 0 ] && [ "$remote" != "$pushed" ]; }; then return 1; fi
  cib_log "image pushed by BuildKit ($pushed); buildx's second push 'with docker' has nothing to push (the image was not stored)"
  printf '%s\\n' "$pushed"
}

cib_engine_cache_push() {
  if [ "\${CIB_FALLBACK:-}" = inline ]; then
    cib_inline_cache_push
    return
  fi
  # --output type=cacheonly: no image. Without an output the docker driver loads the result into docker's image store.
  # compression applies to the layers this export compresses first (force-compression is off): those of the stages the app
  # image is not built on. The app push gave the app image's layers gzip blobs, which the export reuses.
  BUILDX_NO_DEFAULT_ATTESTATIONS=1 docker buildx build \${CIB_BUILDER:+--builder "$CIB_BUILDER"} --progress=plain \\
    "\${CIB_FLAGS[@]}" --output type=cacheonly \\
    --cache-to "type=registry,ref=$CACHE_REPOSITORY_URI:$CACHE_WRITE_TAG,mode=max,image-manifest=true,oci-mediatypes=true,compression=$CIB_CACHE_COMPRESSION" \\
    "$CIB_CONTEXT" > "$CIB_WORK_DIR/cache-push.log" 2>&1
}

${DOCKER_CACHE_BYTES_SHELL}

cib_engine_written_refs() {
  if [ "\${CIB_FALLBACK:-}" = inline ]; then cib_inline_written_refs; else printf '%s\\n' "$CACHE_WRITE_TAG"; fi
}`,
  };
}
