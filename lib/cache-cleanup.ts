import * as fs from 'fs';
import * as path from 'path';
import { Duration, Lazy, Stack, Token, Validations } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as codebuild from 'aws-cdk-lib/aws-codebuild';
import * as ecr from 'aws-cdk-lib/aws-ecr';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import {
  CleanupFunctionEnvironment, CleanupMetric, CleanupMetricDimension, CleanupPolicy, CleanupProject, DEFAULT_METRICS_NAMESPACE,
} from '../lambda/cache-cleanup/contract';
import { imageCacheRef } from './build-script/cache-refs';
import { CacheCleanupOptions, validateCleanupOptions } from './cache-cleanup-options';

const MEMORY_MB = 512;

/** Properties of {@link CacheCleanup}. */
export interface CacheCleanupProps extends CacheCleanupOptions {
  /** The cache repository to clean (only this one: the function cannot touch any other). */
  readonly cacheRepository: ecr.IRepository;
  /** The project whose build history (exported CACHE_REFS_READ / CACHE_REF_WRITTEN) tells which refs are alive. */
  readonly project: codebuild.IProject;
  /**
   * The default branch: the image its cache tag names, and the refs its newest successful build used (buildah: the
   * step tags), are never deleted.
   */
  readonly defaultBranch: string;
  /** Retention of the function's logs (its reports). @default RetentionDays.THREE_MONTHS */
  readonly logRetention?: logs.RetentionDays;
}

/**
 * A scheduled function that deletes cache the builds no longer use: by last use (reads count, not only pushes),
 * a size budget, untagged manifests no kept index references once they have been untagged for a grace period,
 * and archived images after ECR's minimum storage duration. It keeps the default branch's cache and whatever a
 * running build reads.
 */
export class CacheCleanup extends Construct {
  /** The runtime of the cleanup function, pinned here and nowhere else (the handler is bundled for it). */
  public static readonly RUNTIME: lambda.Runtime = lambda.Runtime.NODEJS_22_X;

  /** The cleanup function. */
  public readonly function: lambda.Function;
  /** Fires when a run fails (repository unreadable, every deletion failed, bad configuration). */
  public readonly errorAlarm: cloudwatch.Alarm;
  /** Fires when a run refused to delete more than `maxDeleteFraction` of the repository. */
  public readonly deletionRefusedAlarm: cloudwatch.Alarm;
  /** Fires when a run could not read the build history and kept every tagged ref (fail safe). */
  public readonly failSafeAlarm: cloudwatch.Alarm;
  private readonly repositoryName: string;
  /** The projects whose build history the function reads: `props.project`, then those a group adds. */
  private readonly projects: { project: codebuild.IProject; imageName?: string; defaultBranch: string }[];
  private readonly historyStatement: iam.PolicyStatement;
  private readonly target: targets.LambdaFunction;
  private readonly runAfterEachBuild: boolean;
  private projectsVariable = false;

  constructor(scope: Construct, id: string, props: CacheCleanupProps) {
    super(scope, id);
    validateCleanupOptions(this.node.path, props, ['cacheRepository', 'project', 'defaultBranch', 'logRetention']);
    if (props.enabled === false) throw new Error(`${this.node.path}: enabled is false: do not create a CacheCleanup`);
    if (Token.isUnresolved(props.defaultBranch)) {
      throw new Error(`${this.node.path}: defaultBranch must be a literal: the cleanup protects its cache tag`);
    }

    this.projects = [{ project: props.project, defaultBranch: props.defaultBranch }];
    const policy: CleanupPolicy = {
      // The first project's (a group names its images after construction): a plain branch tag unless it has an image name.
      defaultBranchTag: Lazy.string({ produce: () => imageCacheRef(this.projects[0].imageName, this.projects[0].defaultBranch) }),
      idleTimeoutSeconds: props.idleTimeout?.toSeconds(),
      untaggedGracePeriodSeconds: props.untaggedGracePeriod?.toSeconds(),
      maxCacheBytes: props.maxCacheBytes?.toBytes(),
      maxDeletesPerRun: props.maxDeletesPerRun,
      maxDeleteFraction: props.maxDeleteFraction,
      allowLargeDeletes: props.allowLargeDeletes,
      trustIndexPullTime: props.trustIndexPullTime,
    };
    const environment: CleanupFunctionEnvironment = {
      CACHE_REPOSITORY_NAME: props.cacheRepository.repositoryName,
      PROJECT_NAME: props.project.projectName,
      POLICY: Stack.of(this).toJsonString(policy),
      DRY_RUN: props.dryRun ? 'true' : 'false',
      METRICS_NAMESPACE: DEFAULT_METRICS_NAMESPACE,
    };

    const logGroup = new logs.LogGroup(this, 'Logs', { retention: props.logRetention ?? logs.RetentionDays.THREE_MONTHS });
    // Our own role: the managed AWSLambdaBasicExecutionRole would allow writing to every log group.
    const role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: 'Cache cleanup: read and delete images of one cache repository, read one project\'s build history',
    });
    logGroup.grantWrite(role);
    role.addToPrincipalPolicy(new iam.PolicyStatement({
      actions: ['ecr:DescribeImages', 'ecr:BatchGetImage', 'ecr:BatchDeleteImage'],
      resources: [props.cacheRepository.repositoryArn],
    }));
    this.historyStatement = new iam.PolicyStatement({
      actions: ['codebuild:ListBuildsForProject', 'codebuild:BatchGetBuilds'],
      resources: [props.project.projectArn],
    });
    role.addToPrincipalPolicy(this.historyStatement);

    this.function = new lambda.Function(this, 'Function', {
      runtime: CacheCleanup.RUNTIME,
      handler: 'index.handler',
      code: lambda.Code.fromAsset(bundleDir()),
      description: 'cdk-cached-image-build: cache repository cleanup',
      memorySize: MEMORY_MB,
      timeout: Duration.minutes(10),
      role,
      logGroup,
      environment: { ...environment },
      // One run at a time: two runs planning on the same listing would race on the deletes.
      reservedConcurrentExecutions: 1,
    });

    const target = new targets.LambdaFunction(this.function, { retryAttempts: 0 });
    this.target = target;
    this.runAfterEachBuild = props.runAfterEachBuild ?? false;
    new events.Rule(this, 'Schedule', {
      description: 'Runs the cache cleanup',
      schedule: props.schedule ?? events.Schedule.rate(Duration.days(1)),
      targets: [target],
    });
    if (props.runAfterEachBuild) {
      props.project.onBuildSucceeded('CleanupAfterBuild', { target });
    }

    this.errorAlarm = new cloudwatch.Alarm(this, 'Errors', {
      alarmDescription: 'The cache cleanup function failed: the cache repository is not being cleaned',
      metric: this.function.metricErrors({ period: Duration.hours(1), statistic: cloudwatch.Stats.SUM }),
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

    this.repositoryName = props.cacheRepository.repositoryName;
    this.deletionRefusedAlarm = this.flagAlarm('DeletionRefused', CleanupMetric.DELETION_REFUSED,
      'The cache cleanup refused a run that would delete more than maxDeleteFraction of the cache repository');
    this.failSafeAlarm = this.flagAlarm('FailSafe', CleanupMetric.FAIL_SAFE,
      'The cache cleanup could not read the build history and kept every tagged ref');

    Validations.of(this.function).acknowledge({
      id: 'AwsSolutions-L1',
      reason: `The runtime is pinned in one constant (CacheCleanup.RUNTIME, ${CacheCleanup.RUNTIME.name}) and moved deliberately with the library`,
    });
    Validations.of(role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::<' + Stack.of(this).getLogicalId(logGroup.node.defaultChild as logs.CfnLogGroup) + '.Arn>:*]',
      reason: 'Log streams of the function\'s own log group: their names are made by Lambda at run time',
    });
  }

  /**
   * Adds a project that writes to the same cache repository (an image of a `CachedImageBuildGroup`), or names the image of one
   * already added: the function reads its build history too (IAM on that project only), protects its default branch's cache,
   * and with `runAfterEachBuild` also runs after its builds.
   * @internal
   */
  public _addProject(project: codebuild.IProject, imageName: string, defaultBranch: string): void {
    const known = this.projects.find(p => p.project === project);
    if (known) {
      known.imageName = imageName;
    } else {
      this.projects.push({ project, imageName, defaultBranch });
      this.historyStatement.addResources(project.projectArn);
      if (this.runAfterEachBuild) project.onBuildSucceeded('CleanupAfterBuild', { target: this.target });
    }
    if (!this.projectsVariable) {
      this.projectsVariable = true;
      const stack = Stack.of(this);
      this.function.addEnvironment('PROJECTS', Lazy.string({
        produce: () => stack.toJsonString(this.projects.map((p): CleanupProject => ({
          projectName: p.project.projectName, defaultBranchTag: imageCacheRef(p.imageName, p.defaultBranch),
          ...(p.imageName ? { imageName: p.imageName } : {}),
        }))),
      }));
    }
  }

  /**
   * A metric the cleanup function publishes for this repository (embedded metric format, namespace `CachedImageBuild`,
   * dimension `Repository`): `ImagesScanned`, `ImagesDeleted` (also per `Reason`), `ImagesPlannedForDeletion`,
   * `BytesReclaimed`, `CacheRepositoryBytes`, `CacheRepositoryImages`, `DeleteFailures`, `IndexReadFailures`, `FailSafe`,
   * `DeletionRefused`.
   *
   * @param metricName one of the names above
   * @param statistic @default Stats.SUM
   * @param period @default Duration.days(1)
   */
  public metric(metricName: string, statistic = cloudwatch.Stats.SUM, period = Duration.days(1)): cloudwatch.Metric {
    return cleanupMetric(this.repositoryName, metricName, statistic, period);
  }

  private flagAlarm(id: string, metricName: string, description: string): cloudwatch.Alarm {
    return new cloudwatch.Alarm(this, id, {
      alarmDescription: description,
      metric: this.metric(metricName, cloudwatch.Stats.MAXIMUM),
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
  }
}

/** @internal */
export function cleanupMetric(repositoryName: string, metricName: string, statistic: string, period: Duration): cloudwatch.Metric {
  return new cloudwatch.Metric({
    namespace: DEFAULT_METRICS_NAMESPACE, metricName, statistic, period,
    dimensionsMap: { [CleanupMetricDimension.REPOSITORY]: repositoryName },
  });
}

/** The prebundled handler: assets/cache-cleanup next to lib/ (source tree) or dist/lib/ (package). */
function bundleDir(): string {
  const candidates = [path.join(__dirname, '..', 'assets', 'cache-cleanup'), path.join(__dirname, '..', '..', 'assets', 'cache-cleanup')];
  const found = candidates.find(d => fs.existsSync(path.join(d, 'index.js')));
  if (!found) {
    throw new Error(`cdk-cached-image-build: the cleanup handler bundle is missing (looked in ${candidates.join(', ')}); run 'npm run bundle'`);
  }
  return found;
}
