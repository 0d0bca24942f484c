import { Duration, Size, Token } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';

/**
 * How the cache repository is cleaned up. ECR lifecycle rules cannot keep "the newest cache of the default
 * branch", see reads (a no-op build pushes nothing) or running builds, tell when a manifest lost its tag, or
 * enforce a size budget; the cleanup function can.
 */
export interface CacheCleanupOptions {
  /** Whether to clean up the cache repository at all. @default true */
  readonly enabled?: boolean;
  /** When the cleanup runs. @default Schedule.rate(Duration.days(1)) */
  readonly schedule?: events.Schedule;
  /**
   * How long a cache ref that no build read or wrote, and that ECR saw no pull, push or restore of, survives.
   * Also how far back the build history is read.
   * @default Duration.days(14)
   */
  readonly idleTimeout?: Duration;
  /**
   * Size budget of the cache repository (the sizes ECR reports, archived images not counted: they are no cache);
   * least recently used refs go first, and for buildah the upper steps before the steps below them.
   * @default - no budget
   */
  readonly maxCacheBytes?: Size;
  /**
   * How long an untagged manifest that no kept index references survives after it lost its tag (a build that
   * resolved the tag before it moved may still be fetching it), was pushed or was pulled.
   * @default Duration.days(1)
   */
  readonly untaggedGracePeriod?: Duration;
  /** Also run after every successful build. @default false */
  readonly runAfterEachBuild?: boolean;
  /** Report what would be deleted, delete nothing. @default false */
  readonly dryRun?: boolean;
  /** Most images deleted in one run; the rest wait for the next run. @default 10000 */
  readonly maxDeletesPerRun?: number;
  /** Refuse to delete more than this fraction of the repository in one run (unless `allowLargeDeletes`). @default 0.5 */
  readonly maxDeleteFraction?: number;
  /** Allow one run to delete more than `maxDeleteFraction` of the repository. @default false */
  readonly allowLargeDeletes?: boolean;
  /**
   * Count ECR's last recorded pull of an image index as a use. The function reads every index with BatchGetImage
   * to learn its children, and ECR records that read as a pull, which would keep every index alive forever; turn
   * this on only after registering the cleanup function's role as an ECR pull time update exclusion
   * (`aws ecr register-pull-time-update-exclusion`, see `CacheCleanup.function.role`).
   * @default false
   */
  readonly trustIndexPullTime?: boolean;
}

const OPTION_NAMES: ReadonlyArray<Exclude<keyof CacheCleanupOptions, 'enabled'>> = [
  'schedule', 'idleTimeout', 'maxCacheBytes', 'untaggedGracePeriod', 'dryRun', 'maxDeletesPerRun',
  'maxDeleteFraction', 'allowLargeDeletes', 'runAfterEachBuild', 'trustIndexPullTime',
];

/**
 * Throws an Error naming the option and the value for every invalid cleanup option; tokens are skipped.
 * `ownProps` names the keys of a props type that extends the options (they are not cleanup options but are allowed).
 */
export function validateCleanupOptions(path: string, o: CacheCleanupOptions, ownProps: readonly string[] = []): void {
  const fail = (msg: string): never => {
    throw new Error(`${path}: cleanup.${msg}`);
  };
  // From JavaScript (or after an upgrade that removed an option) a misspelt or removed option would otherwise do nothing.
  for (const key of Object.keys(o)) {
    if (key !== 'enabled' && !(OPTION_NAMES as readonly string[]).includes(key) && !ownProps.includes(key)) {
      fail(`${key} is not a cleanup option (options: enabled, ${OPTION_NAMES.join(', ')})`);
    }
  }
  if (o.enabled === false) {
    const set = OPTION_NAMES.filter(k => o[k] !== undefined);
    if (set.length > 0) fail(`enabled is false but ${set.join(', ')} ${set.length > 1 ? 'are' : 'is'} set: remove them or enable the cleanup`);
    return;
  }
  const minutes = (d: Duration) => d.toMinutes({ integral: false });
  if (o.idleTimeout && !o.idleTimeout.isUnresolved() && minutes(o.idleTimeout) < 60) {
    fail(`idleTimeout must be at least 1 hour, got ${o.idleTimeout.toHumanString()}`);
  }
  if (o.untaggedGracePeriod && !o.untaggedGracePeriod.isUnresolved() && minutes(o.untaggedGracePeriod) < 60) {
    fail(`untaggedGracePeriod must be at least 1 hour (a build that resolved a tag before it moved may still be fetching the `
      + `manifest it named), got ${o.untaggedGracePeriod.toHumanString()}`);
  }
  const int = (name: string, v: number | undefined) => {
    if (v !== undefined && !Token.isUnresolved(v) && (!Number.isInteger(v) || v < 1)) fail(`${name} must be an integer >= 1, got ${v}`);
  };
  int('maxDeletesPerRun', o.maxDeletesPerRun);
  if (o.maxCacheBytes && !o.maxCacheBytes.isUnresolved() && o.maxCacheBytes.toBytes() < 1) {
    fail(`maxCacheBytes must be positive, got ${o.maxCacheBytes.toBytes()} bytes`);
  }
  const f = o.maxDeleteFraction;
  if (f !== undefined && !Token.isUnresolved(f) && !(f > 0 && f <= 1)) fail(`maxDeleteFraction must be in (0, 1], got ${f}`);
  for (const name of ['dryRun', 'allowLargeDeletes', 'runAfterEachBuild', 'trustIndexPullTime'] as const) {
    const v: unknown = o[name];
    if (v !== undefined && typeof v !== 'boolean' && !Token.isUnresolved(v)) fail(`${name} must be a boolean, got ${JSON.stringify(v).replace(/"/g, '\'')}`);
  }
}
