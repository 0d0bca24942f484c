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
export const INLINE_FUNCTIONS = `# A stage's cache ref: the branch's tag, "--", the stage (bounded like a branch tag when that is too long).
cib_stage_ref() {
  local ref="$1--$2"
  if [ "\${#ref}" -gt 128 ]; then ref=$(cib_branch_tag "$ref"); fi
  printf '%s\\n' "$ref"
}

# The stages of the target with refs of their own (stages.sh.ts: every stage it needs but itself, in Dockerfile order):
# CIB_SIDE_STAGES (names), CIB_SIDE_CHAINS (their FROM chains' labels).
cib_inline_stages() {
  CIB_SIDE_STAGES=()
  CIB_SIDE_CHAINS=()
  local kind stage chain
  [ -f "$CIB_DOCKERFILE" ] || return 0
  while read -r kind stage chain; do
    if [ "$kind" = side ]; then
      CIB_SIDE_STAGES+=("$stage")
      CIB_SIDE_CHAINS+=("$chain")
    else
      cib_log "stage $stage is referenced by its index: --target cannot build it, so it has no cache ref of its own"
    fi
  done < <(awk -v target="$CIB_TARGET" "$CIB_STAGES_AWK" "$CIB_DOCKERFILE")
}

cib_inline_build() {
  local ref stage refs=()
  CIB_INLINE_CACHE_FROM=()
  cib_inline_stages
  for ref in $CACHE_READ_TAGS; do
    refs+=("$ref")
    for stage in \${CIB_SIDE_STAGES[@]+"\${CIB_SIDE_STAGES[@]}"}; do refs+=("$(cib_stage_ref "$ref" "$stage")"); done
  done
  cib_state_set CACHE_REFS_READ "$(IFS=,; printf '%s' "\${refs[*]:-}")"
  # One after another: at once took 2-3 times as long on docker 26's containerd image store (12.9-17.1 s against 6.2-6.5 s for
  # the four refs of a multi-stage service on a fresh docker, measured twice each; the cause not investigated) and gained nothing
  # on docker 20.10 (6.8-7.1 s against 6.8-7.4 s).
  for ref in \${refs[@]+"\${refs[@]}"}; do
    if docker pull --quiet "$CACHE_REPOSITORY_URI:$ref" >/dev/null 2>&1; then
      CIB_INLINE_CACHE_FROM+=(--cache-from "$CACHE_REPOSITORY_URI:$ref")
      cib_log "cache $CACHE_REPOSITORY_URI:$ref pulled"
    else
      cib_log "cache $CACHE_REPOSITORY_URI:$ref could not be pulled (none yet?): not used"
    fi
  done
  local status=0
  cib_inline_docker_build --tag "$IMAGE_URI" 2>&1 | tee "$CIB_WORK_DIR/build.log" >&2 || status=$?
  [ "$status" -eq 0 ] || cib_die "docker build failed (exit $status)"
  docker push "$IMAGE_URI" >&2 || cib_die "docker push $IMAGE_URI failed (exit $?)"
  local digests
  digests=$(docker image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "$IMAGE_URI") \\
    || cib_die "docker image inspect $IMAGE_URI failed after the push"
  cib_state_set IMAGE_DIGEST "$(printf '%s\\n' "$digests" | grep -F "$APP_REPOSITORY_URI@" | head -n 1 | cut -d @ -f 2)"
}

cib_inline_docker_build() {
  DOCKER_BUILDKIT=1 BUILDX_NO_DEFAULT_ATTESTATIONS=1 docker build --progress=plain --build-arg BUILDKIT_INLINE_CACHE=1 \\
    \${CIB_INLINE_CACHE_FROM[@]+"\${CIB_INLINE_CACHE_FROM[@]}"} "\${CIB_FLAGS[@]}" "$@" "$CIB_CONTEXT"
}

# The target's image as the branch's ref; each of those stages whose FROM chain ran a step as a ref of its own, built
# --target from the local cache the build just filled (a stage before the stages built on it).
cib_inline_cache_push() {
  local i stage label written=("$CACHE_WRITE_TAG") ref
  docker tag "$IMAGE_URI" "$CACHE_REPOSITORY_URI:$CACHE_WRITE_TAG" \\
    && docker push "$CACHE_REPOSITORY_URI:$CACHE_WRITE_TAG" > "$CIB_WORK_DIR/cache-push.log" 2>&1 || return 1
  cib_inline_stages
  CIB_INLINE_CACHE_FROM=()
  for i in "\${!CIB_SIDE_STAGES[@]}"; do
    stage=\${CIB_SIDE_STAGES[$i]}
    for label in \${CIB_SIDE_CHAINS[$i]}; do
      if awk -F '\\t' -v l="[$label " '$1 == "executed" && index($3, l) == 1 { f = 1 } END { exit !f }' "$CIB_WORK_DIR/steps.tsv"; then
        ref=$(cib_stage_ref "$CACHE_WRITE_TAG" "$stage")
        cib_inline_docker_build --target "$stage" --tag "$CACHE_REPOSITORY_URI:$ref" >> "$CIB_WORK_DIR/cache-push.log" 2>&1 \\
          && docker push "$CACHE_REPOSITORY_URI:$ref" >> "$CIB_WORK_DIR/cache-push.log" 2>&1 || return 1
        written+=("$ref")
        break
      fi
    done
  done
  cib_state_set CIB_INLINE_WRITTEN "\${written[*]:-}"
}

cib_inline_written_refs() {
  printf '%s\\n' "\${CIB_INLINE_WRITTEN:-$CACHE_WRITE_TAG}" | tr ' ' '\\n'
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
  # Asked once for the whole build, every phase: the snapshot, run in a subshell, could not keep its answer.
  cib_probe_buildx
  cib_state_set CIB_HAS_BUILDX "$CIB_HAS_BUILDX"
}

cib_engine_login() {
  docker login --username AWS --password-stdin "$1" >/dev/null
}

cib_engine_login_hosts() { :; }

${INLINE_FUNCTIONS}

cib_engine_build() { cib_inline_build; }

cib_engine_cache_push() { cib_inline_cache_push; }

${DOCKER_CACHE_BYTES_SHELL}

cib_engine_written_refs() { cib_inline_written_refs; }`,
  };
}
