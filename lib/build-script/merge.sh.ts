/**
 * The native multi-platform path's last step, `merge`: after one build per platform has pushed `<tag>--<os>-<arch>` (each on a
 * build host of its own architecture, with `CIB_PLATFORM_TAGS=true`), one index under `<tag>` names them all. It is written with
 * registry requests only (curl; ECR's basic auth, as the re-run check uses), so the merge needs no engine and no privileged mode.
 * ECR takes an index only once every manifest it names is in the repository (test/aws-contract.md ECR19): the platform images are.
 */
export const MERGE_SHELL = `cib_step_merge() {
  cib_state_set CIB_STARTED_AT "$(date +%s)"
  [ -n "$APP_REPOSITORY_URI" ] || cib_die 'APP_REPOSITORY_URI is not set (the app repository the platform images are in)'
  [ "\${#CIB_MERGE_LIST[@]}" -ge 2 ] || cib_die "CIB_MERGE_PLATFORMS must name two or more platforms (one index of them), got '$CIB_MERGE_PLATFORMS'"
  local p seen=' '
  for p in \${CIB_MERGE_LIST[@]+"\${CIB_MERGE_LIST[@]}"}; do
    case "$seen" in *" $p "*) cib_die "CIB_MERGE_PLATFORMS names $p twice" ;; esac
    seen="$seen$p "
  done
  command -v curl >/dev/null 2>&1 || cib_die 'the merge step needs curl: it reads the platform images and writes the index with registry requests'
  local host="\${APP_REPOSITORY_URI%%/*}"
  if ! cib_is_local_registry "$host" && ! cib_is_ecr_host "$host"; then
    cib_die "the merge step writes to ECR or a local registry, not $host (use docker buildx imagetools create there)"
  fi
  # Once, here: the requests below run in command substitutions, which inherit the password but cannot keep it.
  cib_ecr_password "$host"
  local raw tag
  raw=$(cib_image_tag)
  tag=$(cib_branch_tag "$raw")
  cib_state_set IMAGE_TAG "$tag"
  cib_state_set IMAGE_URI "$APP_REPOSITORY_URI:$tag"
  cib_state_set IMAGE_DIGEST ''
  cib_state_set IMAGE_REUSED false
  cib_state_set CIB_MERGED ''
  local dir="$CIB_WORK_DIR/merge" digest status=0
  rm -rf "$dir" && mkdir -p "$dir"
  # A Docker manifest list names Docker manifests; OCI manifests (BuildKit's oci-mediatypes, buildah's default) need an OCI index.
  local index_type=application/vnd.docker.distribution.manifest.list.v2+json entries='' sep='' merged='' i=0
  local ref code media size os arch variant ours existing
  for p in \${CIB_MERGE_LIST[@]+"\${CIB_MERGE_LIST[@]}"}; do
    i=$((i + 1))
    ref="$APP_REPOSITORY_URI:$(cib_platform_tag "$raw" "$p")"
    code=$(cib_registry_curl "$ref" -D "$dir/$i.headers" -o "$dir/$i.json" -w '%{http_code}') || code=000
    [ "$code" = 200 ] || cib_die "the $p image $ref could not be read (HTTP $code): the merge runs after every platform's build has pushed its image"
    # Media types are case-insensitive and may carry parameters (RFC 9110 8.3.1).
    media=$(cib_content_type "$dir/$i.headers")
    case "$media" in
      application/vnd.oci.image.manifest.v1+json) index_type=application/vnd.oci.image.index.v1+json ;;
      application/vnd.docker.distribution.manifest.v2+json) ;;
      *) cib_die "the $p image $ref is '$media', not one platform's image manifest: an index cannot hold an index" ;;
    esac
    size=$(wc -c < "$dir/$i.json")
    digest="sha256:$(sha256sum "$dir/$i.json" | cut -d ' ' -f 1)"
    IFS=/ read -r os arch variant <<< "$p"
    entries="$entries$sep{\\"mediaType\\":\\"$media\\",\\"size\\":$size,\\"digest\\":\\"$digest\\","
    entries="$entries\\"platform\\":{\\"architecture\\":\\"$arch\\",\\"os\\":\\"$os\\"\${variant:+,\\"variant\\":\\"$variant\\"}}}"
    sep=','
    merged="\${merged:+$merged }$p=$digest"
    cib_log "$p: $ref ($digest)"
  done
  printf '{"schemaVersion":2,"mediaType":"%s","manifests":[%s]}' "$index_type" "$entries" > "$dir/index.json"
  ours="sha256:$(sha256sum "$dir/index.json" | cut -d ' ' -f 1)"
  cib_state_set CIB_MERGED "$merged"
  # The index's bytes follow from the platform images: a re-run of the commit makes the same index, and finds it under the tag.
  if [ "$CIB_REUSE_EXISTING_IMAGE" = true ]; then
    existing=$(cib_remote_digest "$IMAGE_URI") || status=$?
    case "$status" in
      0)
        [ "$existing" = "$ours" ] || cib_die "$IMAGE_URI already names $existing, not the index of these platform images ($ours):" \\
          "a tag names one image (an earlier build of this commit, single-platform or of other platforms?); build under another IMAGE_TAG"
        cib_state_set IMAGE_REUSED true
        cib_state_set IMAGE_DIGEST "$ours"
        cib_log "index $IMAGE_URI already exists ($ours): reused, nothing merged"
        cib_merge_report
        return 0 ;;
      1) ;;
      *) cib_log "could not tell whether $IMAGE_URI already exists: merging" ;;
    esac
  fi
  code=$(cib_registry_curl "$IMAGE_URI" -X PUT -H "Content-Type: $index_type" --data-binary "@$dir/index.json" -o "$dir/put.out" \\
    -w '%{http_code}') || code=000
  [ "$code" = 201 ] || cib_die "the index $IMAGE_URI could not be pushed (HTTP $code): $(head -c 300 "$dir/put.out" 2>/dev/null || true)"
  cib_state_set IMAGE_DIGEST "$ours"
  cib_log "index $IMAGE_URI ($IMAGE_DIGEST): \${#CIB_MERGE_LIST[@]} platforms"
  cib_merge_report
}

# The merge's summary, cache-report.json (no cache: the platform builds report theirs), exports and artifacts.
cib_merge_report() {
  local seconds entry platforms='' sep='' verdict
  seconds=$(( $(date +%s) - CIB_STARTED_AT ))
  cib_state_set BUILD_SECONDS "$seconds"
  if [ "$IMAGE_REUSED" = true ]; then
    verdict="index reused: $IMAGE_URI already existed ($IMAGE_DIGEST), nothing merged"
  else
    verdict="index merged: $IMAGE_URI ($IMAGE_DIGEST) names \${CIB_MERGED// /, }"
  fi
  for entry in $CIB_MERGED; do
    platforms="$platforms$sep{\\"platform\\":$(cib_json_string "\${entry%%=*}"),\\"digest\\":$(cib_json_string "\${entry#*=}")}"
    sep=','
  done
  printf '\\n==== cached-build merge (%s) ====\\n%s\\n\\n' "$CIB_STRATEGY" "$verdict" >&2
  printf '{"strategy":"%s","merge":true,"image":%s,"digest":%s,"reused":%s,"platforms":[%s],"buildSeconds":%s,"verdict":%s}\\n' \\
    "$CIB_STRATEGY" "$(cib_json_string "$IMAGE_URI")" "$(cib_json_string "$IMAGE_DIGEST")" "$IMAGE_REUSED" "$platforms" "$seconds" \\
    "$(cib_json_string "$verdict")" > "$CIB_WORK_DIR/cache-report.json"
  cib_write_exports
  if [ -n "\${CIB_ARTIFACTS_DIR:-}" ]; then cib_write_artifacts "$CIB_ARTIFACTS_DIR"; fi
  if [ -z "\${CODEBUILD_BUILD_ID:-}" ]; then cat "$CIB_WORK_DIR/exports.env"; fi
}`;
