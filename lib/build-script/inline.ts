import { EngineScript } from './engine';
import { DOCKER_CACHE_BYTES_SHELL } from './shell';

/**
 * The inline-cache build and cache push, as functions of their own: the inline strategy is made of them, and the
 * registry strategy falls back to them for a build whose BuildKit builder cannot be started.
 *
 * The cache refs are pulled into the local image store before the build. On docker 20.10 an image built from a
 * *remote* `--cache-from` carries inline-cache records only for the steps it rebuilt, so the next build matches keys
 * but finds no layers and rebuilds everything (every other build misses). With the cache image local, the cached
 * steps' layers are local too and the new image's inline cache is complete: measured ideal on every build after app
 * changes, dependency changes and no-op builds. The pull costs little there: docker 20.10 exports the built image to
 * its local store, which needs every layer anyway.
 *
 * Default attestations are off (`BUILDX_NO_DEFAULT_ATTESTATIONS`, ignored where buildx is absent): with them the image is
 * an index, and on the containerd image store `docker push` PUTs every manifest of it to the tag, which an immutable ECR
 * repository refuses from the second PUT on.
 */
export const INLINE_FUNCTIONS = `cib_inline_build() {
  local ref args=()
  for ref in $CACHE_READ_TAGS; do
    if docker pull --quiet "$CACHE_REPOSITORY_URI:$ref" >/dev/null 2>&1; then
      args+=(--cache-from "$CACHE_REPOSITORY_URI:$ref")
      cib_log "cache $CACHE_REPOSITORY_URI:$ref pulled"
    else
      cib_warn "cache $CACHE_REPOSITORY_URI:$ref could not be pulled (none yet for this branch?): not used"
    fi
  done
  DOCKER_BUILDKIT=1 BUILDX_NO_DEFAULT_ATTESTATIONS=1 docker build --progress=plain --build-arg BUILDKIT_INLINE_CACHE=1 \\
    "\${args[@]}" "\${CIB_FLAGS[@]}" --tag "$IMAGE_URI" "$CIB_CONTEXT" 2>&1 | tee "$CIB_WORK_DIR/build.log" >&2
  docker push "$IMAGE_URI" >&2
  local digests
  digests=$(docker image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "$IMAGE_URI") \\
    || cib_die "docker image inspect $IMAGE_URI failed after the push"
  cib_state_set IMAGE_DIGEST "$(printf '%s\\n' "$digests" | grep -F "$APP_REPOSITORY_URI@" | head -n 1 | cut -d @ -f 2)"
}

cib_inline_cache_push() {
  docker tag "$IMAGE_URI" "$CACHE_REPOSITORY_URI:$CACHE_WRITE_TAG" \\
    && docker push "$CACHE_REPOSITORY_URI:$CACHE_WRITE_TAG" > "$CIB_WORK_DIR/cache-push.log" 2>&1
}`;

/** Plain `docker build` with BuildKit inline cache, for engines without buildx (docker 20.10). */
export function inlineEngine(): EngineScript {
  return {
    strategy: 'inline',
    logFormat: 'buildkit',
    functions: `cib_engine_setup() {
  command -v docker >/dev/null 2>&1 || cib_die 'docker is not installed: the inline strategy needs docker with BuildKit (>= 18.09)'
  local out
  out=$(docker version --format '{{.Server.Version}}' 2>&1) || cib_die "the docker daemon does not answer: $out"
}

cib_engine_login() {
  docker login --username AWS --password-stdin "$1" >/dev/null
}

cib_engine_login_hosts() { :; }

${INLINE_FUNCTIONS}

cib_engine_build() { cib_inline_build; }

cib_engine_cache_push() { cib_inline_cache_push; }

${DOCKER_CACHE_BYTES_SHELL}`,
  };
}
