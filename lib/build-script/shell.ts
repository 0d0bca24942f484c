/** Quotes a value for bash, single-quote style: safe for any byte string. */
export function shq(value: string): string {
  if (/^[A-Za-z0-9_./:=@%+-]+$/.test(value)) return value;
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** A bash array literal: `(a 'b c')`. */
export function shArray(values: readonly string[]): string {
  return `(${values.map(shq).join(' ')})`;
}

/** Matches registry hosts that are reached over plain HTTP without login (test registries). */
export const LOCAL_REGISTRY_SHELL = `cib_is_local_registry() {
  case "$1" in
    localhost|localhost:*|127.*|'[::1]'|'[::1]':*) return 0 ;;
    *) return 1 ;;
  esac
}`;

/**
 * Amazon ECR private registry hosts (register row ECR23), as a bash regular expression on the host in lower case without
 * `:443`: `ACCOUNT.dkr.ecr[-fips].REGION.amazonaws.com[.cn]`, or the dual-stack `ACCOUNT.dkr-ecr[-fips].REGION.on.aws`.
 * The region is group 3 or group 6.
 */
export const ECR_HOST_PATTERN = '^[0-9]{12}\\.(dkr\\.ecr(-fips)?\\.([a-z0-9-]+)\\.amazonaws\\.com(\\.cn)?|dkr-ecr(-fips)?\\.([a-z0-9-]+)\\.on\\.aws)$';

/** Reads a manifest (JSON) on stdin and prints `digest size` for each descriptor; no jq needed. */
export const MANIFEST_BLOBS_SHELL = `# "digest size" of every descriptor of a manifest on stdin (JSON; key order free).
cib_manifest_blobs() {
  tr -d ' \\n\\t\\r' | tr '{}' '\\n' | awk 'match($0, /"digest":"sha256:[0-9a-f]+"/) {
    d = substr($0, RSTART + 10, RLENGTH - 11); if (match($0, /"size":[0-9]+/)) print d, substr($0, RSTART + 7, RLENGTH - 7) }'
}`;

/**
 * Cache bytes for the docker strategies: the blobs of the refs read and written before the export, against
 * the blobs of the written ref after it. Shared by the registry and inline engines.
 */
export const DOCKER_CACHE_BYTES_SHELL = `# Whether docker has buildx (CIB_HAS_BUILDX), asked once: a docker CLI start costs 0.1 s of CPU, at the time the engine pulls.
cib_probe_buildx() {
  if [ -z "\${CIB_HAS_BUILDX:-}" ]; then
    if docker buildx version >/dev/null 2>&1; then CIB_HAS_BUILDX=1; else CIB_HAS_BUILDX=0; fi
  fi
}

# The raw manifest of a ref in the registry (buildx imagetools where available, else docker manifest).
cib_raw_manifest() {
  cib_probe_buildx
  if [ "$CIB_HAS_BUILDX" = 1 ]; then
    docker buildx imagetools inspect --raw "$1" 2>/dev/null
  else
    local insecure=()
    if cib_is_local_registry "\${1%%/*}"; then insecure=(--insecure); fi
    DOCKER_CLI_EXPERIMENTAL=enabled docker manifest inspect \${insecure[@]+"\${insecure[@]}"} "$1" 2>/dev/null
  fi
}

# "digest size" of the config and layers of a ref (and of the manifests of an index), one a line.
cib_ref_blobs() {
  local ref="$1" raw child
  raw=$(cib_raw_manifest "$ref") || return 0
  printf '%s' "$raw" | cib_manifest_blobs
  if printf '%s' "$raw" | grep -q '"manifests"'; then
    for child in $(printf '%s' "$raw" | cib_manifest_blobs | awk '{ print $1 }'); do
      cib_raw_manifest "\${ref%:*}@$child" | cib_manifest_blobs
    done
  fi
}

# The refs this build reads and may write: the branch tags and, with the inline functions, each stage ref.
cib_cache_refs_all() {
  local ref stage
  for ref in $CACHE_READ_TAGS $CACHE_WRITE_TAG; do
    printf '%s\\n' "$ref"
    # The registry strategy's fallback to inline writes stage refs too (cib_engine_prepare decided it before the snapshot).
    if [ "$CIB_STRATEGY" = inline ] || [ "\${CIB_FALLBACK:-}" = inline ]; then
      cib_inline_stages
      for stage in \${CIB_SIDE_STAGES[@]+"\${CIB_SIDE_STAGES[@]}"}; do cib_stage_ref "$ref" "$stage"; done
    fi
  done | sort -u
}

# What the cache repository holds for those refs before the export.
cib_engine_cache_snapshot() {
  local ref
  cib_probe_buildx
  for ref in $(cib_cache_refs_all); do
    cib_ref_blobs "$CACHE_REPOSITORY_URI:$ref"
  done | sort -u > "$CIB_WORK_DIR/cache-before.txt"
}

# Bytes of the blobs the written refs reference that were not there before: what the export uploaded.
# (FILENAME, not NR == FNR: the snapshot is empty on a branch's first build.)
cib_engine_cache_bytes() {
  local ref
  cib_probe_buildx
  for ref in $(cib_engine_written_refs); do cib_ref_blobs "$CACHE_REPOSITORY_URI:$ref"; done | sort -u \\
    | awk 'FILENAME == ARGV[1] { seen[$1] = 1; next } !($1 in seen) { s += $2 } END { print s + 0 }' "$CIB_WORK_DIR/cache-before.txt" -
}`;
