/**
 * The strategy-independent bash of the build script: the helpers every step uses and the steps themselves.
 * Configuration reaches these functions as variables set by `cib_config` (config.ts) from the environment.
 */
import { MAX_TAG_LENGTH } from './cache-refs';
import { ECR_HOST_PATTERN } from './shell';

/** Logging, state between steps (CodeBuild runs each phase in a new bash), registries, engine flags. */
export const LIBRARY_SHELL = `cib_log() { printf '[cached-build] %s\\n' "$*" >&2; }
cib_warn() { printf '[cached-build] WARNING: %s\\n' "$*" >&2; }
cib_die() { printf '[cached-build] ERROR: %s\\n' "$*" >&2; exit 1; }

cib_state_set() {
  printf -v "$1" '%s' "$2"
  printf '%s=%q\\n' "$1" "$2" >> "$CIB_WORK_DIR/state.env"
}
# Microseconds since the epoch (bash 5's EPOCHREALTIME, whatever the locale's decimal mark; whole seconds before bash 5).
cib_now_us() {
  local t="\${EPOCHREALTIME:-}"
  t=\${t//[!0-9]/}
  if [ -z "$t" ]; then t="$(date +%s)000000"; fi
  printf '%s\\n' "$t"
}
# Seconds since a cib_now_us time, one decimal.
cib_seconds_since() {
  local us=$(( $(cib_now_us) - $1 ))
  if [ "$us" -lt 0 ]; then us=0; fi
  printf '%d.%d\\n' "$(( us / 1000000 ))" "$(( us % 1000000 / 100000 ))"
}
cib_load_state() {
  if [ -f "$CIB_WORK_DIR/state.env" ]; then
    # shellcheck disable=SC1091
    . "$CIB_WORK_DIR/state.env"
  fi
}

# The manifest types a registry request accepts: image indexes and manifests, OCI and Docker.
CIB_MANIFEST_ACCEPT='application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json,'
CIB_MANIFEST_ACCEPT="$CIB_MANIFEST_ACCEPT application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json"

# Whether HOST is an ECR private registry (ECR23: the IPv4 and FIPS hosts, China's, the dual-stack ones; a host name in any
# case, with or without https's own port 443); its region in CIB_ECR_HOST_REGION.
CIB_ECR_HOST_RE='${ECR_HOST_PATTERN}'
cib_is_ecr_host() {
  local host="\${1,,}"
  host="\${host%:443}"
  CIB_ECR_HOST_REGION=''
  [[ $host =~ $CIB_ECR_HOST_RE ]] || return 1
  CIB_ECR_HOST_REGION="\${BASH_REMATCH[3]}\${BASH_REMATCH[6]}"
}

cib_registry_hosts() {
  printf '%s\\n' "\${APP_REPOSITORY_URI%%/*}" "\${CACHE_REPOSITORY_URI%%/*}" | awk 'NF && !seen[$0]++'
}

# The ECR registries of the images the Dockerfile names (FROM, COPY --from, RUN --mount=from=), read as the inputs record
# reads them: a base in another account's registry, or another region's, is pulled with the login's credentials too. A
# reference with a variable in it is not read (a build arg's value is the user's to log in to); a Dockerfile that cannot be
# read names none here (the build says why).
cib_image_ecr_hosts() {
  local kind ref
  [ -f "$CIB_DOCKERFILE" ] || return 0
  LC_ALL=C awk "$CIB_INPUTS_AWK" "$CIB_DOCKERFILE" 2>/dev/null | while read -r kind ref; do
    if [ "$kind" = image ] && [[ $ref == */* ]] && cib_is_ecr_host "\${ref%%/*}"; then printf '%s\\n' "\${ref%%/*}"; fi
  done | awk '!seen[$0]++' || true
}

# Engine flags from the configuration. Build secrets reach the engine as files only we can read (every engine
# accepts src=), never as arguments.
cib_build_flags() {
  local name entry id var xtrace="\${-//[!x]/}"
  CIB_FLAGS=(--file "$CIB_DOCKERFILE")
  for name in $CIB_ARG_VARS; do CIB_FLAGS+=(--build-arg "\${name#CIB_BUILD_ARG_}=\${!name}"); done
  # A secret's value is not traced (see cib_ecr_password).
  set +x
  for entry in \${CIB_SECRET_LIST[@]+"\${CIB_SECRET_LIST[@]}"}; do
    id="\${entry%%=*}"
    var="\${entry#*=}"
    [ -n "\${!var:-}" ] || cib_die "build secret '$id': environment variable $var is empty"
    (umask 077 && mkdir -p "$CIB_WORK_DIR/secrets" && printf '%s' "\${!var}" > "$CIB_WORK_DIR/secrets/$id")
    CIB_FLAGS+=(--secret "id=$id,src=$CIB_WORK_DIR/secrets/$id")
  done
  if [ -n "$xtrace" ]; then set -x; fi
  if [ -n "$CIB_TARGET" ]; then CIB_FLAGS+=("--target=$CIB_TARGET"); fi
  if [ -n "$CIB_PLATFORM" ]; then CIB_FLAGS+=("--platform=$CIB_PLATFORM"); fi
  # A build whose inputs will be recorded builds on the base images the inputs name, not on an older copy in the engine's store
  # (the build step's invocation only: the cache step builds what the build step built).
  if [ -n "\${CIB_INPUTS_TAG:-}" ] && [ "\${CIB_PULL:-}" = true ]; then CIB_FLAGS+=(--pull); fi
  if [ -n "\${CIB_NETWORK:-}" ]; then CIB_FLAGS+=("--network=$CIB_NETWORK"); fi
}

# The ECR login password for HOST's region in CIB_ECR_PASSWORD, asked once a region per shell (kept in CIB_ECR_PASSWORDS;
# callers in subshells inherit them), for registry requests. One password serves every ECR registry of the region the build's
# role may use (ECR7), another account's included; another region's registries take that region's own.
# Prints the ECR password of REGION (GetAuthorizationToken). An endpoint that never answers a connect (a region a VPC has no
# route to) costs 10 s an attempt, not the AWS CLI's 60 (register ECR25). Call with xtrace off.
cib_ecr_ask() { aws ecr get-login-password --region "$1" --cli-connect-timeout 10; }

# Where a password is in a command, xtrace is off (bash -x would print it) and restored after: not \`local -\`, which bash 4.2
# (Amazon Linux 2) lacks.
cib_ecr_password() {
  local host="\${1%%/*}" region xtrace="\${-//[!x]/}"
  cib_is_ecr_host "$host" || return 0
  region=$CIB_ECR_HOST_REGION
  set +x
  if [ -z "\${CIB_ECR_PASSWORDS[$region]+asked}" ]; then
    CIB_ECR_PASSWORDS[$region]=$(cib_ecr_ask "$region" 2>/dev/null) || CIB_ECR_PASSWORDS[$region]=''
  fi
  CIB_ECR_PASSWORD="\${CIB_ECR_PASSWORDS[$region]}"
  if [ -n "$xtrace" ]; then set -x; fi
}

# One request for a manifest (REF = HOST/REPO:TAG or HOST/REPO@DIGEST) with curl ARGS: to a local registry without
# auth, to ECR with its basic auth (the login password on curl's stdin, never on a command line). Status 2: a registry
# we hold no credentials for, or no curl.
cib_registry_curl() {
  local host="\${1%%/*}" rest="\${1#*/}" repo reference
  local accept="$CIB_MANIFEST_ACCEPT"
  shift
  if [[ $rest == *@* ]]; then repo="\${rest%@*}" reference="\${rest#*@}"; else repo="\${rest%:*}" reference="\${rest##*:}"; fi
  command -v curl >/dev/null 2>&1 || return 2
  if cib_is_local_registry "$host"; then
    curl -sS --max-time 30 -H "Accept: $accept" "$@" "http://$host/v2/$repo/manifests/$reference" < /dev/null 2>/dev/null
  elif cib_is_ecr_host "$host"; then
    local xtrace="\${-//[!x]/}" status=0
    set +x
    cib_ecr_password "$host"
    printf 'user = "AWS:%s"\\n' "$CIB_ECR_PASSWORD" \\
      | curl -sS --max-time 30 -K - -H "Accept: $accept" "$@" "https://$host/v2/$repo/manifests/$reference" 2>/dev/null || status=$?
    if [ -n "$xtrace" ]; then set -x; fi
    return "$status"
  else
    return 2
  fi
}

# The status of the last answer in curl's headers (behind a proxy, its CONNECT answer comes first).
cib_http_status() {
  printf '%s\\n' "$1" | awk '/^HTTP\\// { s = $2 } END { print s }'
}

# The digest a tag points to in its registry, read with one HEAD request. Status 0: printed; 1: the tag does not
# exist; 2: cannot tell (no curl, a registry we hold no credentials for, an error).
cib_remote_digest() {
  local headers status
  headers=$(cib_registry_curl "$1" -I) || return 2
  headers=$(printf '%s\\n' "$headers" | tr -d '\\r')
  status=$(cib_http_status "$headers")
  case "$status" in
    200) printf '%s\\n' "$headers" | awk 'tolower($0) ~ /^docker-content-digest:/ { sub(/^[^:]*: */, ""); print }' \\
      | grep -Em1 '^sha256:[0-9a-f]{64}$' || return 2 ;;
    404) return 1 ;;
    *) return 2 ;;
  esac
}`;

/** The steps, each a function `cib_step_<name>`. */
export const STEPS_SHELL = `cib_step_setup() {
  cib_state_set CIB_STARTED_AT "$(date +%s)"
  cib_engine_setup
}

cib_step_login() {
  local host hosts own
  own=$(cib_registry_hosts; cib_engine_login_hosts)
  # The app's and the cache's registries (and the builder image's) must log in; an image's registry is logged in where it
  # can be, a warning where not: the pull then fails, or works with credentials the caller set up.
  hosts=$(printf '%s\\n' "$own"; cib_image_ecr_hosts)
  for host in $(printf '%s\\n' "$hosts" | awk 'NF && !seen[$0]++'); do
    if cib_is_local_registry "$host"; then
      cib_log "registry $host: local, no login"
    elif cib_is_ecr_host "$host"; then
      if ! printf '%s\\n' "$own" | grep -qxF "$host"; then
        cib_login_ecr "$host" || cib_warn "login to $host (an image of the Dockerfile) failed: its pull uses the engine's existing credentials"
        continue
      fi
      command -v aws >/dev/null 2>&1 || cib_die "the AWS CLI is needed to log in to $host"
      cib_login_ecr "$host" || cib_die "login to $host failed"
    else
      cib_log "registry $host: not ECR, using the engine's existing credentials"
    fi
  done
}

# Logs the engine in to the ECR registry HOST. One password a region (ECR7); the script's own registry requests in this
# process use it too (cib_ecr_password). A password is never traced, nor sent empty.
cib_login_ecr() {
  local host="$1" region password status=0 xtrace="\${-//[!x]/}"
  cib_is_ecr_host "$host" || return 1
  region=$CIB_ECR_HOST_REGION
  command -v aws >/dev/null 2>&1 || return 1
  set +x
  if [ -n "\${CIB_ECR_PASSWORDS[$region]:-}" ]; then
    password="\${CIB_ECR_PASSWORDS[$region]}"
  else
    password=$(cib_ecr_ask "$region") || status=1
  fi
  if [ "$status" -eq 0 ] && [ -n "$password" ]; then
    printf '%s' "$password" | cib_engine_login "$host" || status=1
  else
    status=1
  fi
  if [ "$status" -eq 0 ]; then CIB_ECR_PASSWORDS[$region]="$password"; fi
  if [ -n "$xtrace" ]; then set -x; fi
  if [ "$status" -eq 0 ]; then cib_log "registry $host: logged in"; fi
  return "$status"
}

# The image tag as given: IMAGE_TAG, else the commit (CodeBuild's resolved source version, else the git checkout's).
cib_image_tag() {
  local tag="\${IMAGE_TAG:-\${CODEBUILD_RESOLVED_SOURCE_VERSION:-}}"
  if [ -z "$tag" ]; then tag=$(git rev-parse HEAD 2>/dev/null || true); fi
  [ -n "$tag" ] || cib_die 'IMAGE_TAG is not set and no commit is known (no CODEBUILD_RESOLVED_SOURCE_VERSION, not a git checkout)'
  printf '%s\n' "$tag"
}

# One platform's image tag in a natively built multi-platform image: TAG--OS-ARCH[-VARIANT] (linux/arm/v7: TAG--linux-arm-v7),
# TAG bounded so that the whole stays a tag. A tag made by cib_branch_tag never holds "--", so no index tag is ever one of these.
cib_platform_tag() {
  local suffix="--\${2//\\//-}"
  printf '%s%s\n' "$(cib_branch_tag "$1" $((${MAX_TAG_LENGTH} - \${#suffix})))" "$suffix"
}

# The branch this build is for: CACHE_BRANCH, then what CodeBuild says (webhook head ref, or a source version that
# names a branch: "refs/heads/x" or "x", "dependabot/npm_and_yarn/x" included), then the git checkout.
cib_branch() {
  local branch="\${CACHE_BRANCH:-}" version="\${CODEBUILD_SOURCE_VERSION:-}"
  if [ -z "$branch" ] && [ -n "\${CODEBUILD_WEBHOOK_HEAD_REF:-}" ]; then branch="\${CODEBUILD_WEBHOOK_HEAD_REF#refs/heads/}"; fi
  if [ -z "$branch" ] && [ -n "$version" ]; then
    case "$version" in
      refs/heads/*) branch="\${version#refs/heads/}" ;;
      # A pipeline's artifact ARN, a pull request, a tag or another ref, a commit: not a branch.
      arn:*|pr/*|refs/*) ;;
      *) if ! [[ $version =~ ^[0-9a-f]{40}$ ]]; then branch="$version"; fi ;;
    esac
  fi
  if [ -z "$branch" ]; then branch=$(git symbolic-ref --short -q HEAD 2>/dev/null || true); fi
  if [ -z "$branch" ]; then
    cib_warn "branch unknown (set CACHE_BRANCH): using the default branch $CIB_DEFAULT_BRANCH"
    branch="$CIB_DEFAULT_BRANCH"
  fi
  printf '%s\\n' "$branch"
}

cib_step_refs() {
  [ -n "$APP_REPOSITORY_URI" ] || cib_die 'APP_REPOSITORY_URI is not set (the app repository, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/app)'
  [ -n "$CACHE_REPOSITORY_URI" ] || cib_die 'CACHE_REPOSITORY_URI is not set (the cache repository)'
  local tag
  tag=$(cib_image_tag)
  if [ "$CIB_PLATFORM_TAGS" = true ]; then tag=$(cib_platform_tag "$tag" "$CIB_PLATFORM"); else tag=$(cib_branch_tag "$tag"); fi
  local branch current read='' write='' pattern name image ref
  branch=$(cib_branch)
  current=$(cib_cache_ref "$CIB_IMAGE_NAME" "$branch")
  # The image's own ref of the branch first (the cleanup reads it as the build's branch), then its siblings' in a shared cache
  # repository (they share stages), then the same for the default branch.
  for name in "$branch" "$CIB_DEFAULT_BRANCH"; do
    for image in "$CIB_IMAGE_NAME" \${CIB_CACHE_FROM_LIST[@]+"\${CIB_CACHE_FROM_LIST[@]}"}; do
      ref=$(cib_cache_ref "$image" "$name")
      case " $read " in *" $ref "*) ;; *) read="\${read:+$read }$ref" ;; esac
    done
  done
  if [ "$CIB_CACHE_WRITE" = true ] && [ "\${CACHE_READ_ONLY:-}" != 1 ]; then write="$current"; fi
  for pattern in \${CIB_READ_ONLY_LIST[@]+"\${CIB_READ_ONLY_LIST[@]}"}; do
    # shellcheck disable=SC2053 # the pattern is a glob on purpose
    if [[ $branch == $pattern ]]; then write=''; fi
  done
  cib_state_set IMAGE_TAG "$tag"
  cib_state_set IMAGE_URI "$APP_REPOSITORY_URI:$tag"
  cib_state_set IMAGE_DIGEST ''
  cib_state_set IMAGE_REUSED false
  cib_state_set IMAGE_REUSED_FROM ''
  cib_state_set CIB_INPUTS_TAG ''
  cib_state_set CACHE_BRANCH "$branch"
  cib_state_set CACHE_READ_TAGS "$read"
  cib_state_set CACHE_WRITE_TAG "$write"
  cib_state_set CACHE_REFS_READ "\${read// /,}"
  cib_state_set CACHE_REF_WRITTEN ''
  cib_state_set CACHE_BYTES_PUSHED 0
  cib_log "image $IMAGE_URI; branch $branch; cache read: $read; cache write: \${write:-none (read-only)}"
  if [ "$CIB_REUSE_EXISTING_IMAGE" = true ]; then cib_reuse_existing; fi
  # One platform's image of a native multi-platform build is not skipped: its tags follow the platform rules (ECR20).
  if [ "$CIB_SKIP_UNCHANGED" = true ] && [ "$IMAGE_REUSED" != true ] && [ "$CIB_PLATFORM_TAGS" != true ]; then cib_skip_unchanged; fi
}

# A tag names one image: when a re-run of a commit finds its tag in the app repository (ECR refuses a second push to
# an immutable tag, even of the same digest), that image is the result and nothing is built.
cib_reuse_existing() {
  local digest status=0
  digest=$(cib_remote_digest "$IMAGE_URI") || status=$?
  case "$status" in
    0)
      cib_state_set IMAGE_REUSED true
      cib_state_set IMAGE_DIGEST "$digest"
      cib_state_set CACHE_READ_TAGS ''
      cib_state_set CACHE_WRITE_TAG ''
      cib_state_set CACHE_REFS_READ ''
      cib_log "image $IMAGE_URI already exists ($digest): reused, nothing is built" ;;
    1) ;;
    *) cib_log "could not tell whether $IMAGE_URI already exists: building it" ;;
  esac
}

cib_step_build() {
  if [ "\${IMAGE_REUSED:-}" = true ]; then
    cib_log "build: skipped, the image \${IMAGE_REUSED_FROM:+of the same inputs }already exists"
    return 0
  fi
  local CIB_PULL=true
  cib_build_flags
  if declare -F cib_engine_prepare >/dev/null; then cib_engine_prepare; fi
  # What the cache repository holds before this build exports anything, read while the engine builds.
  local snapshot=''
  if [ -n "$CACHE_WRITE_TAG" ]; then
    (cib_engine_cache_snapshot || true) &
    snapshot=$!
  fi
  cib_engine_build
  if [ -n "$snapshot" ]; then wait "$snapshot" || true; fi
  [[ $IMAGE_DIGEST =~ ^sha256:[0-9a-f]{64}$ ]] || cib_die "the engine reported no digest for $IMAGE_URI (got '$IMAGE_DIGEST')"
  local log="$CIB_WORK_DIR/build.log"
  # buildah's log has no step times: its timestamped copy gives them.
  if [ -s "$CIB_WORK_DIR/build.tlog" ]; then log="$CIB_WORK_DIR/build.tlog"; fi
  cib_count_steps "$log" "$CIB_WORK_DIR/steps.tsv"
  # While the cache step exports (its requests and the export's are independent): waited for at the cache step's end, or
  # when the steps this process runs are done, or on exit. A command that stops it is a warning: the image is pushed.
  if [ -n "\${CIB_INPUTS_TAG:-}" ]; then
    (
      trap 'printf "[cached-build] WARNING: recording the inputs: %s failed (exit %s)\\n" "$BASH_COMMAND" "$?" >&2' ERR
      cib_record_inputs
    ) &
    CIB_RECORD_PID=$!
  fi
}

# Waits for the inputs record started by the build step; a record that failed only warned.
cib_wait_record() {
  if [ -n "\${CIB_RECORD_PID:-}" ]; then
    wait "$CIB_RECORD_PID" || cib_warn "recording the inputs failed (exit $?): a later build of the same inputs builds again"
    CIB_RECORD_PID=''
  fi
}

cib_step_cache() {
  local executed=$(( \${CACHE_STEPS_TOTAL:-0} - \${CACHE_STEPS_CACHED:-0} ))
  if [ "\${IMAGE_REUSED:-}" = true ]; then
    cib_log 'cache: nothing to export, the image was reused'
  elif [ -z "$CACHE_WRITE_TAG" ]; then
    cib_log 'cache: read-only for this build, nothing exported'
  elif [ "$executed" -eq 0 ] && [ -z "\${CIB_STEPS_UNKNOWN:-}" ]; then
    cib_log 'cache: every step came from cache, nothing exported'
  else
    cib_build_flags
    if cib_engine_cache_push; then
      cib_state_set CACHE_REF_WRITTEN "$(cib_engine_written_refs | paste -sd , -)"
      cib_state_set CACHE_BYTES_PUSHED "$(cib_engine_cache_bytes || echo 0)"
      cib_log "cache: $executed step(s) executed, exported to $CACHE_REPOSITORY_URI:$CACHE_WRITE_TAG"
    else
      cib_state_set CIB_CACHE_EXPORT_FAILED 1
      cib_warn "cache export to $CACHE_REPOSITORY_URI:$CACHE_WRITE_TAG failed; the image is built and pushed"
      if [ -f "$CIB_WORK_DIR/cache-push.log" ]; then tail -n 20 "$CIB_WORK_DIR/cache-push.log" >&2; fi
    fi
  fi
  cib_wait_record
}`;

/** `cib_main STEP...`: checks the configuration and the step names, then runs the steps in order. */
export function mainShell(stepNames: readonly string[], extraSteps: readonly string[] = ['merge']): string {
  const all = [...stepNames, ...extraSteps];
  return `CIB_STEP_NAMES=(${stepNames.join(' ')})

cib_main() {
  if [ "$#" -eq 0 ]; then set -- "\${CIB_STEP_NAMES[@]}"; fi
  cib_config
  if [ -z "\${CIB_WORK_DIR:-}" ]; then CIB_WORK_DIR=$(mktemp -d "\${TMPDIR:-/tmp}/cached-build.XXXXXX"); fi
  mkdir -p "$CIB_WORK_DIR"
  # However the script ends: the build secrets' files go, and an inputs record still running is waited for.
  trap 'rm -rf "$CIB_WORK_DIR/secrets"; cib_wait_record' EXIT
  local step
  for step in "$@"; do
    case "$step" in
      ${all.join('|')}) ;;
      *) cib_die "unknown step '$step' (steps: ${all.join(' ')})" ;;
    esac
  done
  # A build starts with setup (a merge with merge): whatever an earlier build left in the work dir is not its state.
  if [ "$1" = setup ] || [ "$1" = merge ]; then : > "$CIB_WORK_DIR/state.env"; fi
  local started
  for step in "$@"; do
    cib_load_state
    started=$(cib_now_us)
    "cib_step_$step"
    cib_state_set "CIB_SECONDS_$step" "$(cib_seconds_since "$started")"
  done
  cib_wait_record
}

cib_main "$@"
`;
}
