/**
 * When did an untagged manifest lose its tag? ECR does not say: DescribeImages reports the push and the last recorded pull
 * (refreshed only about once a day, ECR12), and a manifest whose tag moved a minute ago may have been pushed weeks ago. Builds
 * that resolved the tag before it moved may still be fetching that manifest, so the untagged grace must run from the move.
 *
 * The build history says when refs moved: a build that exported CACHE_REF_WRITTEN=R moved R to a new manifest between its
 * start and its end, and the image now tagged R was pushed when R last moved. Pure: images + usage in, one time per image out.
 *
 * For an untagged manifest pushed at `p`:
 * - pushed while builds that wrote refs were running (the usual case: the build that wrote it): it held one of their refs R, and
 *   lost it at R's first move after `p`, no later than the end of any build that wrote R and started after `p`, and no later
 *   than the push of R's current manifest if that came after `p`. The estimate is the latest such bound over those refs;
 * - pushed before the history began: it may have lost its tag at the first move of any ref within the history that other
 *   builds could have been reading at the time (see usage.ts `sharedFirstMoves`): the latest of those;
 * - pushed within the history while no build of the project ran (another project or a person pushed it): nothing says when it
 *   lost its tag; its grace runs from its push, as ECR's own lifecycle rules would;
 * - without the history (fail safe): a tag moves only with a push, so it lost its tag no later than the latest push of a
 *   tagged image (when that came after its own).
 * Every estimate is an upper bound on the real time, so the grace can only be longer than exact, never shorter.
 */
import { CacheImage } from './plan';
import { BuildUsage } from './usage';

/** Tolerated skew between ECR's push times and CodeBuild's build times. */
export const CLOCK_SKEW_MS = 60_000;

/** First index in ascending `values` whose value is greater than `x`. */
function upperBound(values: ArrayLike<number>, x: number): number {
  let lo = 0;
  let hi = values.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (values[mid] <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** For each image, the latest time it can have lost its tag (epoch ms), or -Infinity (tagged, or nothing says). */
export function untagTimes(images: readonly CacheImage[], usage: BuildUsage): Float64Array {
  const n = images.length;
  const out = new Float64Array(n).fill(-Infinity);
  if (!usage.historyAvailable) {
    let latest = -Infinity;
    for (const image of images) if (image.tags.length > 0 && Number.isFinite(image.pushedAt)) latest = Math.max(latest, image.pushedAt);
    for (let i = 0; i < n; i++) if (images[i].tags.length === 0 && images[i].pushedAt < latest) out[i] = latest;
    return out;
  }
  const writes = usage.writes ?? [];
  let preHistory = -Infinity;
  for (const end of usage.sharedFirstMoves?.values() ?? []) preHistory = Math.max(preHistory, end);
  if (writes.length === 0 && preHistory === -Infinity) return out;

  const holderPush = new Map<string, number>();
  for (const image of images) for (const tag of image.tags) holderPush.set(tag, image.pushedAt);

  // Per ref: its writers' starts (ascending) and the least end among the writers from each one on.
  const byRef = new Map<string, { starts: number[]; leastEnd: number[] }>();
  const starts = new Float64Array(writes.length);
  let longest = 0;
  for (let k = 0; k < writes.length; k++) {
    const w = writes[k];
    starts[k] = w.start;
    longest = Math.max(longest, w.end - w.start);
    for (const ref of w.refs) {
      let e = byRef.get(ref);
      if (!e) byRef.set(ref, e = { starts: [], leastEnd: [] });
      e.starts.push(w.start);
      e.leastEnd.push(w.end);
    }
  }
  for (const e of byRef.values()) for (let k = e.leastEnd.length - 2; k >= 0; k--) e.leastEnd[k] = Math.min(e.leastEnd[k], e.leastEnd[k + 1]);

  /** The latest time `ref` can first have moved after `p`, or -Infinity when nothing says it moved. */
  const moveAfter = (ref: string, p: number): number => {
    let bound = Infinity;
    const e = byRef.get(ref);
    if (e) {
      const k = upperBound(e.starts, p);
      if (k < e.starts.length) bound = e.leastEnd[k];
    }
    // The current manifest of `ref` was pushed when it last moved: a build still running may have moved it.
    const held = holderPush.get(ref);
    if (held !== undefined && held > p) bound = Math.min(bound, held);
    return bound === Infinity ? -Infinity : bound;
  };

  const completeSince = usage.completeSince ?? -Infinity;
  for (let i = 0; i < n; i++) {
    const image = images[i];
    const p = image.pushedAt;
    if (image.tags.length > 0 || !Number.isFinite(p)) continue;
    let found = false;
    let estimate = -Infinity;
    // Writers running at p: started by p (with skew), ended after it. None ran longer than `longest`.
    for (let k = upperBound(starts, p + CLOCK_SKEW_MS) - 1; k >= 0 && starts[k] >= p - longest - CLOCK_SKEW_MS; k--) {
      if (writes[k].end < p - CLOCK_SKEW_MS) continue;
      found = true;
      for (const ref of writes[k].refs) estimate = Math.max(estimate, moveAfter(ref, p));
    }
    // Near the start of the history a build running at p may be one that was not read: treat p as before the history.
    if (!found && p < completeSince + longest + CLOCK_SKEW_MS) estimate = preHistory;
    out[i] = estimate;
  }
  return out;
}
