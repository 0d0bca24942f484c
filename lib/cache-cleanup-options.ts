import { Duration, Size, Token } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';

/**
 * How the cache repository is cleaned up. ECR lifecycle rules cannot keep "the newest cache of each
 * branch", see reads (a no-op build pushes nothing) or enforce a size budget; the cleanup function can.
 */
export interface CacheCleanupOptions {
  /** Whether to clean up the cache repository at all. @default true */
  readonly enabled?: boolean;
  /** When the cleanup runs. @default Schedule.rate(Duration.days(1)) */
  readonly schedule?: events.Schedule;
  /** How long a cache ref that no build read or wrote (and ECR saw no pull of) survives. @default Duration.days(14) */
  readonly idleTimeout?: Duration;
  /** How many refs each branch keeps (most recently used first). @default - no limit */
  readonly maxRefsPerBranch?: number;
  /** Size budget of the cache repository; least recently used refs go first. @default - no budget */
  readonly maxCacheBytes?: Size;
  /** How long an untagged manifest that no kept index references survives. @default Duration.days(1) */
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
}

const OPTION_NAMES: ReadonlyArray<Exclude<keyof CacheCleanupOptions, 'enabled'>> = [
  'schedule', 'idleTimeout', 'maxRefsPerBranch', 'maxCacheBytes', 'untaggedGracePeriod', 'dryRun', 'maxDeletesPerRun',
  'maxDeleteFraction', 'allowLargeDeletes', 'runAfterEachBuild',
];

/** Throws an Error naming the option and the value for every invalid cleanup option; tokens are skipped. */
export function validateCleanupOptions(path: string, o: CacheCleanupOptions): void {
  const fail = (msg: string): never => {
    throw new Error(`${path}: cleanup.${msg}`);
  };
  if (o.enabled === false) {
    const set = OPTION_NAMES.filter(k => o[k] !== undefined);
    if (set.length > 0) fail(`enabled is false but ${set.join(', ')} ${set.length > 1 ? 'are' : 'is'} set: remove them or enable the cleanup`);
    return;
  }
  const minutes = (d: Duration) => d.toMinutes({ integral: false });
  if (o.idleTimeout && !o.idleTimeout.isUnresolved() && minutes(o.idleTimeout) < 60) {
    fail(`idleTimeout must be at least 1 hour, got ${o.idleTimeout.toHumanString()}`);
  }
  if (o.untaggedGracePeriod && !o.untaggedGracePeriod.isUnresolved() && minutes(o.untaggedGracePeriod) < 0) {
    fail(`untaggedGracePeriod must not be negative, got ${o.untaggedGracePeriod.toHumanString()}`);
  }
  const int = (name: string, v: number | undefined) => {
    if (v !== undefined && !Token.isUnresolved(v) && (!Number.isInteger(v) || v < 1)) fail(`${name} must be an integer >= 1, got ${v}`);
  };
  int('maxRefsPerBranch', o.maxRefsPerBranch);
  int('maxDeletesPerRun', o.maxDeletesPerRun);
  if (o.maxCacheBytes && !o.maxCacheBytes.isUnresolved() && o.maxCacheBytes.toBytes() < 1) {
    fail(`maxCacheBytes must be positive, got ${o.maxCacheBytes.toBytes()} bytes`);
  }
  const f = o.maxDeleteFraction;
  if (f !== undefined && !Token.isUnresolved(f) && !(f > 0 && f <= 1)) fail(`maxDeleteFraction must be in (0, 1], got ${f}`);
}
