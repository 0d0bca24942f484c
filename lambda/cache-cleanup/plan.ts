/**
 * The eviction planner: which images of the cache repository to keep and which to delete, and why.
 * Pure (no SDK, no clock, no I/O) so that every rule is tested without mocks; the handler feeds it what the
 * adapters read. Linear in images + index edges, plus two sorts, so 100,000 images plan in well under a second.
 */
import { DeleteReason, KeepReason, ResolvedCleanupPolicy } from './contract';

/** One manifest of the cache repository, as the ECR adapter reports it. Times are epoch milliseconds. */
export interface CacheImage {
  readonly digest: string;
  /** Empty when untagged. Tags are unique within a repository. */
  readonly tags: readonly string[];
  /** As ECR reports it; for an index that is the size of its largest child. */
  readonly sizeBytes: number;
  /** `Infinity` when ECR did not say: an image of unknown age counts as just pushed. */
  readonly pushedAt: number;
  /** ECR's last recorded pull, if any. */
  readonly lastPulledAt?: number;
  /** An OCI image index or Docker manifest list. */
  readonly isIndex: boolean;
  /** Digests an index references. Undefined for an index whose manifest could not be read (and for non-indexes). */
  readonly children?: readonly string[];
}

/** What the build history says about cache refs. */
export interface BuildUsage {
  /** False when the history could not be read: the planner then fails safe. */
  readonly historyAvailable: boolean;
  /** Tag → the latest time (epoch ms) a build read or wrote it. */
  readonly lastUseByTag: ReadonlyMap<string, number>;
}

/** The planner input when the build history is unreadable. */
export const HISTORY_UNAVAILABLE: BuildUsage = { historyAvailable: false, lastUseByTag: new Map() };

interface EntryBase {
  readonly image: CacheImage;
  /** Latest of build use, last recorded pull (when trusted) and push, epoch ms. */
  readonly lastUse: number;
  /** Bytes this image adds to the repository total (0 for an index whose children are listed separately). */
  readonly bytes: number;
}
export interface KeepEntry extends EntryBase { readonly reason: KeepReason }
export interface DeleteEntry extends EntryBase { readonly reason: DeleteReason }

export interface Plan {
  readonly keep: KeepEntry[];
  readonly delete: DeleteEntry[];
}

const FAMILY_SEPARATOR = '--';

/** 64 lowercase hex characters; a loop, because a regex here showed up in the 100k-image profile. */
function isBuildahStepTag(tag: string): boolean {
  if (tag.length !== 64) return false;
  for (let i = 0; i < 64; i++) {
    const c = tag.charCodeAt(i);
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) return false;
  }
  return true;
}

/**
 * The branch ref family a tag belongs to (`T` for `T` and `T--<suffix>`), or undefined for a buildah step
 * tag, which is content-addressed and shared by all branches.
 */
export function refFamily(tag: string): string | undefined {
  if (isBuildahStepTag(tag)) return undefined;
  const at = tag.indexOf(FAMILY_SEPARATOR);
  return at > 0 ? tag.slice(0, at) : tag;
}

/**
 * Bytes an image adds to the repository total. ECR reports an index's size as its largest child's, and the
 * children are listed as images of their own, so an index whose children are known adds nothing.
 */
export function accountedBytes(image: CacheImage): number {
  return image.isIndex && image.children !== undefined ? 0 : image.sizeBytes;
}

/**
 * Decides, for every image, keep or delete with a reason.
 *
 * - A tag is alive when a build read or wrote it, ECR recorded a pull, or it was pushed, within the idle timeout.
 *   Pulls of indexes count only with `trustIndexPullTime` (this function's own BatchGetImage records one).
 * - The newest image of the default branch's ref family is always kept.
 * - Each ref family keeps its `maxRefsPerBranch` most recently used refs; buildah step tags have no family.
 * - Untagged manifests live for the grace period after their push or last pull.
 * - Whatever a kept index references is kept; while a kept index could not be read, nothing is deleted.
 * - Over `maxCacheBytes`, the least recently used alive images are evicted (with what only they kept) until under budget.
 * - Without build history (fail safe) every tagged image is kept; only unreferenced untagged manifests past grace go.
 *
 * An image shares the fate of all its tags: it is kept when any of them is.
 *
 * @param now epoch milliseconds
 */
export function plan(images: readonly CacheImage[], usage: BuildUsage, policy: ResolvedCleanupPolicy, now: number): Plan {
  const n = images.length;
  const idleCutoff = now - policy.idleTimeoutSeconds * 1000;
  const graceCutoff = now - policy.untaggedGracePeriodSeconds * 1000;
  const failSafe = !usage.historyAvailable;

  const indexOf = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    if (indexOf.has(images[i].digest)) throw new Error(`plan: duplicate image digest ${images[i].digest}`);
    indexOf.set(images[i].digest, i);
  }

  // Index → child edges in compressed arrays: 100k images must not mean 100k small arrays.
  const childStart = new Int32Array(n + 1);
  const childList: number[] = [];
  const unknownChildren = new Uint8Array(n);
  const bytes = new Float64Array(n);
  const ownUse = new Float64Array(n);
  const lastUse = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const image = images[i];
    childStart[i] = childList.length;
    if (image.isIndex) {
      if (image.children === undefined) {
        unknownChildren[i] = 1;
      } else {
        for (const d of image.children) {
          const j = indexOf.get(d);
          if (j !== undefined && j !== i) childList.push(j);
        }
      }
    }
    bytes[i] = accountedBytes(image);
    const pulled = image.isIndex && !policy.trustIndexPullTime ? undefined : image.lastPulledAt;
    ownUse[i] = Math.max(image.pushedAt, pulled ?? -Infinity);
    let use = ownUse[i];
    for (const tag of image.tags) use = Math.max(use, usage.lastUseByTag.get(tag) ?? -Infinity);
    lastUse[i] = use;
  }
  childStart[n] = childList.length;

  const tagUse = (i: number, tag: string): number => Math.max(ownUse[i], usage.lastUseByTag.get(tag) ?? -Infinity);
  const refs = collectRefs(images, refFamily(policy.defaultBranchTag), policy.defaultBranchTag, tagUse);
  const newestDefault = refs.newestDefault;
  const overMaxRefs = failSafe || policy.maxRefsPerBranch === undefined
    ? new Set<string>()
    : tagsOverMaxRefs(refs.families, policy.maxRefsPerBranch);

  const ownKeep: (KeepReason | undefined)[] = new Array(n);
  const deadReason: (DeleteReason | undefined)[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const image = images[i];
    if (image.tags.length === 0) {
      if (ownUse[i] >= graceCutoff) ownKeep[i] = KeepReason.UNTAGGED_IN_GRACE;
      else deadReason[i] = DeleteReason.UNTAGGED_PAST_GRACE;
    } else if (i === newestDefault) {
      ownKeep[i] = KeepReason.NEWEST_DEFAULT_BRANCH;
    } else if (failSafe) {
      ownKeep[i] = KeepReason.HISTORY_UNAVAILABLE;
    } else {
      let alive = false;
      let cutByLimit = false;
      for (const tag of image.tags) {
        const recent = tagUse(i, tag) >= idleCutoff;
        if (recent && overMaxRefs.has(tag)) cutByLimit = true;
        else if (recent) alive = true;
      }
      if (alive) ownKeep[i] = KeepReason.RECENTLY_USED;
      else deadReason[i] = cutByLimit ? DeleteReason.OVER_MAX_REFS : DeleteReason.IDLE;
    }
  }

  // Layer A: images kept in their own right and everything they reference, with reference counts so that a
  // budget eviction releases exactly what only it kept. Content addressing makes these references acyclic.
  const inA = new Uint8Array(n);
  const parentsKept = new Int32Array(n);
  // Layer B: an index in A that could not be read might reference any image, so while there is one, every image
  // is kept. The switch depends on A only, never on B, so no image can keep itself alive through it.
  let unknownInA = 0;
  const freedByBudget = new Uint8Array(n);
  let keptBytes = 0;
  const counted = (i: number): boolean => inA[i] === 1 || unknownInA > 0;
  const switchB = (on: boolean): void => {
    for (let i = 0; i < n; i++) {
      if (inA[i]) continue;
      keptBytes += on ? bytes[i] : -bytes[i];
      if (!on) freedByBudget[i] = 1;
    }
  };

  const work: number[] = [];
  const enterA = (i: number): void => {
    if (inA[i]) return;
    if (!counted(i)) keptBytes += bytes[i];
    inA[i] = 1;
    if (unknownChildren[i] && ++unknownInA === 1) switchB(true);
    work.push(i);
  };
  for (let i = 0; i < n; i++) if (ownKeep[i] !== undefined) enterA(i);
  while (work.length > 0) {
    const i = work.pop()!;
    for (let k = childStart[i]; k < childStart[i + 1]; k++) {
      parentsKept[childList[k]]++;
      enterA(childList[k]);
    }
  }

  const leaveA = (start: number): void => {
    const drop = (i: number): void => {
      inA[i] = 0;
      if (!counted(i)) {
        keptBytes -= bytes[i];
        freedByBudget[i] = 1;
      }
      if (unknownChildren[i] && --unknownInA === 0) switchB(false);
      work.push(i);
    };
    drop(start);
    while (work.length > 0) {
      const i = work.pop()!;
      for (let k = childStart[i]; k < childStart[i + 1]; k++) {
        const j = childList[k];
        if (--parentsKept[j] === 0 && inA[j] && ownKeep[j] === undefined) drop(j);
      }
    }
  };

  if (policy.maxCacheBytes !== undefined && keptBytes > policy.maxCacheBytes) {
    const candidates: number[] = [];
    for (let i = 0; i < n; i++) if (ownKeep[i] === KeepReason.RECENTLY_USED) candidates.push(i);
    candidates.sort((a, b) => lastUse[a] - lastUse[b] || compareStrings(images[a].digest, images[b].digest));
    for (const c of candidates) {
      if (keptBytes <= policy.maxCacheBytes) break;
      ownKeep[c] = undefined;
      if (parentsKept[c] === 0) leaveA(c);
    }
  }

  const result: Plan = { keep: [], delete: [] };
  for (let i = 0; i < n; i++) {
    // Object literals of one shape, not spreads: this loop allocates 100k entries and dominated the profile.
    if (counted(i)) {
      const reason = ownKeep[i] ?? (parentsKept[i] > 0 ? KeepReason.CHILD_OF_KEPT_INDEX : KeepReason.INDEX_CHILDREN_UNKNOWN);
      result.keep.push({ image: images[i], lastUse: lastUse[i], bytes: bytes[i], reason });
    } else {
      const reason = freedByBudget[i] ? DeleteReason.OVER_BUDGET : deadReason[i]!;
      result.delete.push({ image: images[i], lastUse: lastUse[i], bytes: bytes[i], reason });
    }
  }
  return result;
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

interface Ref {
  readonly tag: string;
  readonly use: number;
}

/**
 * One pass over every tag: the refs of each branch family, and the newest (by push) image carrying a tag of the
 * default family (on a tie, the one carrying the exact default tag).
 */
function collectRefs(
  images: readonly CacheImage[], defaultFamily: string | undefined, exactDefault: string, tagUse: (i: number, tag: string) => number,
): { families: Map<string, Ref[]>; newestDefault: number } {
  const families = new Map<string, Ref[]>();
  let best = -1;
  let bestExact = false;
  for (let i = 0; i < images.length; i++) {
    for (const tag of images[i].tags) {
      const family = refFamily(tag);
      if (family === undefined) continue;
      let refs = families.get(family);
      if (!refs) families.set(family, refs = []);
      refs.push({ tag, use: tagUse(i, tag) });
      if (family !== defaultFamily) continue;
      const exact = tag === exactDefault;
      const pushed = images[i].pushedAt;
      if (best < 0 || pushed > images[best].pushedAt || (pushed === images[best].pushedAt && exact && !bestExact)) {
        best = i;
        bestExact = exact;
      }
    }
  }
  return { families, newestDefault: best };
}

/** Tags ranked below the `max` most recently used refs of their family. */
function tagsOverMaxRefs(families: Map<string, Ref[]>, max: number): Set<string> {
  const over = new Set<string>();
  for (const refs of families.values()) {
    if (refs.length <= max) continue;
    refs.sort((a, b) => b.use - a.use || compareStrings(a.tag, b.tag));
    for (let k = max; k < refs.length; k++) over.add(refs[k].tag);
  }
  return over;
}
