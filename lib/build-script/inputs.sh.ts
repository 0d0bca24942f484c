/**
 * Skipping a build whose result is known: when a build's inputs are those of an image already in the app repository, that
 * image is what a fully cached build would produce (Docker's layer cache reuses a step whose inputs did not change: a RUN
 * whose line and parent are the same is not run again), so the build tags it and builds nothing.
 *
 * The inputs' digest covers, conservatively (a difference we cannot see would make a wrong skip; a difference we see too
 * many only makes a build): the strategy and its BuildKit image, target, platform (the host's architecture when none is
 * given), build-arg names and values, secret ids (not their values: a cached step ignores them too), the Dockerfile's
 * bytes, the ignore files' bytes, every file of the context (type, mode, path, link target, content) except those a
 * `.dockerignore` line names literally, and the digest of every image the Dockerfile names (FROM, `COPY --from`,
 * `RUN --mount=from=`, `# syntax=`), resolved in its registry (ECR and local registries with the script's access, others,
 * Docker Hub included, with an anonymous pull token). The build is never skipped when an input cannot be known: a variable in
 * an image reference, an image whose digest cannot be read, a remote `ADD`, an `escape` directive.
 *
 * The record is a tag in the app repository, `cib-inputs-<digest>`, on the image the inputs built: it lives and is
 * deleted with that image (a lifecycle rule that expires the image expires the record), and the skip is a retag by
 * manifest PUT of the exact bytes (ECR: image-retag, test/aws-contract.md ECR21), no blob moves.
 */

/** The record tag's prefix in the app repository. A branch or commit tag made by the script never starts with it. */
export const INPUTS_TAG_PREFIX = 'cib-inputs-';

/**
 * Reads a Dockerfile (run with LC_ALL=C: bytes) and prints one line per image it needs from a registry (`image REF`; stages,
 * stage indexes and `scratch` are not images), and `unknown REASON` for what makes the inputs unknowable here. It draws
 * instruction boundaries as BuildKit's parser does (a UTF-8 BOM and a `#!` first line dropped; a line continues only when
 * it ends in one backslash, and is joined to the next as it is; comment and blank lines inside a continuation dropped), and
 * gives up where it cannot: a heredoc (whose body a newer frontend reads as text, an older one as instructions), a quoted
 * or escaped flag, an `escape` directive, an `ADD` source that could be remote or a variable (or in JSON form), a first line
 * of another syntax (`// syntax=`, JSON), whitespace BuildKit treats as such and this reader would not (form feeds,
 * vertical tabs, inner carriage returns, non-ASCII bytes leading a line or in a directive). `ONBUILD X` is read as X: it
 * runs in the later stages built FROM this one.
 */
export const INPUTS_AWK = `
function image(ref, where, stage_index,    r) {
  r = tolower(ref)
  if (ref == "") { print "unknown an empty image reference (" where ")"; return }
  if (ref ~ /[$]/) { print "unknown a variable in the image reference '" ref "' (" where ")"; return }
  if (r in stages) return
  if (stage_index && ref ~ /^[0-9]+$/) return
  if (r == "scratch") return
  print "image", ref
}
function instruction(line,    w, nw, i, k, kw, opts, m, o, key, last, rest) {
  nw = split(line, w, /[ \\t]+/)
  k = 1
  if (w[1] == "") k = 2
  kw = toupper(w[k])
  # ONBUILD X: X runs in every later stage built FROM this one.
  if (kw == "ONBUILD") { rest = line; sub(/^[ \\t]*[^ \\t]+[ \\t]*/, "", rest); instruction(rest); return }
  if ((kw == "RUN" || kw == "COPY" || kw == "ADD") && line ~ /<</) { print "unknown a heredoc (" kw " <<)"; return }
  for (i = k + 1; i <= nw && w[i] ~ /^--/; i++) {
    if (w[i] ~ /["'\\\\]/) { print "unknown a quoted or escaped flag (" w[i] ")"; return }
  }
  if (kw == "FROM") {
    for (i = k + 1; i <= nw && w[i] ~ /^--/; i++) { }
    image(w[i], "FROM", 0)
    if (i + 2 <= nw && toupper(w[i + 1]) == "AS") stages[tolower(w[i + 2])] = 1
    return
  }
  for (i = k + 1; i <= nw && w[i] ~ /^--/; i++) {
    if ((kw == "COPY" || kw == "ADD") && tolower(w[i]) ~ /^--from=/) image(substr(w[i], 8), kw " --from", 1)
    if (kw == "RUN" && tolower(w[i]) ~ /^--mount=/) {
      m = split(substr(w[i], 9), opts, ",")
      for (o = 1; o <= m; o++) {
        key = opts[o]; sub(/=.*$/, "", key)
        if (tolower(key) == "from") { sub(/^[^=]*=/, "", opts[o]); image(opts[o], "RUN --mount", 1) }
      }
    }
  }
  if (kw == "ADD") {
    if (w[i] ~ /^\\[/) { print "unknown an ADD in JSON form"; return }
    last = nw
    while (last > i && w[last] == "") last--
    for (; i < last; i++) {
      if (w[i] ~ /[:@$]/) print "unknown an ADD source that may be remote or a variable (" w[i] ")"
    }
  }
}
BEGIN { cont = ""; directives = 1; vt = sprintf("%c", 11); ff = sprintf("%c", 12); cr = sprintf("%c", 13); high = sprintf("%c", 128) }
{
  line = $0
  sub(/\\r$/, "", line)
  if (NR == 1 && substr(line, 1, 3) == sprintf("%c%c%c", 239, 187, 191)) line = substr(line, 4)
  if (NR == 1 && line ~ /^#!/) next
  # Another syntax's directive (// syntax=) or a JSON Dockerfile: a frontend this reader does not know.
  if (NR == 1 && (line ~ /^[ \\t]*\\/\\// || line ~ /^[ \\t]*[{]/)) { print "unknown a first line in another syntax (" line ")"; exit }
  # Whitespace BuildKit splits or trims on and this reader does not: form feeds, vertical tabs, carriage returns, and
  # non-ASCII bytes at the start of a line.
  if (index(line, vt) || index(line, ff) || index(line, cr)) { print "unknown a line with a form feed, vertical tab or carriage return"; next }
  lead = line; sub(/^[ \\t]+/, "", lead)
  if (substr(lead, 1, 1) >= high) { print "unknown a line that starts with a non-ASCII byte"; next }
  if (directives && line ~ /^[ \\t]*#/ && index(line, "=") && line ~ /[^ -~\\t]/) { print "unknown a directive with a non-ASCII byte"; next }
  if (directives && line ~ /^[ \\t]*#[ \\t]*[A-Za-z][A-Za-z0-9]*[ \\t]*=/) {
    key = line; sub(/^[ \\t]*#[ \\t]*/, "", key); value = key
    sub(/[ \\t]*=.*$/, "", key); sub(/^[^=]*=[ \\t]*/, "", value); sub(/[ \\t]+$/, "", value)
    key = tolower(key)
    if (key == "syntax") image(value, "# syntax", 0)
    if (key == "escape") print "unknown an escape directive"
    next
  }
  directives = 0
  if (line ~ /^[ \\t]*#/ || line ~ /^[ \\t]*$/) next
  if (line ~ /(^|[^\\\\])\\\\[ \\t]*$/) { sub(/\\\\[ \\t]*$/, "", line); cont = cont line; next }
  instruction(cont line)
  cont = ""
}
END { if (cont != "") instruction(cont) }`;

/** The functions: the inputs' digest, the retag, and the two uses (skip before a build, record after it). */
export const INPUTS_SHELL = `# The digest a tag points to in a registry that hands out anonymous pull tokens (Docker Hub, ghcr.io, public.ecr.aws, quay.io):
# a HEAD (a version check, not a pull: Docker Hub counts none), answered 401 with a Bearer challenge, the anonymous token from
# its realm (https only), the HEAD again with the token on curl's stdin. Status 1: not readable anonymously.
cib_public_digest() {
  local host="$1" repo="$2" reference="$3" url headers challenge realm service scope token='' status=0
  local accept="$CIB_MANIFEST_ACCEPT" xtrace="\${-//[!x]/}"
  command -v curl >/dev/null 2>&1 || return 1
  url="https://$host/v2/$repo/manifests/$reference"
  headers=$(curl -sS --connect-timeout 5 --max-time 20 -I -H "Accept: $accept" "$url" < /dev/null 2>/dev/null | tr -d '\r') || return 1
  if [ "$(cib_http_status "$headers")" = 401 ]; then
    challenge=$(printf '%s\n' "$headers" | awk 'tolower($0) ~ /^www-authenticate:[ \t]*bearer[ \t]/ { sub(/^[^:]*:[ \t]*[^ \t]+[ \t]+/, ""); print; exit }')
    realm=$(printf '%s\n' "$challenge" | sed -n 's/.*realm="\\([^"]*\\)".*/\\1/p')
    service=$(printf '%s\n' "$challenge" | sed -n 's/.*service="\\([^"]*\\)".*/\\1/p')
    scope=$(printf '%s\n' "$challenge" | sed -n 's/.*scope="\\([^"]*\\)".*/\\1/p')
    [[ $realm == https://* ]] || return 1
    # The token is a credential too: not traced (see cib_ecr_password).
    set +x
    token=$(curl -sS --connect-timeout 5 --max-time 20 -G --data-urlencode "service=$service" \
      --data-urlencode "scope=\${scope:-repository:$repo:pull}" "$realm" < /dev/null 2>/dev/null \
      | grep -o '"\\(access_\\)\\{0,1\\}token"[[:space:]]*:[[:space:]]*"[^"]*"' | head -n 1 | sed 's/.*"\\([^"]*\\)"$/\\1/') || status=1
    if [ "$status" -eq 0 ] && [ -n "$token" ]; then
      headers=$(printf 'header = "Authorization: Bearer %s"\n' "$token" \
        | curl -sS --connect-timeout 5 --max-time 20 -K - -I -H "Accept: $accept" "$url" 2>/dev/null | tr -d '\r') || status=1
    else
      status=1
    fi
    if [ -n "$xtrace" ]; then set -x; fi
    [ "$status" -eq 0 ] || return 1
  fi
  [ "$(cib_http_status "$headers")" = 200 ] || return 1
  printf '%s\n' "$headers" | awk 'tolower($0) ~ /^docker-content-digest:/ { sub(/^[^:]*:[ \t]*/, ""); print }' | grep -Em1 '^sha256:[0-9a-f]{64}$'
}

# CIB_IMAGE_DIGEST: the digest an image reference names now, its own when pinned, else its tag's: in ECR or a local registry
# with the script's access, elsewhere (Docker Hub included) anonymously. CIB_IMAGE_NAME: the name as BuildKit's log prints it
# (docker.io/library/node:20), empty when pinned. Status 1 (with CIB_INPUTS_WHY): not knowable here.
cib_image_digest() {
  local ref="$1" host="\${1%%/*}" path reference=latest
  CIB_IMAGE_DIGEST='' CIB_IMAGE_NAME=''
  if [[ $ref =~ @(sha256:[0-9a-f]{64})$ ]]; then CIB_IMAGE_DIGEST="\${BASH_REMATCH[1]}"; return 0; fi
  if [[ $ref == *@* ]]; then CIB_INPUTS_WHY="the image $ref names a digest that is not sha256"; return 1; fi
  # A first component with a dot or a port, or localhost, is a registry; otherwise the image is on Docker Hub.
  if [[ $ref == */* ]] && { [[ $host == *.* || $host == *:* ]] || [ "$host" = localhost ]; }; then
    path="\${ref#*/}"
  elif [ "$CIB_STRATEGY" = buildah ]; then
    CIB_INPUTS_WHY="the image $ref names no registry, and buildah resolves such names through its registries.conf (name docker.io/…)"
    return 1
  else
    host=docker.io path="$ref"
  fi
  if [[ \${path##*/} == *:* ]]; then reference="\${path##*:}" path="\${path%:*}"; fi
  case "$host" in docker.io|index.docker.io|registry-1.docker.io) if [[ $path != */* ]]; then path="library/$path"; fi ;; esac
  CIB_IMAGE_NAME="$host/$path:$reference"
  if [[ $CIB_IMAGE_NAME == index.docker.io/* || $CIB_IMAGE_NAME == registry-1.docker.io/* ]]; then CIB_IMAGE_NAME="docker.io/\${CIB_IMAGE_NAME#*/}"; fi
  if cib_is_local_registry "$host" || cib_is_ecr_host "$host"; then
    cib_ecr_password "$host"
    if ! CIB_IMAGE_DIGEST=$(cib_remote_digest "$host/$path:$reference"); then
      CIB_INPUTS_WHY="the digest of the image $ref could not be read"
      return 1
    fi
    return 0
  fi
  case "$host" in docker.io|index.docker.io) host=registry-1.docker.io ;; esac
  if ! CIB_IMAGE_DIGEST=$(cib_public_digest "$host" "$path" "$reference"); then
    CIB_INPUTS_WHY="the digest of the image $ref could not be read anonymously from $host (pin it by digest, or mirror it in ECR)"
    return 1
  fi
}

# The build context as the engine sees it, as one digest: type, mode, path, link target and content of every entry, except
# the paths a .dockerignore line names literally. Nothing is left out when the file has an exception line, a byte outside
# printable ASCII (a BOM, a Unicode space: Docker trims those), or is a symlink; nor with a .containerignore (buildah reads it
# first) or a Dockerfile-specific ignore file. Status 1 when a listing fails (GNU find is needed: -printf).
cib_context_digest() {
  local ctx="$CIB_CONTEXT" ignore="$CIB_CONTEXT/.dockerignore" line prune=() listing files
  if [ -f "$ignore" ] && [ ! -L "$ignore" ] && [ ! -e "$ctx/.containerignore" ] && [ ! -e "$CIB_DOCKERFILE.dockerignore" ] \\
    && ! grep -q '^[[:space:]]*!' "$ignore" && ! LC_ALL=C grep -q '[^[:print:][:space:]]' "$ignore"; then
    while IFS= read -r line || [ -n "$line" ]; do
      line="\${line%$'\\r'}"
      line="\${line#"\${line%%[![:space:]]*}"}"
      line="\${line%"\${line##*[![:space:]]}"}"
      while [[ $line == /* ]]; do line="\${line#/}"; done
      while [[ $line == ./* ]]; do line="\${line#./}"; done
      while [[ $line == */ ]]; do line="\${line%/}"; done
      case "$line" in
        ''|'#'*|*[*?[\\\\]*|.|..|../*|*/./*|*/../*|*/.|*/..|*//*) continue ;;
      esac
      prune+=(-o -path "./$line")
    done < "$ignore"
  fi
  listing=$(cd "$ctx" && find . \\( -path ./. \${prune[@]+"\${prune[@]}"} \\) -prune -o -printf '%y %m %p -> %l\\0' | LC_ALL=C sort -z | sha256sum) \\
    || return 1
  files=$(cd "$ctx" && find . \\( -path ./. \${prune[@]+"\${prune[@]}"} \\) -prune -o -type f -print0 | LC_ALL=C sort -z \\
    | xargs -0 -r sha256sum -- | sha256sum) || return 1
  printf '%s %s\\n' "\${listing%% *}" "\${files%% *}"
}

# What the engine reads beyond the configuration: variables of BuildKit, buildx, buildah, docker's platform default,
# SOURCE_DATE_EPOCH, the RUN network; and what builds: the engine's version and this script (its flags). Status 1 when the
# engine does not answer.
cib_engine_environment() {
  local name version
  for name in $(compgen -v | LC_ALL=C sort); do
    case "$name" in
      BUILDKIT_*|BUILDX_*|BUILDAH_*|DOCKER_BUILDKIT|DOCKER_DEFAULT_PLATFORM|SOURCE_DATE_EPOCH|CIB_NETWORK) printf 'env %s=%q\n' "$name" "\${!name}" ;;
    esac
  done
  if [ "$CIB_STRATEGY" = buildah ]; then version=$(buildah --version 2>/dev/null) || return 1
  else version=$(docker version --format '{{.Server.Version}}' 2>/dev/null) || return 1; fi
  printf 'engine %q\n' "$version"
  printf 'script %s\n' "$(sha256sum < "\${BASH_SOURCE[0]}" | cut -c 1-64)"
}

# CIB_INPUTS: the digest of this build's inputs (what a fully cached build's result depends on); status 1 with CIB_INPUTS_WHY.
cib_inputs_digest() {
  local refs line name ref bases=() file context engine
  CIB_INPUTS='' CIB_INPUTS_WHY='' CIB_INPUTS_IMAGES=''
  [ -f "$CIB_DOCKERFILE" ] || { CIB_INPUTS_WHY="no Dockerfile at $CIB_DOCKERFILE"; return 1; }
  [ -d "$CIB_CONTEXT" ] || { CIB_INPUTS_WHY="no context directory at $CIB_CONTEXT"; return 1; }
  refs=$(LC_ALL=C awk "$CIB_INPUTS_AWK" "$CIB_DOCKERFILE") || { CIB_INPUTS_WHY="the Dockerfile could not be read"; return 1; }
  # BuildKit takes its frontend from this build arg too (as from a # syntax line).
  if [ -n "\${CIB_BUILD_ARG_BUILDKIT_SYNTAX:-}" ]; then refs="$refs"$'\\n'"image $CIB_BUILD_ARG_BUILDKIT_SYNTAX"; fi
  line=$(printf '%s\\n' "$refs" | awk '$1 == "unknown" { sub(/^unknown /, ""); print; exit }')
  if [ -n "$line" ]; then CIB_INPUTS_WHY="the Dockerfile has $line"; return 1; fi
  for ref in $(printf '%s\\n' "$refs" | awk '$1 == "image" { print $2 }' | LC_ALL=C sort -u); do
    cib_image_digest "$ref" || return 1
    bases+=("$ref $CIB_IMAGE_DIGEST")
    if [ -n "$CIB_IMAGE_NAME" ]; then CIB_INPUTS_IMAGES="\${CIB_INPUTS_IMAGES:+$CIB_INPUTS_IMAGES }$CIB_IMAGE_NAME@$CIB_IMAGE_DIGEST"; fi
  done
  context=$(cib_context_digest) || { CIB_INPUTS_WHY="the build context could not be listed (GNU find is needed)"; return 1; }
  engine=$(cib_engine_environment) || { CIB_INPUTS_WHY="the engine's version could not be read"; return 1; }
  CIB_INPUTS=$({
    printf 'cached-build inputs v1\\n'
    printf 'strategy %s\\n' "$CIB_STRATEGY"
    # The compression setting decides whether the app push forces gzip: another setting can make another image.
    if [ "$CIB_STRATEGY" = registry ]; then printf 'buildkit %q\\ncompression %s\\n' "$CIB_BUILDKIT_IMAGE" "$CIB_CACHE_COMPRESSION"; fi
    printf 'target %q\\n' "$CIB_TARGET"
    printf 'platform %q\\n' "\${CIB_PLATFORM:-native $(uname -m)}"
    for name in $(printf '%s\\n' "$CIB_ARG_VARS" | LC_ALL=C sort); do printf 'arg %q=%q\\n' "\${name#CIB_BUILD_ARG_}" "\${!name}"; done
    for line in \${CIB_SECRET_LIST[@]+"\${CIB_SECRET_LIST[@]}"}; do printf 'secret %q\\n' "\${line%%=*}"; done | LC_ALL=C sort
    printf '%s\n' "$engine"
    for line in \${bases[@]+"\${bases[@]}"}; do printf 'image %s\\n' "$line"; done
    printf 'dockerfile %s\\n' "$(sha256sum < "$CIB_DOCKERFILE" | cut -c 1-64)"
    for file in "$CIB_CONTEXT/.dockerignore" "$CIB_CONTEXT/.containerignore" "$CIB_DOCKERFILE.dockerignore"; do
      if [ -f "$file" ]; then printf 'ignore %q %s\\n' "$file" "$(sha256sum < "$file" | cut -c 1-64)"; fi
    done
    printf 'context %s\\n' "$context"
  } | sha256sum | cut -c 1-64) || { CIB_INPUTS_WHY="the inputs could not be hashed"; return 1; }
  [[ $CIB_INPUTS =~ ^[0-9a-f]{64}$ ]] || { CIB_INPUTS_WHY="the inputs could not be hashed"; return 1; }
}

# The Content-Type of a saved response's headers, lower case, without parameters (RFC 9110 8.3.1).
cib_content_type() {
  tr -d '\\r' < "$1" | awk 'tolower($0) ~ /^content-type:/ { sub(/^[^:]*:[ \\t]*/, ""); sub(/[ \\t]*;.*/, "");
    sub(/[ \\t]+$/, ""); m = tolower($0) } END { print m }'
}

# Tags an image that is in the registry under another name: the manifest's exact bytes are read from SOURCE (REPO:TAG or
# REPO@DIGEST) and PUT to DEST (REPO:TAG), so no blob moves and the digest stays. Status 1 (with CIB_RETAG_ERROR): not tagged.
cib_retag() {
  local dir="$CIB_WORK_DIR/retag" code media
  rm -rf "$dir" && mkdir -p "$dir"
  code=$(cib_registry_curl "$1" -D "$dir/get.headers" -o "$dir/manifest.json" -w '%{http_code}') || code=000
  if [ "$code" != 200 ]; then CIB_RETAG_ERROR="$1 could not be read (HTTP $code)"; return 1; fi
  media=$(cib_content_type "$dir/get.headers")
  code=$(cib_registry_curl "$2" -X PUT -H "Content-Type: $media" --data-binary "@$dir/manifest.json" -o "$dir/put.out" \\
    -w '%{http_code}') || code=000
  if [ "$code" != 201 ]; then
    CIB_RETAG_ERROR="$2 could not be written (HTTP $code): $(head -c 300 "$dir/put.out" 2>/dev/null || true)"
    return 1
  fi
}

# Before a build: when an image built from these inputs is in the app repository, tag it IMAGE_TAG and build nothing.
cib_skip_unchanged() {
  local record digest status=0
  if ! cib_inputs_digest; then
    cib_log "inputs: not known ($CIB_INPUTS_WHY): building"
    return 0
  fi
  record="${INPUTS_TAG_PREFIX}$CIB_INPUTS"
  cib_state_set CIB_INPUTS_TAG "$record"
  cib_ecr_password "$APP_REPOSITORY_URI"
  digest=$(cib_remote_digest "$APP_REPOSITORY_URI:$record") || status=$?
  case "$status" in
    0)
      # A PUT the registry took but whose answer was lost still tagged the image: a build would then push to a taken tag.
      if cib_retag "$APP_REPOSITORY_URI@$digest" "$IMAGE_URI" || [ "$(cib_remote_digest "$IMAGE_URI" || true)" = "$digest" ]; then
        cib_state_set IMAGE_REUSED true
        cib_state_set IMAGE_REUSED_FROM "$record"
        cib_state_set IMAGE_DIGEST "$digest"
        cib_state_set CACHE_READ_TAGS ''
        cib_state_set CACHE_WRITE_TAG ''
        cib_state_set CACHE_REFS_READ ''
        cib_log "inputs unchanged: $APP_REPOSITORY_URI:$record is $digest, tagged $IMAGE_TAG; nothing is built"
      else
        cib_warn "inputs unchanged, but $CIB_RETAG_ERROR: building"
      fi ;;
    1) cib_log "inputs: $record, new: building" ;;
    *) cib_log "inputs: $record; could not tell whether an image has them: building" ;;
  esac
}

# After a build: record its inputs on the image, when they are still what they were before the build (a base image's tag
# could have moved while it ran) and the strategy built it (not the registry strategy's fallback). A failure costs only a later
# skip.
cib_record_inputs() {
  if [ -n "\${CIB_FALLBACK:-}" ]; then
    cib_log "inputs not recorded: the image was built by the $CIB_FALLBACK fallback, not the $CIB_STRATEGY strategy"
    return 0
  fi
  if ! cib_inputs_digest; then
    cib_warn "inputs not recorded: they could not be read again after the build ($CIB_INPUTS_WHY)"
    return 0
  fi
  if [ "${INPUTS_TAG_PREFIX}$CIB_INPUTS" != "$CIB_INPUTS_TAG" ]; then
    cib_warn "inputs changed while the image was built (a base image's tag moved?): not recorded"
    return 0
  fi
  # BuildKit's log names the digest it built each image on: another one (a registry mirror, a local copy) is not these inputs.
  local entry used
  for entry in $CIB_INPUTS_IMAGES; do
    used=$(grep -oE "\${entry%@*}@sha256:[0-9a-f]{64}" "$CIB_WORK_DIR/build.log" 2>/dev/null | grep -v -m 1 -F "$entry" || true)
    if [ -n "$used" ]; then
      cib_warn "the engine built on $used, not on \${entry#*@}: inputs not recorded"
      return 0
    fi
  done
  # Made current here, after the base images' requests (a base in another region's registry made its region's current):
  # cib_retag's requests run in subshells, which would each ask again for a region not yet asked in this process.
  cib_ecr_password "$APP_REPOSITORY_URI"
  if cib_retag "$APP_REPOSITORY_URI@$IMAGE_DIGEST" "$APP_REPOSITORY_URI:$CIB_INPUTS_TAG"; then
    cib_log "inputs recorded: $APP_REPOSITORY_URI:$CIB_INPUTS_TAG"
  else
    cib_warn "inputs not recorded ($CIB_RETAG_ERROR): a later build of the same inputs builds again"
  fi
}`;
