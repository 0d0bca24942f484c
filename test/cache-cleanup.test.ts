import { App, Duration, Size, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as events from 'aws-cdk-lib/aws-events';
import { CacheCleanup, CachedImageBuild, CachedImageBuildProps } from '../lib';
import { branchTag } from '../lib/build-script/cache-refs';

function synth(props: CachedImageBuildProps = {}): Template {
  const stack = new Stack(new App(), 'S', { env: { account: '123456789012', region: 'eu-west-1' } });
  new CachedImageBuild(stack, 'Build', props);
  return Template.fromStack(stack);
}

type Statement = { Action: string | string[]; Resource: unknown };

function cleanupStatements(t: Template): Statement[] {
  const policies = Object.entries(t.findResources('AWS::IAM::Policy')).filter(([id]) => id.startsWith('BuildCleanupRole'));
  expect(policies).toHaveLength(1);
  return policies[0][1].Properties.PolicyDocument.Statement;
}

describe('CacheCleanup wired into CachedImageBuild', () => {
  test('a prebundled handler on the pinned runtime, with the policy in its environment', () => {
    const t = synth({ defaultBranch: 'release/1.x', cleanup: { idleTimeout: Duration.days(7), maxCacheBytes: Size.gibibytes(5) } });
    expect(CacheCleanup.RUNTIME.name).toBe('nodejs22.x');
    const fn = Object.values(t.findResources('AWS::Lambda::Function'))[0].Properties;
    expect(fn.Runtime).toBe('nodejs22.x');
    expect(fn.Handler).toBe('index.handler');
    expect(fn.Code.S3Key).toMatch(/^[0-9a-f]{64}\.zip$/);
    expect(fn.ReservedConcurrentExecutions).toBe(1);
    const env = fn.Environment.Variables;
    expect(env.DRY_RUN).toBe('false');
    expect(env.METRICS_NAMESPACE).toBe('CachedImageBuild');
    expect(env.CACHE_REPOSITORY_NAME).toEqual({ Ref: expect.stringMatching(/^BuildRepositoriesCache/) });
    expect(env.PROJECT_NAME).toEqual({ Ref: expect.stringMatching(/^BuildProject/) });
    expect(JSON.parse(env.POLICY)).toEqual({
      defaultBranchTag: branchTag('release/1.x'), idleTimeoutSeconds: 7 * 86400, maxCacheBytes: 5 * 1024 ** 3,
    });
  });

  test('the role can touch only the cache repository and read only its project: never the app repository', () => {
    const t = synth();
    const statements = cleanupStatements(t);
    const ecrStatements = statements.filter(s => [s.Action].flat().some(a => a.startsWith('ecr:')));
    expect(ecrStatements).toEqual([{
      Effect: 'Allow', Action: ['ecr:DescribeImages', 'ecr:BatchGetImage', 'ecr:BatchDeleteImage'],
      Resource: { 'Fn::GetAtt': [expect.stringMatching(/^BuildRepositoriesCache/), 'Arn'] },
    }]);
    const cb = statements.filter(s => [s.Action].flat().some(a => a.startsWith('codebuild:')));
    expect(cb).toEqual([{
      Effect: 'Allow', Action: ['codebuild:ListBuildsForProject', 'codebuild:BatchGetBuilds'],
      Resource: { 'Fn::GetAtt': [expect.stringMatching(/^BuildProject/), 'Arn'] },
    }]);
    const app = Object.keys(t.findResources('AWS::ECR::Repository')).find(id => id.startsWith('BuildRepositoriesApp'))!;
    expect(JSON.stringify(statements)).not.toContain(app);
    expect(statements.some(s => s.Resource === '*')).toBe(false);
    // No managed policy: AWSLambdaBasicExecutionRole would allow writing to every log group.
    const role = Object.entries(t.findResources('AWS::IAM::Role')).find(([id]) => id.startsWith('BuildCleanupRole'))![1];
    expect(role.Properties.ManagedPolicyArns).toBeUndefined();
  });

  test('runs daily by default, on a custom schedule, and after each build when asked', () => {
    synth().hasResourceProperties('AWS::Events::Rule', { ScheduleExpression: 'rate(1 day)', State: 'ENABLED' });
    const t = synth({ cleanup: { schedule: events.Schedule.cron({ hour: '3', minute: '0' }), runAfterEachBuild: true } });
    t.hasResourceProperties('AWS::Events::Rule', { ScheduleExpression: 'cron(0 3 * * ? *)' });
    t.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: Match.objectLike({ 'source': ['aws.codebuild'], 'detail': Match.objectLike({ 'build-status': ['SUCCEEDED'] }) }),
    });
  });

  test('an alarm fires on handler errors; logs are kept', () => {
    const t = synth({ cleanup: { dryRun: true } });
    t.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'Errors', Namespace: 'AWS/Lambda', Threshold: 1, ComparisonOperator: 'GreaterThanOrEqualToThreshold',
    });
    t.hasResourceProperties('AWS::Logs::LogGroup', { RetentionInDays: 90 });
    for (const name of ['DeletionRefused', 'FailSafe']) {
      t.hasResourceProperties('AWS::CloudWatch::Alarm', {
        MetricName: name, Namespace: 'CachedImageBuild', Statistic: 'Maximum', Threshold: 1,
        Dimensions: [{ Name: 'Repository', Value: { Ref: Match.stringLikeRegexp('^BuildRepositoriesCache') } }],
      });
    }
    t.hasResourceProperties('AWS::Lambda::Function', { Environment: { Variables: Match.objectLike({ DRY_RUN: 'true' }) } });
  });

  test('trustIndexPullTime is set from CDK and reaches the function\'s policy; a non-boolean is refused with its value', () => {
    const fn = (t: Template) => Object.values(t.findResources('AWS::Lambda::Function'))[0].Properties;
    expect(JSON.parse(fn(synth({ cleanup: { trustIndexPullTime: true } })).Environment.Variables.POLICY)).toMatchObject({ trustIndexPullTime: true });
    expect(JSON.parse(fn(synth()).Environment.Variables.POLICY).trustIndexPullTime).toBeUndefined();
    expect(() => synth({ cleanup: { trustIndexPullTime: 'yes' as never } })).toThrow(/cleanup.trustIndexPullTime must be a boolean, got 'yes'/);
  });

  test('an option that does not exist (such as the removed maxRefsPerBranch) is refused, not ignored', () => {
    expect(() => synth({ cleanup: { maxRefsPerBranch: 2 } as never })).toThrow(/cleanup.maxRefsPerBranch is not a cleanup option/);
  });

  test('disabled: no function, no rule', () => {
    const t = synth({ cleanup: { enabled: false } });
    t.resourceCountIs('AWS::Lambda::Function', 0);
    t.resourceCountIs('AWS::Events::Rule', 0);
  });
});
