import { EngineScript } from './engine';

/**
 * Plain `docker build` with BuildKit inline cache, for engines without buildx (docker 20.10).
 */
export function inlineEngine(): EngineScript {
  return {
    strategy: 'inline',
    logFormat: 'buildkit',
    functions: `cib_engine_setup() {
  command -v docker >/dev/null 2>&1 || cib_die 'docker is not installed: the inline strategy needs docker with BuildKit (>= 18.09)'
  docker version --format '{{.Server.Version}}' >/dev/null || cib_die 'the docker daemon does not answer'
}

cib_engine_login() {
  docker login --username AWS --password-stdin "$1" >/dev/null
}

cib_inline_build() {
  local ref args=()
  for ref in "$@"; do args+=(--cache-from "$ref"); done
  DOCKER_BUILDKIT=1 docker build --progress=plain --build-arg BUILDKIT_INLINE_CACHE=1 \\
    "\${args[@]}" "\${CIB_FLAGS[@]}" --tag "$CIB_INLINE_TAG" "$CIB_CONTEXT"
}

cib_engine_build() {
  local ref refs=()
  for ref in $CACHE_READ_TAGS; do
    if [ "\${CIB_INLINE_PREPULL:-1}" = 1 ]; then
      if docker pull --quiet "$CACHE_REPOSITORY_URI:$ref" >/dev/null 2>&1; then
        refs+=("$CACHE_REPOSITORY_URI:$ref")
      else
        cib_warn "cache $CACHE_REPOSITORY_URI:$ref could not be pulled (first build of the branch?)"
      fi
    else
      refs+=("$CACHE_REPOSITORY_URI:$ref")
    fi
  done
  CIB_INLINE_TAG="$IMAGE_URI" cib_inline_build "\${refs[@]}" 2>&1 | tee "$CIB_WORK_DIR/build.log" >&2
  docker push "$IMAGE_URI" >&2
  local digest
  digest=$(docker image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "$IMAGE_URI" \\
    | grep -F "$APP_REPOSITORY_URI@" | head -n 1 | cut -d @ -f 2)
  cib_state_set IMAGE_DIGEST "$digest"
}

cib_engine_cache_push() {
  local target="$CACHE_REPOSITORY_URI:$CACHE_WRITE_TAG" cached="\${CACHE_STEPS_CACHED:-0}"
  if [ "$cached" -gt 0 ] && [ "\${CIB_INLINE_REFRESH:-local}" != none ]; then
    cib_log "refreshing inline cache: $cached step(s) came from the remote cache"
    if [ "\${CIB_INLINE_REFRESH:-local}" = no-cache ]; then
      CIB_INLINE_TAG="$target" DOCKER_BUILDKIT=1 docker build --no-cache --progress=plain --build-arg BUILDKIT_INLINE_CACHE=1 \\
        "\${CIB_FLAGS[@]}" --tag "$target" "$CIB_CONTEXT" > "$CIB_WORK_DIR/refresh.log" 2>&1 || return 1
    else
      CIB_INLINE_TAG="$target" cib_inline_build > "$CIB_WORK_DIR/refresh.log" 2>&1 || return 1
    fi
  else
    docker tag "$IMAGE_URI" "$target"
  fi
  docker push "$target" > "$CIB_WORK_DIR/cache-push.log" 2>&1
}`,
  };
}
