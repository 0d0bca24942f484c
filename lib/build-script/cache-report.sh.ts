/**
 * The shell and awk that turn an engine's build log into per-step results.
 *
 * Output of both parsers: one line per Dockerfile step (FROM lines excluded), tab-separated:
 * `cached|executed <TAB> seconds-or-- <TAB> step title`.
 */

/**
 * BuildKit `--progress=plain` (docker 20.10 built-in BuildKit and buildx alike). A step is a hit when
 * it prints `CACHED`, or when — because a later step needs its layer — it only pulls/extracts layers and
 * ends with `DONE` without running anything (no command output lines, which carry a timestamp).
 */
export const BUILDKIT_STEPS_AWK = `
function is_header(s) { return s ~ /^\\[[^]]*[0-9]+\\/[0-9]+\\] / }
/^#[0-9]+ / {
  id = substr($1, 2)
  rest = substr($0, length($1) + 2)
  if (is_header(rest)) {
    if (!(id in title)) {
      name = substr(rest, index(rest, "] ") + 2)
      if (toupper(substr(name, 1, 5)) == "FROM ") { next }
      title[id] = rest
      order[++n] = id
    }
    next
  }
  if (!(id in title)) { next }
  if (rest == "CACHED") { cached[id] = 1 }
  else if (rest ~ /^(pulling|extracting) sha256:/ || rest ~ /^sha256:[0-9a-f]+ /) { pulled[id] = 1 }
  else if (rest ~ /^[0-9]+\\.[0-9]+ /) { output[id] = 1 }
  else if (rest ~ /^DONE [0-9.]+s$/) { secs[id] = substr(rest, 6, length(rest) - 6) }
}
END {
  for (i = 1; i <= n; i++) {
    id = order[i]
    hit = (id in cached) || ((id in pulled) && !(id in output))
    t = (id in secs) ? secs[id] : "-"
    printf "%s\\t%s\\t%s\\n", (hit ? "cached" : "executed"), t, title[id]
  }
}`;

/**
 * buildah `--layers` output: `STEP k/n: INSTRUCTION` (with a `[s/m] ` stage prefix in multi-stage
 * builds); a hit prints `--> Using cache <id>` before the next step starts.
 */
export const BUILDAH_STEPS_AWK = `
/^(\\[[0-9]+\\/[0-9]+\\] )?STEP [0-9]+\\/[0-9]+: / {
  cur = ++n
  title[cur] = $0
  name = substr($0, index($0, ": ") + 2)
  from[cur] = (toupper(substr(name, 1, 5)) == "FROM ")
  next
}
cur && /^--> Using cache / { cached[cur] = 1 }
END {
  for (i = 1; i <= n; i++) {
    if (from[i]) { continue }
    printf "%s\\t-\\t%s\\n", ((i in cached) ? "cached" : "executed"), title[i]
  }
}`;

/** `cib_count_steps LOG OUT` writes the per-step table (with the engine's parser) and sets the step counters. */
export const COUNT_STEPS_SHELL = `cib_count_steps() {
  local log="$1" out="$2" total cached
  awk "$CIB_STEPS_AWK" "$log" > "$out"
  total=$(wc -l < "$out" | tr -d ' ')
  cached=$(grep -c '^cached' "$out" || true)
  cib_state_set CACHE_STEPS_TOTAL "$total"
  cib_state_set CACHE_STEPS_CACHED "$cached"
}`;

/** The report step: the table a person reads, and the exported variables. */
export const REPORT_SHELL = `cib_hit_ratio() {
  awk -v c="$1" -v t="$2" 'BEGIN { if (t == 0) { print "1.00" } else { printf "%.2f\\n", c / t } }'
}

cib_json_string() {
  printf '"%s"' "$(printf '%s' "$1" | sed -e 's/\\\\/\\\\\\\\/g' -e 's/"/\\\\"/g')"
}

# imagedefinitions.json for ECS standard deployments, imageDetail.json (digest-pinned) for ECS blue/green.
cib_write_artifacts() {
  local dir="$1" pinned="$IMAGE_URI"
  if [ -n "\${IMAGE_DIGEST:-}" ]; then pinned="$APP_REPOSITORY_URI@$IMAGE_DIGEST"; fi
  mkdir -p "$dir"
  printf '[{"name":%s,"imageUri":%s}]\\n' "$(cib_json_string "$CIB_CONTAINER_NAME")" "$(cib_json_string "$IMAGE_URI")" > "$dir/imagedefinitions.json"
  printf '{"ImageURI":%s}\\n' "$(cib_json_string "$pinned")" > "$dir/imageDetail.json"
}

cib_step_report() {
  local total="\${CACHE_STEPS_TOTAL:-0}" cached="\${CACHE_STEPS_CACHED:-0}" ratio executed
  ratio=$(cib_hit_ratio "$cached" "$total")
  executed=$((total - cached))
  cib_state_set CACHE_HIT_RATIO "$ratio"
  {
    printf '\\n'
    printf '==== cached-build cache report (%s) ====\\n' "$CIB_STRATEGY"
    printf '%-18s %s\\n' 'steps total' "$total" 'from cache' "$cached" 'executed' "$executed" 'hit ratio' "$ratio"
    printf '%-18s %s\\n' 'refs read' "\${CACHE_REFS_READ:--}" 'ref written' "\${CACHE_REF_WRITTEN:--}"
    printf '%-18s %s\\n' 'image' "\${IMAGE_URI:-}" 'digest' "\${IMAGE_DIGEST:-}"
    if [ -s "$CIB_WORK_DIR/steps.tsv" ]; then
      printf -- '---- steps ----\\n'
      awk -F '\\t' '{ printf "%-9s %7s  %s\\n", $1, $2, $3 }' "$CIB_WORK_DIR/steps.tsv"
    fi
  } >&2
  local name value q="'"
  : > "$CIB_WORK_DIR/exports.env"
  for name in $CIB_EXPORTED_VARIABLES; do
    value="\${!name:-}"
    printf "export %s='%s'\\n" "$name" "\${value//$q/$q\\\\$q$q}" >> "$CIB_WORK_DIR/exports.env"
  done
  if [ -n "\${CIB_ARTIFACTS_DIR:-}" ]; then cib_write_artifacts "$CIB_ARTIFACTS_DIR"; fi
  # For CodeBuild the exports are sourced into its shell; a standalone caller gets them on stdout.
  if [ -z "\${CODEBUILD_BUILD_ID:-}" ]; then cat "$CIB_WORK_DIR/exports.env"; fi
}`;
