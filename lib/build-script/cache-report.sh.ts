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
 * buildah `--layers` output: `STEP k/n: INSTRUCTION` (with a `[s/m] ` stage prefix in multi-stage builds); a hit prints
 * `--> Using cache <id>`, and every step but FROM ends with its image id (`--> <hex>`). Stages nest: a step that needs
 * another stage (`COPY --from`) starts, the other stage's steps run, and only then does the first step end, so results
 * belong to the innermost step that has not ended yet (a stack), not to the step printed last.
 */
export const BUILDAH_STEPS_AWK = `
{
  # A timestamped copy of the log (cib_timestamp: "epoch<TAB>line") gives step times; a plain one gives "-".
  ts = ""
  line = $0
  if (match(line, /^[0-9]+[.][0-9]+\t/)) { ts = substr(line, 1, RLENGTH - 1) + 0; line = substr(line, RLENGTH + 1) }
}
line ~ /^(\\[[0-9]+\\/[0-9]+\\] )?STEP [0-9]+\\/[0-9]+: / {
  i = ++n
  start[i] = ts
  title[i] = line
  name = substr(line, index(line, ": ") + 2)
  from[i] = (toupper(substr(name, 1, 5)) == "FROM ")
  if (!from[i]) stack[++depth] = i
  next
}
depth > 0 && line ~ /^--> Using cache / { cached[stack[depth]] = 1; next }
depth > 0 && line ~ /^--> [0-9a-f]+$/ {
  i = stack[depth--]
  if (ts != "" && start[i] != "") secs[i] = ts - start[i]
}
END {
  for (i = 1; i <= n; i++) {
    if (from[i]) { continue }
    t = (i in secs) ? sprintf("%.1f", secs[i]) : "-"
    printf "%s\\t%s\\t%s\\n", ((i in cached) ? "cached" : "executed"), t, title[i]
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
  # A build that ran but whose log shows no step the parser knows is not a perfect cache: it is unknown. The cache is
  # exported (when in doubt, write) and the hit ratio published as 0, so that the alarm sees it.
  if [ "$total" -eq 0 ]; then
    cib_state_set CIB_STEPS_UNKNOWN 1
    cib_warn "no step found in the engine's log ($log): cache results unknown, exporting the cache"
  fi
}`;

/**
 * The report step: the summary a person reads in a second, cache-report.json, the CloudWatch metrics (one call,
 * in CodeBuild), the exported variables and the ECS artifact files.
 */
export const REPORT_SHELL = `cib_hit_ratio() {
  # No step counted (a report without a build): no ratio.
  awk -v c="$1" -v t="$2" 'BEGIN { if (t > 0) printf "%.2f\\n", c / t }'
}

# A JSON string, every character that JSON needs escaped escaped (control characters too: a branch name may hold them).
cib_json_string() {
  CIB_JSON_VALUE="$1" LC_ALL=C awk 'BEGIN {
    for (i = 1; i < 32; i++) esc[sprintf("%c", i)] = sprintf("\\\\u%04x", i)
    esc["\\\\"] = "\\\\\\\\"; esc["\\""] = "\\\\\\""; esc[sprintf("%c", 127)] = "\\\\u007f"
    s = ENVIRON["CIB_JSON_VALUE"]; out = ""
    for (i = 1; i <= length(s); i++) { c = substr(s, i, 1); out = out ((c in esc) ? esc[c] : c) }
    printf "\\"%s\\"", out
  }'
}

# A comma-separated list as a JSON array of strings.
cib_json_list() {
  local item out='' IFS=','
  for item in $1; do out="$out\${out:+,}$(cib_json_string "$item")"; done
  printf '[%s]' "$out"
}

cib_human_bytes() {
  awk -v b="$1" 'BEGIN { if (b < 1024) printf "%d B\\n", b; else if (b < 1048576) printf "%.1f KiB\\n", b / 1024;
    else if (b < 1073741824) printf "%.1f MiB\\n", b / 1048576; else printf "%.2f GiB\\n", b / 1073741824 }'
}

# imagedefinitions.json for ECS standard deployments, imageDetail.json (digest-pinned) for ECS blue/green.
cib_write_artifacts() {
  local dir="$1" pinned="$APP_REPOSITORY_URI@$IMAGE_DIGEST"
  mkdir -p "$dir"
  printf '[{"name":%s,"imageUri":%s}]\\n' "$(cib_json_string "$CIB_CONTAINER_NAME")" "$(cib_json_string "$IMAGE_URI")" > "$dir/imagedefinitions.json"
  printf '{"ImageURI":%s}\\n' "$(cib_json_string "$pinned")" > "$dir/imageDetail.json"
  cp "$CIB_WORK_DIR/cache-report.json" "$dir/cache-report.json"
}

# "platform total cached" for each platform the step titles name (a multi-platform BuildKit build: "[linux/amd64 2/6] ..."),
# in the order of CIB_PLATFORM (the log's order varies from build to build), then any other.
cib_platform_counts() {
  [ -s "$CIB_WORK_DIR/steps.tsv" ] || return 0
  awk -F '\\t' -v platforms="\${CIB_PLATFORM:-}" 'match($3, /^\\[[a-z0-9]+\\/[a-z0-9_]+(\\/[a-z0-9]+)? /) {
      p = substr($3, 2, RLENGTH - 2); if (!(p in total)) seen[++n] = p; total[p]++; if ($1 == "cached") cached[p]++ }
    END {
      m = split(platforms, order, ",")
      for (i = 1; i <= n; i++) { known = 0; for (j = 1; j <= m; j++) if (order[j] == seen[i]) known = 1; if (!known) order[++m] = seen[i] }
      for (j = 1; j <= m; j++) if (order[j] in total) printf "%s %d %d\\n", order[j], total[order[j]], cached[order[j]]
    }' "$CIB_WORK_DIR/steps.tsv"
}

# One line a person reads in a second.
cib_verdict() {
  local total="$1" cached="$2" line
  if [ "\${IMAGE_REUSED:-}" = true ] && [ -n "\${IMAGE_REUSED_FROM:-}" ]; then
    printf 'image reused: the inputs are those of %s (%s), tagged %s, nothing built\\n' "$IMAGE_REUSED_FROM" "$IMAGE_DIGEST" "$IMAGE_URI"
    return
  fi
  if [ "\${IMAGE_REUSED:-}" = true ]; then
    printf 'image reused: %s already existed (%s), nothing built\\n' "$IMAGE_URI" "$IMAGE_DIGEST"
    return
  fi
  line="cache: $cached/$total steps reused"
  local per
  per=$(cib_platform_counts | awk '{ printf "%s%s %d/%d", (NR > 1 ? ", " : ""), $1, $3, $2 }')
  if [ -n "$per" ]; then line="$line ($per)"; fi
  if [ -n "\${CIB_STEPS_UNKNOWN:-}" ]; then line="cache: results unknown (no step in the engine's log)"; fi
  if [ "$total" -gt 0 ] && [ "$cached" -eq 0 ]; then line="$line (no usable cache)"; fi
  if [ -n "\${CACHE_REF_WRITTEN:-}" ]; then
    line="$line, wrote $CACHE_REF_WRITTEN"
  elif [ -n "\${CIB_CACHE_EXPORT_FAILED:-}" ]; then
    line="$line, cache export FAILED (image built and pushed)"
  elif [ -z "\${CACHE_WRITE_TAG:-}" ]; then
    line="$line, read-only: nothing written"
  else
    line="$line, nothing to write"
  fi
  if [ -n "\${CIB_FALLBACK:-}" ]; then line="$line; builder unavailable, built with the $CIB_FALLBACK strategy"; fi
  printf '%s\\n' "$line"
}

# The seconds each step before the report took ("build 5.1 s, cache 1.9 s"), as a summary line or JSON object.
cib_step_seconds() {
  local step name out='' sep=''
  for step in "\${CIB_STEP_NAMES[@]}"; do
    name="CIB_SECONDS_$step"
    [ -n "\${!name:-}" ] || continue
    if [ "$1" = json ]; then out="$out$sep\\"$step\\":\${!name}"; sep=,; else out="$out$sep$step \${!name} s"; sep=', '; fi
  done
  if [ "$1" = json ]; then printf '{%s}\\n' "$out"; else printf '%s\\n' "\${out:--}"; fi
}

cib_write_report_json() {
  local file="$1" verdict="$2" steps='' status secs title sep='' platforms
  # Not inside a double-quoted $(...): bash 4.2 drops the backslashes of \\" there, even inside single quotes.
  platforms=$(cib_platform_counts | awk '{ printf "%s{\\"platform\\":\\"%s\\",\\"stepsTotal\\":%d,\\"stepsCached\\":%d}",
    (NR > 1 ? "," : ""), $1, $2, $3 }') || platforms=''
  if [ -s "$CIB_WORK_DIR/steps.tsv" ]; then
    while IFS=$'\\t' read -r status secs title; do
      if [ "$secs" = - ]; then secs=null; fi
      steps="$steps$sep{\\"step\\":$(cib_json_string "$title"),\\"status\\":\\"$status\\",\\"seconds\\":$secs}"
      sep=','
    done < "$CIB_WORK_DIR/steps.tsv"
  fi
  {
    printf '{"strategy":"%s","image":%s,"digest":%s,"branch":%s,' "$CIB_STRATEGY" \\
      "$(cib_json_string "\${IMAGE_URI:-}")" "$(cib_json_string "\${IMAGE_DIGEST:-}")" "$(cib_json_string "\${CACHE_BRANCH:-}")"
    printf '"reused":%s,"reusedFrom":%s,"stepsUnknown":%s,"fallback":%s,' "\${IMAGE_REUSED:-false}" \\
      "$(if [ -n "\${IMAGE_REUSED_FROM:-}" ]; then cib_json_string "$IMAGE_REUSED_FROM"; else echo null; fi)" "$([ -n "\${CIB_STEPS_UNKNOWN:-}" ] && echo true || echo false)" "$(if [ -n "\${CIB_FALLBACK:-}" ]; then cib_json_string "$CIB_FALLBACK"; else echo null; fi)"
    printf '"stepsTotal":%s,"stepsCached":%s,"stepsExecuted":%s,"hitRatio":%s,' \\
      "$CACHE_STEPS_TOTAL" "$CACHE_STEPS_CACHED" "$((CACHE_STEPS_TOTAL - CACHE_STEPS_CACHED))" "\${CACHE_HIT_RATIO:-null}"
    printf '"platforms":[%s],' "$platforms"
    printf '"refsRead":%s,"refWritten":%s,"cacheBytesPushed":%s,"buildSeconds":%s,"stepSeconds":%s,"verdict":%s,"steps":[%s]}\\n' \\
      "$(cib_json_list "\${CACHE_REFS_READ:-}")" "$(cib_json_string "\${CACHE_REF_WRITTEN:-}")" "\${CACHE_BYTES_PUSHED:-0}" \\
      "$BUILD_SECONDS" "$(cib_step_seconds json)" "$(cib_json_string "$verdict")" "$steps"
  } > "$file"
}

# The exported variables, for CodeBuild's post_build (sourced) or a standalone caller.
cib_write_exports() {
  local name value q="'"
  : > "$CIB_WORK_DIR/exports.env"
  for name in $CIB_EXPORTED_VARIABLES; do
    value="\${!name:-}"
    printf "export %s='%s'\\n" "$name" "\${value//$q/$q\\\\$q$q}" >> "$CIB_WORK_DIR/exports.env"
  done
}

# One put-metric-data call a build, in CodeBuild only; a failure warns and never fails the build.
cib_publish_metrics() {
  if [ "$CIB_METRICS" != true ] || [ -z "\${CODEBUILD_BUILD_ID:-}" ]; then return 0; fi
  if ! command -v aws >/dev/null 2>&1; then
    cib_warn 'metrics: the AWS CLI is not installed, nothing published'
    return 0
  fi
  # The project's own namespace: the only one its role may publish in.
  local project="\${CODEBUILD_BUILD_ID%%:*}" dims data='' namespace
  namespace="$CIB_METRICS_NAMESPACE_PREFIX$project"
  dims="[{\\"Name\\":\\"Project\\",\\"Value\\":$(cib_json_string "$project")},{\\"Name\\":\\"Branch\\",\\"Value\\":$(cib_json_string "\${CACHE_BRANCH:-}")}]"
  metric() { data="$data\${data:+,}{\\"MetricName\\":\\"$1\\",\\"Dimensions\\":$dims,\\"Value\\":$2,\\"Unit\\":\\"$3\\"}"; }
  # A reused image ran no step: it is neither a hit nor a miss, and publishes no cache metric.
  if [ "\${IMAGE_REUSED:-}" != true ]; then
    metric CacheHitRatio "\${CACHE_HIT_RATIO:-0}" None
    metric StepsExecuted "$((CACHE_STEPS_TOTAL - CACHE_STEPS_CACHED))" Count
    metric StepsCached "$CACHE_STEPS_CACHED" Count
    metric CacheBytesPushed "\${CACHE_BYTES_PUSHED:-0}" Bytes
  fi
  metric BuildSeconds "$BUILD_SECONDS" Seconds
  if [ -n "\${CIB_FALLBACK:-}" ]; then metric BuilderFallback 1 Count; fi
  printf '[%s]\\n' "$data" > "$CIB_WORK_DIR/metrics.json"
  if aws cloudwatch put-metric-data --namespace "$namespace" --metric-data "file://$CIB_WORK_DIR/metrics.json" >/dev/null 2>"$CIB_WORK_DIR/metrics.err"; then
    cib_log "metrics: published to $namespace"
  else
    cib_warn "metrics: put-metric-data failed: $(head -c 300 "$CIB_WORK_DIR/metrics.err")"
  fi
}

cib_step_report() {
  local total="\${CACHE_STEPS_TOTAL:-0}" cached="\${CACHE_STEPS_CACHED:-0}" ratio='' verdict seconds
  if [ "\${IMAGE_REUSED:-}" != true ] && [ -z "\${CIB_STEPS_UNKNOWN:-}" ]; then ratio=$(cib_hit_ratio "$cached" "$total"); fi
  cib_state_set CACHE_HIT_RATIO "$ratio"
  cib_state_set CACHE_STEPS_TOTAL "$total"
  cib_state_set CACHE_STEPS_CACHED "$cached"
  seconds=$(( $(date +%s) - \${CIB_STARTED_AT:-$(date +%s)} ))
  cib_state_set BUILD_SECONDS "$seconds"
  verdict=$(cib_verdict "$total" "$cached")
  {
    printf '\\n==== cached-build cache summary (%s) ====\\n' "$CIB_STRATEGY"
    if [ -s "$CIB_WORK_DIR/steps.tsv" ]; then
      printf '%-9s %7s  %s\\n' 'result' 'time' 'step'
      awk -F '\\t' '{ t = ($2 == "-") ? "-" : $2 "s"; s = $3; if (length(s) > 100) s = substr(s, 1, 97) "...";
        printf "%-9s %7s  %s\\n", $1, t, s }' "$CIB_WORK_DIR/steps.tsv"
    fi
    printf '%-13s %s\\n' 'refs read' "\${CACHE_REFS_READ:--}" 'ref written' "\${CACHE_REF_WRITTEN:--}" \\
      'cache pushed' "$(cib_human_bytes "\${CACHE_BYTES_PUSHED:-0}")" 'build time' "\${seconds} s" 'step time' "$(cib_step_seconds text)" \\
      'image' "\${IMAGE_URI:-}@\${IMAGE_DIGEST:-}"
    printf '%s\\n\\n' "$verdict"
  } >&2
  cib_write_report_json "$CIB_WORK_DIR/cache-report.json" "$verdict"
  cib_publish_metrics
  cib_write_exports
  if [ -n "\${CIB_ARTIFACTS_DIR:-}" ]; then cib_write_artifacts "$CIB_ARTIFACTS_DIR"; fi
  # For CodeBuild the exports are sourced into its shell; a standalone caller gets them on stdout.
  if [ -z "\${CODEBUILD_BUILD_ID:-}" ]; then cat "$CIB_WORK_DIR/exports.env"; fi
}`;
