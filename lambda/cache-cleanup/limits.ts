/**
 * The blast-radius limits applied to a plan before anything is deleted: a per-run cap and a guard against
 * deleting a large fraction of the repository's refs at once (the signature of a wrong default branch, a
 * broken history or a skewed clock rather than of real churn).
 */
import { KeepReason, ResolvedCleanupPolicy } from './contract';
import { CacheImage, DeleteEntry, KeepEntry, Plan } from './plan';

export interface LimitedPlan {
  readonly plan: Plan;
  /** Why the run's deletions were refused, when they were. */
  readonly refused?: string;
}

/** An index that might reference anything: unreadable, or being restored. An archived one pins nothing (see plan.ts). */
const pinsAll = (image: CacheImage): boolean => image.isIndex && image.children === undefined && image.status !== 'ARCHIVED';
const unreadable = (e: DeleteEntry): number => Number(pinsAll(e.image));

function compareForCap(a: DeleteEntry, b: DeleteEntry): number {
  // Unreadable indexes first: deferring one defers everything, and would do so again on every run.
  // Then oldest first; at equal age an index before its children, so that the cap does not split them needlessly.
  return unreadable(b) - unreadable(a) || a.lastUse - b.lastUse || Number(b.image.isIndex) - Number(a.image.isIndex)
    || (a.image.digest < b.image.digest ? -1 : 1);
}

/**
 * Caps the deletions at `maxDeletesPerRun` (oldest first; the rest are kept as `deferred-run-cap`, together
 * with anything a deferred index references, or everything if that index could not be read, so no kept index
 * loses a child), then refuses the whole run when it would delete more than `maxDeleteFraction` of the tagged
 * images and `allowLargeDeletes` is off.
 */
export function limitDeletes(planned: Plan, policy: ResolvedCleanupPolicy): LimitedPlan {
  let selected = planned.delete;
  const deferred: KeepEntry[] = [];
  if (selected.length > policy.maxDeletesPerRun) {
    const ordered = [...selected].sort(compareForCap);
    const chosen = new Map(ordered.slice(0, policy.maxDeletesPerRun).map(e => [e.image.digest, e]));
    const queue = ordered.slice(policy.maxDeletesPerRun);
    const defer = (e: DeleteEntry): void => {
      chosen.delete(e.image.digest);
      queue.push(e);
    };
    for (let k = 0; k < queue.length; k++) {
      const e = queue[k];
      deferred.push({ image: e.image, lastUse: e.lastUse, bytes: e.bytes, reason: KeepReason.DEFERRED_RUN_CAP });
      if (!e.image.isIndex) continue;
      if (pinsAll(e.image)) {
        for (const other of [...chosen.values()]) defer(other);
      } else {
        for (const d of e.image.children ?? []) {
          const child = chosen.get(d);
          if (child) defer(child);
        }
      }
    }
    selected = [...chosen.values()];
  }

  const tagged = planned.keep.filter(e => e.image.tags.length > 0).length + planned.delete.filter(e => e.image.tags.length > 0).length;
  const taggedDeletes = selected.filter(e => e.image.tags.length > 0).length;
  if (!policy.allowLargeDeletes && taggedDeletes > policy.maxDeleteFraction * tagged) {
    const refused = `would delete ${taggedDeletes} of ${tagged} tagged images (${(100 * taggedDeletes / tagged).toFixed(1)}%), `
      + `more than maxDeleteFraction ${policy.maxDeleteFraction}: nothing deleted; set allowLargeDeletes to let it through`;
    const held = selected.map(e => ({ image: e.image, lastUse: e.lastUse, bytes: e.bytes, reason: KeepReason.REFUSED_LARGE_DELETE }));
    return { plan: { keep: [...planned.keep, ...deferred, ...held], delete: [] }, refused };
  }
  return { plan: { keep: deferred.length > 0 ? [...planned.keep, ...deferred] : planned.keep, delete: selected } };
}
