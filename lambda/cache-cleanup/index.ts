/**
 * The cache cleanup function: wiring only. Reads the repository and the build history, asks the planner,
 * applies the blast-radius limits, deletes (unless dry run), and logs one report line plus EMF metric lines.
 */
import { CodeBuildClient } from '@aws-sdk/client-codebuild';
import { ECRClient } from '@aws-sdk/client-ecr';
import { performance } from 'perf_hooks';
import { createCodeBuildClient, readProjectsUsage } from './codebuild';
import { CleanupConfig, readConfig } from './config';
import { deletionBatches } from './delete-order';
import { createEcrClient, deleteImages, DeleteOutcome, RepositoryScan, scanRepository } from './ecr';
import { limitDeletes } from './limits';
import { plan } from './plan';
import { buildReport, CleanupReport, emfLines } from './report';
import { BuildUsage, HISTORY_UNAVAILABLE } from './usage';

export interface CleanupDependencies {
  readonly ecr: ECRClient;
  readonly codebuild: CodeBuildClient;
  /** The planning clock, epoch milliseconds. */
  readonly now: () => number;
  /** Writes one log line. */
  readonly log: (line: string) => void;
}

function describe(e: unknown): string {
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

function cpuMs(since: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(since);
  return Math.round((used.user + used.system) / 1000);
}

/**
 * One cleanup run. Throws when the repository cannot be read or when every deletion failed (so the function's
 * error alarm fires); partial failures, a refusal and fail-safe mode are reported, not thrown.
 */
export async function runCleanup(config: CleanupConfig, deps: CleanupDependencies): Promise<CleanupReport> {
  const started = performance.now();
  const now = deps.now();
  let scan: RepositoryScan;
  try {
    scan = await scanRepository(deps.ecr, config.repositoryName);
  } catch (e) {
    throw new Error(`cache cleanup: cannot read repository ${config.repositoryName}: ${describe(e)}`, { cause: e });
  }

  let usage: BuildUsage = HISTORY_UNAVAILABLE;
  let buildsRead = 0;
  let buildsRunning = 0;
  let failSafeReason: string | undefined;
  // Back far enough to see every use within the idle timeout, and every tag move within the untagged grace period.
  const { idleTimeoutSeconds, untaggedGracePeriodSeconds } = config.policy;
  const since = now - Math.max(idleTimeoutSeconds, untaggedGracePeriodSeconds) * 1000;
  const projects = config.projects ?? [{ projectName: config.projectName, defaultBranchTag: config.policy.defaultBranchTag }];
  const projectNames = projects.map(p => p.projectName).join(', ');
  try {
    // Every project that uses the repository: a ref only one image's builds read must not look idle to the others.
    const history = await readProjectsUsage(deps.codebuild, projects, since);
    usage = history;
    buildsRead = history.buildsRead;
    buildsRunning = history.buildsRunning;
  } catch (e) {
    failSafeReason = `build history of ${projectNames} unreadable (${describe(e)}): every tagged image kept`;
  }

  const cpu = process.cpuUsage();
  const { plan: limited, refused } = limitDeletes(plan(scan.images, usage, config.policy, now), config.policy);
  const batches = deletionBatches(limited.delete.map(e => e.image));
  const plannerMs = cpuMs(cpu);

  const act = !config.dryRun && refused === undefined && batches.length > 0;
  const outcome: DeleteOutcome = act
    ? await deleteImages(deps.ecr, config.repositoryName, batches)
    : { deleted: [], alreadyGone: [], failures: [] };

  const report = buildReport({
    repository: config.repositoryName,
    project: projectNames,
    dryRun: config.dryRun,
    failSafeReason,
    refused,
    plan: limited,
    outcome,
    indexReadFailures: scan.indexReadFailures.length,
    buildsRead,
    buildsRunning,
    plannerMs,
    durationMs: Math.round(performance.now() - started),
  });
  deps.log(JSON.stringify(report));
  for (const line of emfLines(report, config.metricsNamespace, now)) deps.log(line);

  if (act && outcome.deleted.length === 0 && outcome.alreadyGone.length === 0) {
    throw new Error(`cache cleanup: all ${limited.delete.length} deletions failed (${JSON.stringify(report.failureCodes)}); see the report line`);
  }
  return report;
}

let clients: { ecr: ECRClient; codebuild: CodeBuildClient } | undefined;

// Raw stdout, not console.log: with the JSON log format the runtime wraps console output, and CloudWatch would
// no longer find the EMF documents.
const writeLine = (line: string): void => {
  process.stdout.write(`${line}\n`);
};

/** Lambda entry point (scheduled or after a build); the event carries nothing the run needs. */
export async function handler(): Promise<CleanupReport> {
  const config = readConfig(process.env);
  clients ??= { ecr: createEcrClient(), codebuild: createCodeBuildClient() };
  return runCleanup(config, { ...clients, now: Date.now, log: writeLine });
}
