/**
 * The run's outputs: one structured JSON report line, and CloudWatch metrics as Embedded Metric Format log lines
 * (CloudWatch extracts them from the log group: no PutMetricData call, no extra IAM permission).
 */
import { CleanupMetric, CleanupMetricDimension, DeleteReason } from './contract';
import { DeleteOutcome, ImageFailure } from './ecr';
import { Plan } from './plan';

/** Failures listed one by one in the report; the rest are counted by code (a log event holds at most 256 KB). */
export const MAX_FAILURE_SAMPLES = 20;

export interface CleanupReport {
  readonly message: 'cache-cleanup report';
  readonly repository: string;
  readonly project: string;
  readonly dryRun: boolean;
  /** True when the build history could not be read and only unreferenced untagged manifests were candidates. */
  readonly failSafe: boolean;
  readonly failSafeReason?: string;
  /** Set when the fraction guard refused the run's deletions. */
  readonly refused?: string;
  readonly scanned: number;
  /** Images the plan keeps (including deferred and refused ones). */
  readonly kept: number;
  /** Deletions the plan holds after the limits: what a dry run would have deleted. */
  readonly planned: number;
  readonly deleted: number;
  readonly alreadyGone: number;
  readonly bytesScanned: number;
  readonly bytesReclaimed: number;
  /** Bytes left after the run (sum of reported image sizes, indexes with known children counted as 0). */
  readonly repositoryBytes: number;
  readonly keptByReason: Record<string, number>;
  readonly plannedByReason: Record<string, number>;
  readonly deletedByReason: Record<string, number>;
  readonly failures: number;
  readonly failureCodes: Record<string, number>;
  readonly failureSamples: ImageFailure[];
  readonly indexReadFailures: number;
  /** Builds whose exported variables were read (0 in fail-safe mode). */
  readonly buildsRead: number;
  /** Builds in progress or queued during the run: their branch's refs were kept as in use. */
  readonly buildsRunning: number;
  /** CPU time of the decisions: plan, limits and delete batching. */
  readonly plannerMs: number;
  readonly durationMs: number;
}

export interface ReportInput {
  readonly repository: string;
  readonly project: string;
  readonly dryRun: boolean;
  readonly failSafeReason?: string;
  readonly refused?: string;
  /** The plan after the limits. */
  readonly plan: Plan;
  readonly outcome: DeleteOutcome;
  readonly indexReadFailures: number;
  readonly buildsRead: number;
  readonly buildsRunning: number;
  readonly plannerMs: number;
  readonly durationMs: number;
}

function countBy<T>(items: Iterable<T>, key: (item: T) => string): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const item of items) counts[key(item)] = (counts[key(item)] ?? 0) + 1;
  return counts;
}

export function buildReport(input: ReportInput): CleanupReport {
  const { plan, outcome } = input;
  const planned = new Map(plan.delete.map(e => [e.image.digest, e]));
  const deleted = outcome.deleted.flatMap(d => planned.get(d) ?? []);
  const bytesScanned = plan.keep.reduce((s, e) => s + e.bytes, 0) + plan.delete.reduce((s, e) => s + e.bytes, 0);
  const bytesReclaimed = deleted.reduce((s, e) => s + e.bytes, 0);
  return {
    message: 'cache-cleanup report',
    repository: input.repository,
    project: input.project,
    dryRun: input.dryRun,
    failSafe: input.failSafeReason !== undefined,
    ...(input.failSafeReason !== undefined ? { failSafeReason: input.failSafeReason } : {}),
    ...(input.refused !== undefined ? { refused: input.refused } : {}),
    scanned: plan.keep.length + plan.delete.length,
    kept: plan.keep.length,
    planned: plan.delete.length,
    deleted: deleted.length,
    alreadyGone: outcome.alreadyGone.length,
    bytesScanned,
    bytesReclaimed,
    repositoryBytes: bytesScanned - bytesReclaimed,
    keptByReason: countBy(plan.keep, e => e.reason),
    plannedByReason: countBy(plan.delete, e => e.reason),
    deletedByReason: countBy(deleted, e => e.reason),
    failures: outcome.failures.length,
    failureCodes: countBy(outcome.failures, f => f.code),
    failureSamples: outcome.failures.slice(0, MAX_FAILURE_SAMPLES),
    indexReadFailures: input.indexReadFailures,
    buildsRead: input.buildsRead,
    buildsRunning: input.buildsRunning,
    plannerMs: input.plannerMs,
    durationMs: input.durationMs,
  };
}

type Unit = 'Count' | 'Bytes';

function emf(namespace: string, timestamp: number, dimensions: Record<string, string>, metrics: [string, Unit, number][]): string {
  const doc: Record<string, unknown> = {
    _aws: {
      Timestamp: timestamp,
      CloudWatchMetrics: [{
        Namespace: namespace,
        Dimensions: [Object.keys(dimensions)],
        Metrics: metrics.map(([Name, Unit]) => ({ Name, Unit })),
      }],
    },
    ...dimensions,
  };
  for (const [name, , value] of metrics) doc[name] = value;
  return JSON.stringify(doc);
}

/** One EMF line for the run, and one per delete reason (a document carries one value per dimension). */
export function emfLines(report: CleanupReport, namespace: string, timestamp: number): string[] {
  const repository = { [CleanupMetricDimension.REPOSITORY]: report.repository };
  const lines = [emf(namespace, timestamp, repository, [
    [CleanupMetric.IMAGES_SCANNED, 'Count', report.scanned],
    [CleanupMetric.IMAGES_DELETED, 'Count', report.deleted],
    [CleanupMetric.IMAGES_PLANNED_FOR_DELETION, 'Count', report.planned],
    [CleanupMetric.BYTES_RECLAIMED, 'Bytes', report.bytesReclaimed],
    [CleanupMetric.CACHE_REPOSITORY_BYTES, 'Bytes', report.repositoryBytes],
    [CleanupMetric.CACHE_REPOSITORY_IMAGES, 'Count', report.scanned - report.deleted - report.alreadyGone],
    [CleanupMetric.DELETE_FAILURES, 'Count', report.failures],
    [CleanupMetric.INDEX_READ_FAILURES, 'Count', report.indexReadFailures],
    [CleanupMetric.FAIL_SAFE, 'Count', report.failSafe ? 1 : 0],
    [CleanupMetric.DELETION_REFUSED, 'Count', report.refused !== undefined ? 1 : 0],
  ])];
  for (const reason of Object.values(DeleteReason)) {
    lines.push(emf(namespace, timestamp, { ...repository, [CleanupMetricDimension.REASON]: reason }, [
      [CleanupMetric.IMAGES_DELETED, 'Count', report.deletedByReason[reason] ?? 0],
    ]));
  }
  return lines;
}
