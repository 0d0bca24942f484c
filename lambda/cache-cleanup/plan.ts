/**
 * The eviction planner: which images of the cache repository to keep and which to delete, and why.
 * Pure (no SDK, no clock, no I/O) so that every rule is tested without mocks; the handler feeds it what the
 * adapters read. Linear in images + index edges, plus a few sorts, so 100,000 images plan in well under a second.
 */
import { DeleteReason, ECR_ARCHIVE_MINIMUM_STORAGE_SECONDS, KeepReason, ResolvedCleanupPolicy } from './contract';
import { untagTimes } from './untag-time';
import { BuildUsage } from './usage';

/** ECR's imageStatus (ImageDetail). ARCHIVED images cannot be pulled; ACTIVATING ones are being restored. */
export type ImageStatus = 'ACTIVE' | 'ARCHIVED' | 'ACTIVATING';

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
  /** @default 'ACTIVE' */
  readonly status?: ImageStatus;
  /** When ECR last moved it to the archive; unknown counts as just archived. */
  readonly lastArchivedAt?: number;
  /** When ECR last restored it from the archive: "restored images behave like newly pushed images", so it counts as a use. */
  readonly lastActivatedAt?: number;
}

interface EntryBase {
  readonly image: CacheImage;
  /** Latest of build use, last recorded pull (when trusted), push and restore, epoch ms. */
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

/**
 * Bytes an image adds to the repository total. ECR reports an index's size as its largest child's, and the
 * children are listed as images of their own, so an index whose children are known adds nothing.
 */
export function accountedBytes(image: CacheImage): number {
  return image.isIndex && image.children !== undefined ? 0 : image.sizeBytes;
}

const EMPTY_SET: ReadonlySet<string> = new Set();

/**
 * Decides, for every image, keep or delete with a reason.
 *
 * - A tag is alive when a build read or wrote it, ECR recorded a pull, or it was pushed or restored, within the idle timeout.
 *   Pulls of indexes count only with `trustIndexPullTime` (this function's own BatchGetImage records one).
 * - Never deleted: the image tagged with the default branch's tag; images carrying a ref the newest successful default-branch
 *   build used (buildah: its step tags); images carrying a ref a running build reads or is about to.
 * - Untagged manifests live for the grace period after they lost their tag (estimated from the build history, see
 *   untag-time.ts), were pushed or were pulled.
 * - Archived images cannot be pulled: they are no cache, whatever the builds read. They are kept until ECR's 90-day minimum
 *   storage has passed (deleting sooner is billed the same) and pin nothing; their bytes are not cache bytes.
 *   Images being restored are kept.
 * - Whatever a kept index references is kept; while a kept index could not be read, nothing is deleted.
 * - Over `maxCacheBytes`, the least recently used alive images are evicted (with what only they kept) until under budget.
 *   A buildah step is no more useful than the steps below it (buildah stops looking for cache at the first miss), so it
 *   counts as used no later than they were, and on a tie the deepest step goes first: what is kept stays reachable.
 *   Evictions that freed nothing because an unreadable index pinned the bytes are taken back once the index is gone.
 * - Without build history (fail safe) every tagged image is kept; only unreferenced untagged manifests past grace go, the
 *   grace then running from the latest push of a tagged image (any push may have moved their tag).
 *
 * An image shares the fate of all its tags: it is kept when any of them is.
 *
 * @param now epoch milliseconds
 */
export function plan(images: readonly CacheImage[], usage: BuildUsage, policy: ResolvedCleanupPolicy, now: number): Plan {
  const n = images.length;
  const idleCutoff = now - policy.idleTimeoutSeconds * 1000;
  const graceCutoff = now - policy.untaggedGracePeriodSeconds * 1000;
  const archiveCutoff = now - ECR_ARCHIVE_MINIMUM_STORAGE_SECONDS * 1000;
  const failSafe = !usage.historyAvailable;
  const defaultRefs = usage.defaultBranchRefs ?? EMPTY_SET;
  const inUse = usage.refsInUse ?? EMPTY_SET;

  const indexOf = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    if (indexOf.has(images[i].digest)) throw new Error(`plan: duplicate image digest ${images[i].digest}`);
    indexOf.set(images[i].digest, i);
  }
  const untagged = untagTimes(images, usage);

  // Index → child edges in compressed arrays: 100k images must not mean 100k small arrays.
  const childStart = new Int32Array(n + 1);
  const childList: number[] = [];
  const unknownChildren = new Uint8Array(n);
  const bytes = new Float64Array(n);
  const cacheBytes = new Float64Array(n);
  const ownUse = new Float64Array(n);
  const lastUse = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const image = images[i];
    const archived = image.status === 'ARCHIVED';
    childStart[i] = childList.length;
    // An archived index was not read (it cannot be pulled) and serves no build: it keeps nothing alive, and pins nothing.
    if (image.isIndex && !archived) {
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
    cacheBytes[i] = archived ? 0 : bytes[i];
    const pulled = image.isIndex && !policy.trustIndexPullTime ? undefined : image.lastPulledAt;
    ownUse[i] = Math.max(image.pushedAt, pulled ?? -Infinity, image.lastActivatedAt ?? -Infinity);
    let use = ownUse[i];
    for (const tag of image.tags) use = Math.max(use, usage.lastUseByTag.get(tag) ?? -Infinity);
    lastUse[i] = use;
  }
  childStart[n] = childList.length;

  const ownKeep: (KeepReason | undefined)[] = new Array(n);
  const deadReason: (DeleteReason | undefined)[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const image = images[i];
    const status = image.status ?? 'ACTIVE';
    if (status === 'ARCHIVED') {
      if ((image.lastArchivedAt ?? Infinity) > archiveCutoff) ownKeep[i] = KeepReason.ARCHIVED_MINIMUM_STORAGE;
      else deadReason[i] = DeleteReason.ARCHIVED;
    } else if (status === 'ACTIVATING') {
      ownKeep[i] = KeepReason.RESTORING;
    } else if (image.tags.length === 0) {
      if (Math.max(ownUse[i], untagged[i]) >= graceCutoff) ownKeep[i] = KeepReason.UNTAGGED_IN_GRACE;
      else deadReason[i] = DeleteReason.UNTAGGED_PAST_GRACE;
    } else if (carries(image, policy.defaultBranchTag, defaultRefs)) {
      ownKeep[i] = KeepReason.NEWEST_DEFAULT_BRANCH;
    } else if (carries(image, undefined, inUse)) {
      ownKeep[i] = KeepReason.IN_USE_BY_RUNNING_BUILD;
    } else if (failSafe) {
      ownKeep[i] = KeepReason.HISTORY_UNAVAILABLE;
    } else if (lastUse[i] >= idleCutoff) {
      // An image is alive when any of its tags is: lastUse is the latest over them.
      ownKeep[i] = KeepReason.RECENTLY_USED;
    } else {
      deadReason[i] = DeleteReason.IDLE;
    }
  }

  // Without the build history, or when it names no write, the push of a tagged image may be all that says when an untagged
  // manifest lost its tag (untag-time.ts). Deleting that image would make the next run forget it, and cut the grace short:
  // while such a grace runs, the image whose push bounds it stays.
  const bounds = new Set<number>();
  for (let i = 0; i < n; i++) if (ownKeep[i] === KeepReason.UNTAGGED_IN_GRACE && ownUse[i] < graceCutoff) bounds.add(untagged[i]);
  if (bounds.size > 0) {
    for (let i = 0; i < n; i++) {
      if (deadReason[i] !== undefined && images[i].tags.length > 0 && bounds.has(images[i].pushedAt)) {
        deadReason[i] = undefined;
        ownKeep[i] = KeepReason.UNTAG_TIME_EVIDENCE;
      }
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
      keptBytes += on ? cacheBytes[i] : -cacheBytes[i];
      if (!on) freedByBudget[i] = 1;
    }
  };

  const work: number[] = [];
  const enterA = (i: number): void => {
    if (inA[i]) return;
    if (!counted(i)) keptBytes += cacheBytes[i];
    inA[i] = 1;
    if (unknownChildren[i] && ++unknownInA === 1) switchB(true);
    work.push(i);
  };
  const spreadA = (): void => {
    while (work.length > 0) {
      const i = work.pop()!;
      for (let k = childStart[i]; k < childStart[i + 1]; k++) {
        parentsKept[childList[k]]++;
        enterA(childList[k]);
      }
    }
  };
  for (let i = 0; i < n; i++) if (ownKeep[i] !== undefined) enterA(i);
  spreadA();

  const leaveA = (start: number): void => {
    const drop = (i: number): void => {
      inA[i] = 0;
      if (!counted(i)) {
        keptBytes -= cacheBytes[i];
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

  const budget = failSafe ? undefined : policy.maxCacheBytes;
  if (budget !== undefined && keptBytes > budget) {
    const candidates: number[] = [];
    for (let i = 0; i < n; i++) if (ownKeep[i] === KeepReason.RECENTLY_USED) candidates.push(i);
    const { effectiveUse, depth } = stepOrder(images, usage, ownKeep, lastUse);
    candidates.sort((a, b) => effectiveUse[a] - effectiveUse[b] || depth[b] - depth[a] || compareStrings(images[a].digest, images[b].digest));
    const evicted: number[] = [];
    for (const c of candidates) {
      if (keptBytes <= budget) break;
      ownKeep[c] = undefined;
      evicted.push(c);
      if (parentsKept[c] === 0) leaveA(c);
    }
    // While an unreadable index was kept, evictions freed nothing: once it went, all of them took effect at once. Take back,
    // most recently used first, those the budget does not need; the first one it does need ends it (the evicted stay a prefix
    // of the eviction order). An image whose return would bring an unreadable index back is not taken back.
    for (let k = evicted.length - 1; k >= 0; k--) {
      const c = evicted[k];
      // Still a kept index's child, or pinned by an unreadable index that cannot go: it stays, and its reason says why.
      if (inA[c] || unknownInA > 0) continue;
      if (unknownChildren[c]) continue;
      ownKeep[c] = KeepReason.RECENTLY_USED;
      enterA(c);
      spreadA();
      if (unknownInA === 0 && keptBytes <= budget) continue;
      const pinned = unknownInA > 0;
      ownKeep[c] = undefined;
      leaveA(c);
      if (!pinned) break;
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

/** Whether the image carries `tag` or one of `refs`. A loop: it runs for every tagged image of 100k. */
function carries(image: CacheImage, tag: string | undefined, refs: ReadonlySet<string>): boolean {
  for (const t of image.tags) if (t === tag || refs.has(t)) return true;
  return false;
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The budget's eviction order for buildah steps. buildah looks for cache step by step and stops at the first miss, so a step
 * is of use only while every step below it is there: it counts as used no later than the step below it (unless that one is
 * kept whatever happens), and its depth breaks ties, deepest first. Steps are visited by increasing depth, and a link is
 * followed only downwards, so inconsistent links from different builds cannot loop.
 */
function stepOrder(
  images: readonly CacheImage[], usage: BuildUsage, ownKeep: readonly (KeepReason | undefined)[], lastUse: Float64Array,
): { effectiveUse: Float64Array; depth: Int32Array } {
  const n = images.length;
  const effectiveUse = Float64Array.from(lastUse);
  const depth = new Int32Array(n).fill(-1);
  const steps = usage.steps;
  if (steps === undefined || steps.size === 0) return { effectiveUse, depth };
  const holder = new Map<string, number>();
  const linked: number[] = [];
  const parentOf: (string | undefined)[] = new Array(n);
  for (let i = 0; i < n; i++) {
    for (const tag of images[i].tags) {
      const link = steps.get(tag);
      if (link === undefined) continue;
      holder.set(tag, i);
      if (link.depth > depth[i]) {
        depth[i] = link.depth;
        parentOf[i] = link.parent;
      }
    }
    if (depth[i] >= 0) linked.push(i);
  }
  linked.sort((a, b) => depth[a] - depth[b]);
  for (const i of linked) {
    const parent = parentOf[i] === undefined ? undefined : holder.get(parentOf[i]!);
    if (parent === undefined || depth[parent] >= depth[i]) continue;
    // A parent kept in its own right for another reason (protected, in use, in grace) stays: it does not limit its children.
    const kept = ownKeep[parent] !== undefined && ownKeep[parent] !== KeepReason.RECENTLY_USED;
    if (!kept) effectiveUse[i] = Math.min(effectiveUse[i], effectiveUse[parent]);
  }
  return { effectiveUse, depth };
}
