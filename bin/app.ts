#!/usr/bin/env node
/**
 * Example: a pipeline that builds a container image with a remote layer cache that works on every build.
 *
 *   npx cdk synth                                   S3 source (upload source.zip to the bucket)
 *   npx cdk synth -c connectionArn=arn:aws:codeconnections:... -c repository=owner/repo [-c branch=main]
 *   npx cdk synth -c ecsServiceArn=arn:aws:ecs:REGION:ACCOUNT:service/CLUSTER/SERVICE   adds an ECS deploy stage
 *   npx cdk synth -c strategy=inline|buildah|registry
 */
import { App, Stack, StackProps, Validations } from 'aws-cdk-lib';
import * as codebuild from 'aws-cdk-lib/aws-codebuild';
import * as codepipeline from 'aws-cdk-lib/aws-codepipeline';
import * as actions from 'aws-cdk-lib/aws-codepipeline-actions';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { AwsSolutionsChecks } from 'cdk-nag';
import { Construct } from 'constructs';
import { CachedImageBuild, CacheStrategy } from '../lib';
import { acknowledgeExampleFindings } from './nag-acknowledgements';

export interface PipelineStackProps extends StackProps {
  /** CodeStar / CodeConnections connection ARN; with `repository`, replaces the S3 source. */
  readonly connectionArn?: string;
  /** `owner/repo` of the connected repository. */
  readonly repository?: string;
  /** Branch to build. @default 'main' */
  readonly branch?: string;
  /** ECS service ARN (`arn:aws:ecs:REGION:ACCOUNT:service/CLUSTER/SERVICE`) to deploy to. */
  readonly ecsServiceArn?: string;
  /** Cache strategy. @default registry */
  readonly strategy?: string;
}

export class PipelineStack extends Stack {
  public readonly build: CachedImageBuild;
  public readonly pipeline: codepipeline.Pipeline;

  constructor(scope: Construct, id: string, props: PipelineStackProps = {}) {
    super(scope, id, props);
    const branch = props.branch ?? 'main';
    if ((props.connectionArn === undefined) !== (props.repository === undefined)) {
      throw new Error(`${id}: connectionArn and repository go together, got connectionArn=${props.connectionArn} repository=${props.repository}`);
    }
    const [owner, repo, ...rest] = (props.repository ?? '').split('/');
    if (props.repository !== undefined && (!owner || !repo || rest.length > 0)) {
      throw new Error(`${id}: repository must be owner/repo, got '${props.repository}'`);
    }

    this.build = new CachedImageBuild(this, 'Image', {
      strategy: strategyFrom(props.strategy),
      defaultBranch: branch,
      readOnlyBranches: ['pr-*', 'dependabot/*'],
    });

    const source = new codepipeline.Artifact('Source');
    let sourceAction: actions.Action;
    let sourceBucket: s3.Bucket | undefined;
    const buildEnv: Record<string, codebuild.BuildEnvironmentVariable> = {};
    if (props.connectionArn && props.repository) {
      const connection = new actions.CodeStarConnectionsSourceAction({
        actionName: 'Source', connectionArn: props.connectionArn, owner, repo, branch, output: source,
        // The build reads the branch and the commit from git metadata and the action's variables.
        codeBuildCloneOutput: true,
      });
      sourceAction = connection;
      buildEnv.CACHE_BRANCH = { value: connection.variables.branchName };
      buildEnv.IMAGE_TAG = { value: connection.variables.commitId };
    } else {
      const bucket = sourceBucket = new s3.Bucket(this, 'SourceBucket', {
        versioned: true, enforceSSL: true, blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL, encryption: s3.BucketEncryption.S3_MANAGED,
      });
      const s3Source = new actions.S3SourceAction({ actionName: 'Source', bucket, bucketKey: 'source.zip', output: source });
      sourceAction = s3Source;
      // An uploaded zip has no branch: it builds, and caches, as the default branch.
      buildEnv.CACHE_BRANCH = { value: branch };
      buildEnv.IMAGE_TAG = { value: s3Source.variables.versionId };
    }

    const stages: codepipeline.StageProps[] = [
      { stageName: 'Source', actions: [sourceAction] },
      { stageName: 'Build', actions: [this.build.action({ input: source, environmentVariables: buildEnv })] },
    ];
    if (props.ecsServiceArn) {
      const service = ecs.BaseService.fromServiceArnWithCluster(this, 'Service', props.ecsServiceArn);
      const built = stages[1].actions![0].actionProperties.outputs![0];
      stages.push({ stageName: 'Deploy', actions: [new actions.EcsDeployAction({ actionName: 'Deploy', service, input: built })] });
    }
    this.pipeline = new codepipeline.Pipeline(this, 'Pipeline', {
      pipelineType: codepipeline.PipelineType.V2, restartExecutionOnUpdate: false, stages,
      // One account: no cross-account KMS key is needed; artifacts are encrypted with S3-managed keys.
      crossAccountKeys: false,
    });
    acknowledgeExampleFindings({
      pipeline: this.pipeline, project: this.build.project, sourceBucket, deployStage: this.pipeline.node.tryFindChild('Deploy'),
    });
  }
}

function strategyFrom(name: string | undefined): CacheStrategy {
  switch (name ?? 'registry') {
    case 'registry': return CacheStrategy.registry();
    case 'inline': return CacheStrategy.inline();
    case 'buildah': return CacheStrategy.buildah();
    default: throw new Error(`strategy must be registry, inline or buildah, got '${name}'`);
  }
}

if (require.main === module) {
  const app = new App();
  const ctx = (k: string): string | undefined => app.node.tryGetContext(k);
  // An ECS deploy action needs the stack in the service's account and region.
  const service = ctx('ecsServiceArn')?.split(':');
  new PipelineStack(app, 'CachedImagePipeline', {
    env: service && service.length >= 6 ? { region: service[3], account: service[4] } : undefined,
    connectionArn: ctx('connectionArn'), repository: ctx('repository'), branch: ctx('branch'),
    ecsServiceArn: ctx('ecsServiceArn'), strategy: ctx('strategy'),
  });
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
  app.synth();
}
