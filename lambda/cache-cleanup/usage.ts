/**
 * What the build history says about cache refs, as the planner needs it. Pure (no SDK): the CodeBuild adapter turns each
 * build into a {@link BuildRecord}; this file derives the planner's {@link BuildUsage} from them.
 *
 * The rules it encodes (CodeBuild's, see test/aws-contract.md CB4, CB10, CB11):
 * - exported variables are final only after post_build: a finished build says which refs it read (CACHE_REFS_READ) and wrote
 *   (CACHE_REF_WRITTEN); a running one says nothing yet, so its refs are inferred from its branch;
 * - a build that reused an existing image (IMAGE_REUSED) used no cache;
 * - for buildah the refs are 64-hex step tags in build order: the steps it pulled, base first, then those it pushed.
 */

/** What one build of the project says about cache refs. Times are epoch milliseconds. */
export interface BuildRecord {
  /** When the build was started; undefined only when CodeBuild did not say. */
  readonly start?: number;
  /** Undefined while the build runs or waits in the queue. */
  readonly end?: number;
  /** buildStatus SUCCEEDED. */
  readonly succeeded: boolean;
  /** The cache tag of the build's branch (the default branch's when the build does not say, as the build script does). */
  readonly branchTag: string;
  /** The branch the build says it builds (source version or CACHE_BRANCH), when it says one. */
  readonly branch?: string;
  /**
   * The cache tag of the default branch of the build's project (each image of a shared cache repository has its own).
   * @default - the `defaultBranchTag` given to usageFromRecords
   */
  readonly defaultBranchTag?: string;
  /**
   * The refs of the same branch of the other images sharing the cache repository (a group's cross-image cache): a running
   * build will read them too, so they are in use while it runs, as its own branch's ref is.
   * @default - none
   */
  readonly siblingBranchTags?: readonly string[];
  /** Exported CACHE_REFS_READ, in order; empty while the build runs. */
  readonly refsRead: readonly string[];
  /** Exported CACHE_REF_WRITTEN, in order; empty while the build runs. */
  readonly refsWritten: readonly string[];
  /** IMAGE_REUSED=true: the build found its image already pushed and built nothing, so it used no cache. */
  readonly reused: boolean;
}

/** A finished build that wrote refs: each of them moved to a new manifest between `start` and `end`. */
export interface RefWrite {
  readonly start: number;
  readonly end: number;
  readonly refs: readonly string[];
}

/** Where a buildah step tag sits in the chain of steps a build used. */
export interface StepLink {
  /** 0 for the first step a build used; a step is reachable only through the steps below it. */
  readonly depth: number;
  /** The step tag one below, when the same build used it. */
  readonly parent?: string;
}

/** The planner's view of the build history. */
export interface BuildUsage {
  /** False when the history could not be read: the planner then fails safe. */
  readonly historyAvailable: boolean;
  /** Tag → the latest time (epoch ms) a finished build read or wrote it. */
  readonly lastUseByTag: ReadonlyMap<string, number>;
  /** The refs the newest successful default-branch build that used cache read or wrote: never deleted. */
  readonly defaultBranchRefs?: ReadonlySet<string>;
  /** Refs builds in progress read now or are about to: in use, whatever their age. */
  readonly refsInUse?: ReadonlySet<string>;
  /** buildah step tag → its place in the chain of steps, from the newest finished build that used it. */
  readonly steps?: ReadonlyMap<string, StepLink>;
  /** Finished builds that wrote refs, oldest start first: when refs moved (see untag-time.ts). */
  readonly writes?: readonly RefWrite[];
  /**
   * Ref → when a build first moved it within the history while other builds could have been reading the manifest it moved
   * off (another build used the ref and started before the move ended). A manifest pushed before the history began may have
   * lost its tag then (see untag-time.ts).
   */
  readonly sharedFirstMoves?: ReadonlyMap<string, number>;
  /** Every build started at or after this time is in the history (epoch ms). */
  readonly completeSince?: number;
}

/** The planner input when the build history is unreadable. */
export const HISTORY_UNAVAILABLE: BuildUsage = { historyAvailable: false, lastUseByTag: new Map() };

/** 64 lowercase hex characters: a buildah step tag. A loop, because a regex here showed up in the 100k-image profile. */
export function isBuildahStepTag(tag: string): boolean {
  if (tag.length !== 64) return false;
  for (let i = 0; i < 64; i++) {
    const c = tag.charCodeAt(i);
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) return false;
  }
  return true;
}

/** Whether a finished build's refs are the cache it used: it ran the build (no reuse) and exported at least one ref. */
function usedCache(r: BuildRecord): boolean {
  return r.end !== undefined && !r.reused && (r.refsRead.length > 0 || r.refsWritten.length > 0);
}

/**
 * The planner's view of the builds read, newest first.
 *
 * @param records newest first (ListBuildsForProject's default order)
 * @param completeSince every build started at or after this time is among `records`
 */
export function usageFromRecords(records: readonly BuildRecord[], defaultBranchTag: string, completeSince: number): BuildUsage {
  const lastUseByTag = new Map<string, number>();
  const newestRefsOfBranch = new Map<string, readonly string[]>();
  const defaultBranchRefs = new Set<string>();
  // Per default branch tag (one per project of a shared repository): its newest successful build that used cache was seen.
  const defaultFound = new Set<string>();
  const steps = new Map<string, StepLink>();
  const writes: RefWrite[] = [];

  for (const r of records) {
    if (r.end === undefined) continue;
    for (const ref of [...r.refsRead, ...r.refsWritten]) if (r.end > (lastUseByTag.get(ref) ?? -Infinity)) lastUseByTag.set(ref, r.end);
    if (r.refsWritten.length > 0) writes.push({ start: r.start ?? r.end, end: r.end, refs: r.refsWritten });
    if (!usedCache(r)) continue;
    const refs = [...r.refsRead, ...r.refsWritten];
    if (!newestRefsOfBranch.has(r.branchTag)) newestRefsOfBranch.set(r.branchTag, refs);
    // A failed build's refs can stop short of the steps the last good build used: protect a successful build's.
    const ownDefault = r.defaultBranchTag ?? defaultBranchTag;
    if (!defaultFound.has(ownDefault) && r.succeeded && r.branchTag === ownDefault) {
      for (const ref of refs) defaultBranchRefs.add(ref);
      defaultFound.add(ownDefault);
    }
    // buildah pulls the steps it finds, base first, and stops looking at the first miss; then it pushes the steps it built.
    // So read ++ written is the build's chain of steps. The newest build that used a step says where it sits.
    let parent: string | undefined;
    let depth = 0;
    for (const ref of refs) {
      if (!isBuildahStepTag(ref)) continue;
      if (!steps.has(ref)) steps.set(ref, parent === undefined ? { depth } : { depth, parent });
      parent = ref;
      depth++;
    }
  }
  writes.reverse();

  // A running build will read its branch's ref and the default branch's (registry, inline), or the steps its branch's last
  // build used (buildah: content-addressed tags, known only from that build).
  const refsInUse = new Set<string>();
  for (const r of records) {
    if (r.end !== undefined) continue;
    const ownDefault = r.defaultBranchTag ?? defaultBranchTag;
    refsInUse.add(r.branchTag).add(ownDefault);
    for (const ref of newestRefsOfBranch.get(r.branchTag) ?? []) refsInUse.add(ref);
    for (const ref of newestRefsOfBranch.get(ownDefault) ?? []) refsInUse.add(ref);
    for (const sibling of r.siblingBranchTags ?? []) {
      refsInUse.add(sibling);
      for (const ref of newestRefsOfBranch.get(sibling) ?? []) refsInUse.add(ref);
    }
  }

  return {
    historyAvailable: true, lastUseByTag, defaultBranchRefs, refsInUse, steps, writes,
    sharedFirstMoves: sharedFirstMoves(records, completeSince), completeSince,
  };
}

/**
 * For each ref first moved (written) within the complete part of the history: when that first move ended, if another build
 * used the ref and started before it ended — a build that could have resolved the ref to the manifest the move left untagged.
 * A ref first written by a new branch's only build moved nothing anyone else could be reading.
 */
function sharedFirstMoves(records: readonly BuildRecord[], completeSince: number): Map<string, number> {
  // Per ref: the earliest writer (by start) in the complete history, and the earliest two users (by start).
  const firstWriter = new Map<string, number>();
  const users = new Map<string, number[]>();
  const startOf = (k: number): number => records[k].start ?? records[k].end ?? Infinity;
  const use = (ref: string, k: number): void => {
    const u = users.get(ref);
    if (!u) users.set(ref, [k]);
    else if (u.length < 2) u.push(k);
    else if (startOf(k) < Math.max(startOf(u[0]), startOf(u[1]))) u[startOf(u[0]) > startOf(u[1]) ? 0 : 1] = k;
  };
  for (let k = 0; k < records.length; k++) {
    const r = records[k];
    const refs = r.end === undefined ? [r.branchTag] : [...r.refsRead, ...r.refsWritten];
    for (const ref of new Set(refs)) use(ref, k);
    if (r.end === undefined || startOf(k) < completeSince) continue;
    for (const ref of r.refsWritten) {
      const w = firstWriter.get(ref);
      if (w === undefined || startOf(k) <= startOf(w)) firstWriter.set(ref, k);
    }
  }
  const out = new Map<string, number>();
  for (const [ref, w] of firstWriter) {
    const end = records[w].end!;
    if ((users.get(ref) ?? []).some(k => k !== w && startOf(k) < end)) out.set(ref, end);
  }
  return out;
}
