/**
 * What the CacheCleanup construct (lib/) and the cleanup function (lambda/) agree on.
 *
 * This file has no imports and no runtime dependencies, so lib/ may import it with `import type`
 * (or even by value, for the enums and constants) without pulling the handler or the SDK into a synth.
 *
 * Units: every duration is in **seconds** (what `Duration.toSeconds()` gives at synth), every size in
 * **bytes**. The names carry the unit so that a JSON policy can't be misread.
 */

/** The environment variables the construct sets on the function. A type alias, so it is assignable to `Function.environment`. */
export type CleanupFunctionEnvironment = {
  /** Name of the cache repository to clean (never the app repository). */
  readonly CACHE_REPOSITORY_NAME: string;
  /** CodeBuild project whose build history says which cache refs builds read and wrote (with `PROJECTS`: the first of them). */
  readonly PROJECT_NAME: string;
  /**
   * `JSON.stringify` of a {@link CleanupProject} array: every project that writes to the cache repository (the images of a
   * `CachedImageBuildGroup`). When set, the function reads the history of each, and protects each one's default branch.
   */
  readonly PROJECTS?: string;
  /** `JSON.stringify` of a {@link CleanupPolicy}. */
  readonly POLICY: string;
  /** `'true'`: plan and report, delete nothing. */
  readonly DRY_RUN: 'true' | 'false';
  /** CloudWatch namespace of the embedded-format metrics. */
  readonly METRICS_NAMESPACE: string;
};

/** One project writing to a shared cache repository, as JSON in the `PROJECTS` variable. */
export interface CleanupProject {
  /** The CodeBuild project whose build history is read. */
  readonly projectName: string;
  /**
   * The cache tag of the project's default branch (`imageCacheRef(imageName, defaultBranch)`): never deleted, nor the refs its
   * newest successful default-branch build used.
   */
  readonly defaultBranchTag: string;
  /** The image's name: its refs are `<imageName>--<branch tag>` (lib/build-script/cache-refs.ts). @default - refs are branch tags */
  readonly imageName?: string;
}

/** Eviction policy, as JSON in the `POLICY` variable. Optional fields take the `DEFAULT_*` constants below. */
export interface CleanupPolicy {
  /**
   * The cache tag of the default branch (`branchTag(defaultBranch)` from lib/build-script/cache-refs.ts). The image it tags,
   * and every ref the newest successful default-branch build read or wrote (for buildah: its step tags), are never deleted.
   */
  readonly defaultBranchTag: string;
  /**
   * A cache ref stays alive while a build read or wrote it, ECR recorded a pull of it, or it was pushed or restored from the
   * archive, within this many seconds. Also how far back the build history is read.
   * @default DEFAULT_IDLE_TIMEOUT_SECONDS (14 days)
   */
  readonly idleTimeoutSeconds?: number;
  /**
   * Untagged manifests (left behind when a tag moves, or pushed as parts of an index) are deleted once this many seconds have
   * passed since they lost their tag (estimated from the build history: see untag-time.ts), their push and their last recorded
   * pull, unless a kept index references them.
   * @default DEFAULT_UNTAGGED_GRACE_PERIOD_SECONDS (1 day)
   */
  readonly untaggedGracePeriodSeconds?: number;
  /**
   * Budget for the sum of the sizes ECR reports for the images that can serve as cache (archived ones cannot); least recently
   * used refs are evicted until it is met. Layers shared by several manifests count once per manifest, so this is an upper
   * bound on what ECR stores.
   * @default - no budget
   */
  readonly maxCacheBytes?: number;
  /**
   * At most this many images are deleted in one run; the oldest go first, the rest wait for the next run.
   * @default DEFAULT_MAX_DELETES_PER_RUN
   */
  readonly maxDeletesPerRun?: number;
  /**
   * A run that would delete more than this fraction of the repository's tagged images deletes nothing and
   * reports why (untagged, unreferenced manifests are garbage by construction and do not count).
   * @default DEFAULT_MAX_DELETE_FRACTION
   */
  readonly maxDeleteFraction?: number;
  /**
   * Lift the `maxDeleteFraction` guard, e.g. for the first run on a repository that was never cleaned.
   * @default false
   */
  readonly allowLargeDeletes?: boolean;
  /**
   * Count ECR's last recorded pull of image indexes as a use. Off by default: the function reads every index
   * with BatchGetImage to learn its children, and ECR records that read as a pull (aws/containers-roadmap#2390),
   * so the pull time of an index would keep it alive forever. Turn it on when the function's role is registered
   * as an ECR pull-time update exclusion.
   * @default false
   */
  readonly trustIndexPullTime?: boolean;
}

/** The fields of {@link CleanupPolicy}: a POLICY with any other field was written by a construct this function does not match. */
export const CLEANUP_POLICY_FIELDS: readonly (keyof CleanupPolicy)[] = [
  'defaultBranchTag', 'idleTimeoutSeconds', 'untaggedGracePeriodSeconds', 'maxCacheBytes', 'maxDeletesPerRun', 'maxDeleteFraction',
  'allowLargeDeletes', 'trustIndexPullTime',
];

/** {@link CleanupPolicy} with its defaults applied and validated. */
export interface ResolvedCleanupPolicy {
  readonly defaultBranchTag: string;
  readonly idleTimeoutSeconds: number;
  readonly untaggedGracePeriodSeconds: number;
  readonly maxCacheBytes?: number;
  readonly maxDeletesPerRun: number;
  readonly maxDeleteFraction: number;
  readonly allowLargeDeletes: boolean;
  readonly trustIndexPullTime: boolean;
}

export const DEFAULT_IDLE_TIMEOUT_SECONDS = 14 * 24 * 3600;
export const DEFAULT_UNTAGGED_GRACE_PERIOD_SECONDS = 24 * 3600;
/** 100 BatchDeleteImage calls; a repository that was never cleaned drains over a few daily runs. */
export const DEFAULT_MAX_DELETES_PER_RUN = 10_000;
export const DEFAULT_MAX_DELETE_FRACTION = 0.5;
export const DEFAULT_METRICS_NAMESPACE = 'CachedImageBuild';
/**
 * ECR bills an archived image for at least 90 days ("If you must delete images that have been archived for less than 90 days
 * ... you will be charged for the 90-day minimum storage duration", archive-image.html): deleting it sooner saves nothing, and
 * keeping it leaves the choice to restore it.
 */
export const ECR_ARCHIVE_MINIMUM_STORAGE_SECONDS = 90 * 24 * 3600;

/** Why the planner keeps an image. */
export enum KeepReason {
  /**
   * The image tagged with the default branch's tag, or one carrying a ref the newest successful default-branch build read or
   * wrote (buildah: its step tags). Never deleted, whatever its age and the budget.
   */
  NEWEST_DEFAULT_BRANCH = 'newest-default-branch',
  /**
   * A build in progress reads it, or will: its branch's tag, the default branch's tag, and the refs of the newest finished
   * build of its branch. A running build has no exported variables yet, so its own use is not in the history.
   */
  IN_USE_BY_RUNNING_BUILD = 'in-use-by-running-build',
  /** A tag was read or written by a build, pulled, pushed or restored from the archive within the idle timeout. */
  RECENTLY_USED = 'recently-used',
  /** The build history could not be read: every tagged image counts as used (fail safe). */
  HISTORY_UNAVAILABLE = 'history-unavailable',
  /** Referenced by a kept image index (directly or through nested indexes). */
  CHILD_OF_KEPT_INDEX = 'child-of-kept-index',
  /** Untagged, but it lost its tag, was pushed or was pulled within the grace period (a build may still fetch it). */
  UNTAGGED_IN_GRACE = 'untagged-in-grace',
  /**
   * Tagged and otherwise deletable, but its push is the latest time an untagged manifest still in its grace period can have
   * lost its tag (the history names no later move): deleting it would make the next run forget that and cut the grace short.
   */
  UNTAG_TIME_EVIDENCE = 'untag-time-evidence',
  /** Archived less than ECR's 90-day minimum storage duration ago: not cache, but deleting it now would save nothing. */
  ARCHIVED_MINIMUM_STORAGE = 'archived-minimum-storage',
  /** Being restored from the archive (ACTIVATING): someone wants it back. */
  RESTORING = 'restoring',
  /** A kept index could not be read, and it might reference this image: nothing is deleted until it can be. */
  INDEX_CHILDREN_UNKNOWN = 'index-children-unknown',
  /** Would be deleted, but the run already reached `maxDeletesPerRun`; deleted by a later run. */
  DEFERRED_RUN_CAP = 'deferred-run-cap',
  /** Would be deleted, but the run was refused by the `maxDeleteFraction` guard. */
  REFUSED_LARGE_DELETE = 'refused-large-delete',
}

/** Why the planner deletes an image. */
export enum DeleteReason {
  /** Tagged, and none of its tags was used within the idle timeout. */
  IDLE = 'idle',
  /** Evicted, least recently used first, to bring the repository under `maxCacheBytes` (with the index children it freed). */
  OVER_BUDGET = 'over-budget',
  /** Untagged, past the grace period, and no kept index references it. */
  UNTAGGED_PAST_GRACE = 'untagged-past-grace',
  /** Archived (it cannot be pulled, so it is no cache) for longer than ECR's 90-day minimum storage duration. */
  ARCHIVED = 'archived',
}

/** Metric names the function emits (Embedded Metric Format), for alarms and dashboards in lib/. */
export const CleanupMetric = {
  IMAGES_SCANNED: 'ImagesScanned',
  /** Also emitted once per {@link DeleteReason} with the `Reason` dimension. */
  IMAGES_DELETED: 'ImagesDeleted',
  /** Deletions the plan holds after the run cap and the fraction guard (in a dry run: what would be deleted). */
  IMAGES_PLANNED_FOR_DELETION: 'ImagesPlannedForDeletion',
  BYTES_RECLAIMED: 'BytesReclaimed',
  /** Sum of the image sizes left in the repository after the run. */
  CACHE_REPOSITORY_BYTES: 'CacheRepositoryBytes',
  CACHE_REPOSITORY_IMAGES: 'CacheRepositoryImages',
  DELETE_FAILURES: 'DeleteFailures',
  /** Indexes whose manifest could not be read; while one of them is kept, the run deletes nothing. */
  INDEX_READ_FAILURES: 'IndexReadFailures',
  /** 1 when the build history could not be read and the run failed safe. */
  FAIL_SAFE: 'FailSafe',
  /** 1 when the `maxDeleteFraction` guard refused the run's deletions: worth an alarm. */
  DELETION_REFUSED: 'DeletionRefused',
} as const;

/** Dimension names of the metrics: every metric has `Repository`; per-reason deletions add `Reason`. */
export const CleanupMetricDimension = {
  REPOSITORY: 'Repository',
  REASON: 'Reason',
} as const;
