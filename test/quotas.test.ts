/**
 * Every quota row of the AWS contract register (test/aws-contract.md) that applies to a template, asserted on the
 * example app and on maximal props per strategy; and the checker itself shown to catch each rule it checks.
 */
import { App, Duration, Size, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as codepipeline from 'aws-cdk-lib/aws-codepipeline';
import * as actions from 'aws-cdk-lib/aws-codepipeline-actions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { PipelineStack } from '../bin/app';
import { CachedImageBuild, CacheStrategy } from '../lib';
import { lifecycleViolations, quotaViolations, TemplateJson, validSchedule } from './quotas';

/** The most a user can put into one CachedImageBuild, in a pipeline. */
function maximal(strategy: CacheStrategy): TemplateJson {
  const stack = new Stack(new App(), 'Max', { env: { account: '123456789012', region: 'eu-west-1' } });
  const buildArgs = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`BUILD_ARG_NUMBER_${i}`, 'v'.repeat(200)]));
  const buildSecrets = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [
    `secret-${i}`, secretsmanager.Secret.fromSecretNameV2(stack, `S${i}`, `team/build/secret-number-${i}`),
  ]));
  const build = new CachedImageBuild(stack, 'Build', {
    strategy, buildArgs, buildSecrets, target: 'runtime-stage', platform: 'linux/arm64', defaultBranch: 'release/main-line',
    readOnlyBranches: Array.from({ length: 20 }, (_, i) => `team-${i}/*`), containerName: 'web-application', projectName: 'a'.repeat(150),
    context: 'services/web', dockerfile: 'services/web/docker/Dockerfile.production', timeout: Duration.hours(36),
    repositoryOptions: { appRepositoryName: 'team/web-application', cacheRepositoryName: 'team/web-application-cache', mutableTags: ['latest', 'dev-*'] },
    encryptionKey: new kms.Key(stack, 'Key', { enableKeyRotation: true }),
    vpc: ec2.Vpc.fromVpcAttributes(stack, 'Vpc', { vpcId: 'vpc-0123456789abcdef0', availabilityZones: ['eu-west-1a'], privateSubnetIds: ['subnet-0123456789abcdef0'] }),
    cleanup: {
      idleTimeout: Duration.days(30), trustIndexPullTime: true, maxCacheBytes: Size.gibibytes(500), untaggedGracePeriod: Duration.days(2),
      runAfterEachBuild: true, maxDeletesPerRun: 5000, maxDeleteFraction: 0.3, allowLargeDeletes: true,
    },
    cacheHitAlarm: { threshold: 0.6, builds: 10, period: Duration.days(1) },
  });
  const source = new codepipeline.Artifact('Src');
  new codepipeline.Pipeline(stack, 'Pipeline', {
    crossAccountKeys: false,
    stages: [
      { stageName: 'Source', actions: [new actions.S3SourceAction({ actionName: 'S', bucket: s3.Bucket.fromBucketName(stack, 'B', 'src'), bucketKey: 'k', output: source })] },
      { stageName: 'Build', actions: [build.action({ input: source, variablesNamespace: 'Img' })] },
    ],
  });
  return Template.fromStack(stack).toJSON() as TemplateJson;
}

describe('the synthesized templates keep every quota of the register', () => {
  const variants: Array<[string, ConstructorParameters<typeof PipelineStack>[2]]> = [
    ['example app, S3 source', {}],
    ['example app, connection + ECS', {
      connectionArn: 'arn:aws:codeconnections:eu-west-1:123456789012:connection/abc', repository: 'acme/web', branch: 'trunk',
      ecsServiceArn: 'arn:aws:ecs:eu-west-1:123456789012:service/prod/web', env: { account: '123456789012', region: 'eu-west-1' },
    }],
    ['example app, inline', { strategy: 'inline' }],
    ['example app, buildah', { strategy: 'buildah' }],
  ];
  test.each(variants)('%s', (_name, props) => {
    const template = Template.fromStack(new PipelineStack(new App(), 'P', props)).toJSON() as TemplateJson;
    expect(quotaViolations(template)).toEqual([]);
  });

  test.each([['registry', CacheStrategy.registry()], ['inline', CacheStrategy.inline()], ['buildah', CacheStrategy.buildah()]])(
    'maximal props, %s strategy (40 build args of 200 characters, 10 secrets, 20 globs, every option)', (_name, strategy) => {
      expect(quotaViolations(maximal(strategy))).toEqual([]);
    });
});

describe('the checker catches each rule', () => {
  const project = (props: Record<string, unknown>) => ({ Resources: { P: { Type: 'AWS::CodeBuild::Project', Properties: props } } }) as TemplateJson;
  test.each<[string, TemplateJson, RegExp]>([
    ['buildspec length', project({ Source: { BuildSpec: 'x'.repeat(25_601) } }), /inline buildspec of 25601 characters/],
    ['reserved prefix', project({ Environment: { EnvironmentVariables: [{ Name: 'CODEBUILD_X', Value: '1' }] } }), /reserved prefix CODEBUILD_/],
    ['exported secret', project({
      Source: { BuildSpec: 'env:\n  exported-variables:\n    - TOKEN\n    - AWS_X\nphases: {}\n' },
      Environment: { EnvironmentVariables: [{ Name: 'TOKEN', Type: 'SECRETS_MANAGER', Value: 'arn' }] },
    }), /exported variable TOKEN is a secret/],
    ['timeout', project({ TimeoutInMinutes: 2161 }), /TimeoutInMinutes 2161/],
    ['pipeline configuration', { Resources: { P: { Type: 'AWS::CodePipeline::Pipeline', Properties: {
      Stages: [{ Actions: [{ Name: 'A', Configuration: { EnvironmentVariables: 'e'.repeat(1001) } }] }],
    } } } }, /configuration EnvironmentVariables is 1001 characters/],
    ['role policies', { Resources: {
      R: { Type: 'AWS::IAM::Role', Properties: {} },
      P: { Type: 'AWS::IAM::Policy', Properties: { Roles: [{ Ref: 'R' }], PolicyDocument: { Statement: Array.from({ length: 70 }, () => ({ Resource: { 'Fn::GetAtt': ['X', 'Arn'] } })) } } },
    } }, /R: inline policies of \d+ characters \(max 10240\)/],
    ['lambda environment', { Resources: { F: { Type: 'AWS::Lambda::Function', Properties: { Environment: { Variables: { POLICY: 'p'.repeat(4091) } } } } } },
      /environment of 4097 bytes/],
    ['alarm window', { Resources: { A: { Type: 'AWS::CloudWatch::Alarm', Properties: { Period: 300, EvaluationPeriods: 289 } } } }, /289 periods of 300 s exceed 86400 s/],
    ['schedule', { Resources: { E: { Type: 'AWS::Events::Rule', Properties: { ScheduleExpression: 'rate(1 days)' } } } }, /schedule expression 'rate\(1 days\)'/],
  ])('%s', (_name, template, message) => {
    expect(quotaViolations(template).join('\n')).toMatch(message);
  });

  test('lifecycle rules', () => {
    const policy = (rules: unknown[]) => JSON.stringify({ rules, pad: 'x'.repeat(100) });
    expect(lifecycleViolations(policy([{ rulePriority: 1, selection: { tagStatus: 'untagged', countType: 'sinceImagePushed', countUnit: 'days', countNumber: 0 } }])))
      .toEqual(['rule 1: countNumber 0']);
    expect(lifecycleViolations(policy([{ rulePriority: 1, selection: { tagStatus: 'any', countType: 'imageCountMoreThan', countNumber: 1e300 } }])))
      .toEqual(['rule 1: countNumber 1e+300']);
    expect(lifecycleViolations(policy([
      { rulePriority: 2, selection: { tagStatus: 'any', countType: 'imageCountMoreThan', countNumber: 1 } },
      { rulePriority: 3, selection: { tagStatus: 'tagged', countType: 'imageCountMoreThan', countNumber: 1 } },
    ]))).toEqual(["rule 2: 'any' rule is not evaluated last", 'rule 3: tagged without tagPrefixList or tagPatternList']);
    expect(lifecycleViolations('{"rules":[]}')).toEqual(['lifecycle policy of 12 characters (100..30720)']);
  });

  test('schedule expressions', () => {
    expect(['rate(1 day)', 'rate(5 minutes)', 'cron(0 3 * * ? *)'].map(validSchedule)).toEqual([true, true, true]);
    expect(['rate(1 days)', 'rate(2 hour)', 'rate(0 minutes)', 'every day'].map(validSchedule)).toEqual([false, false, false, false]);
  });
});
