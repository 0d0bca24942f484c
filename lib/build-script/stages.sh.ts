/**
 * Which stages of a multi-stage Dockerfile the inline strategy caches under refs of their own.
 *
 * Inline cache carries the records of one image: the target's chain of FROM stages. A stage the target only COPYs
 * from (or mounts from) — directly, or through the FROM chain of such a stage — is in no cached image, so every build
 * would run it again (a `deps` stage's `npm ci` on every source change). The inline strategy therefore builds such
 * stages with `--target` and keeps each as an inline-cache image of its own.
 *
 * Every stage the target needs, other than the target itself, gets a ref: the FROM parents and the stages on the
 * target's own chain too, not only the stages at the ends of side chains. An image's FROM chain does not reliably carry
 * the parents' records: on a multi-stage Dockerfile, docker 20.10's BuildKit (0.8) drops at random the records (keeps
 * the key, loses the layer) of steps that were cached in the build that exported the image, except the image's last
 * step. Measured on the M1 project (tools, deps, build FROM deps, runtime FROM tools): 66 of 80 `--target build` exports
 * lost at least one such record (a tools or deps step), 33 of 80 runtime exports lost the tools step's, so a later
 * build re-ran `npm ci`, or the tools step after a dependency change; the last step's record was lost in none of 343
 * exports. A ref per stage keeps each stage's result, the point the later stages build on. What remains: a step inside
 * a stage whose later steps change alone (an edited RUN line) may find its record dropped and run again; bench:real saw
 * that only on a docker that kept BuildKit state from earlier builds, never on a fresh host (README, "The inline miss").
 */

/**
 * Reads a Dockerfile (the default `\` escape; line continuations and comment lines inside them handled) and prints
 * one line per stage the target (`-v target=NAME`, empty for the last stage) needs, other than the target itself, in
 * Dockerfile order (a stage before the stages that use it): `side NAME LABEL...` for a named stage, with the BuildKit
 * log labels of its FROM chain (root first: a stage name, or `stage-N` for an unnamed stage), and `unnamed INDEX` for
 * one only referenced by its index (`--target` cannot name it). Stage names are case-insensitive, as in BuildKit.
 */
export const STAGES_AWK = `
function dep(s, ref,    r) {
  r = tolower(ref)
  if (r in index_of) { deps[s] = deps[s] " " index_of[r]; return }
  if (r ~ /^[0-9]+$/ && r + 0 < s) deps[s] = deps[s] " " (r + 0)
}
function instruction(line,    w, nw, i, k, kw, rest, opts, m, o) {
  nw = split(line, w, /[ \\t]+/)
  k = 1
  if (w[1] == "") k = 2
  kw = toupper(w[k])
  if (kw == "FROM") {
    n++
    for (i = k + 1; i <= nw && w[i] ~ /^--/; i++) { }
    image = w[i]
    dep(n, image)
    parent[n] = (tolower(image) in index_of) ? index_of[tolower(image)] : ((image ~ /^[0-9]+$/ && image + 0 < n) ? image + 0 : -1)
    if (i + 2 <= nw && toupper(w[i + 1]) == "AS") { name[n] = tolower(w[i + 2]); index_of[name[n]] = n }
    return
  }
  if (n < 0) return
  for (i = k + 1; i <= nw && w[i] ~ /^--/; i++) {
    if ((kw == "COPY" || kw == "ADD") && w[i] ~ /^--from=/) dep(n, substr(w[i], 8))
    if (kw == "RUN" && w[i] ~ /^--mount=/) {
      m = split(substr(w[i], 9), opts, ",")
      for (o = 1; o <= m; o++) if (opts[o] ~ /^from=/) dep(n, substr(opts[o], 6))
    }
  }
}
BEGIN { n = -1; cont = "" }
{
  line = $0
  sub(/\\r$/, "", line)
  if (line ~ /^[ \\t]*#/ || line ~ /^[ \\t]*$/) next
  if (line ~ /\\\\$/) { cont = cont substr(line, 1, length(line) - 1) " "; next }
  instruction(cont line)
  cont = ""
}
END {
  if (cont != "") instruction(cont)
  if (n < 0) exit
  t = n
  if (target != "") { t = -1; if (tolower(target) in index_of) t = index_of[tolower(target)] }
  if (t < 0) exit
  # Stages the target needs (its closure).
  need[t] = 1; queue[++q] = t
  while (q > 0) {
    s = queue[q--]
    c = split(deps[s], d, " ")
    for (j = 1; j <= c; j++) if (!(d[j] in need)) { need[d[j]] = 1; queue[++q] = d[j] }
  }
  for (s = 0; s <= n; s++) {
    if (!(s in need) || s == t) continue
    if (!(s in name)) { print "unnamed", s; continue }
    chain = ""
    for (x = s; x >= 0; x = parent[x]) chain = ((x in name) ? name[x] : "stage-" x) " " chain
    print "side", name[s], chain
  }
}`;
