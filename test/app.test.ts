import { App, Stack, Validations } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { IConstruct } from 'constructs';
import { PipelineStack } from '../bin/app';
import { CachedImageBuild, CacheStrategy } from '../lib';

/** Runs the AwsSolutions pack over a tree: every finding not acknowledged (with a reason) is a violation. */
function nagViolations(scope: IConstruct): string[] {
  const report = new AwsSolutionsChecks(scope).validateScope(scope);
  return report.violations.map(v => `${v.ruleName} at ${v.violatingResources.map(r => r.constructPath).join(', ')}`);
}

/** Every acknowledgement in the tree, with its reason. */
function acknowledgements(scope: IConstruct): Array<{ id: string; reason: string }> {
  return scope.node.findAll().flatMap(c => c.node.metadata
    .filter(m => m.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)
    .flatMap(m => Object.entries(m.data as Record<string, string>).map(([id, reason]) => ({ id, reason }))));
}

/** The template with asset hashes and other run-dependent values blanked. */
function stable(t: Template): unknown {
  return JSON.parse(JSON.stringify(t.toJSON()).replace(/[0-9a-f]{64}(\.zip|\.sh)?/g, 'HASH'));
}

describe('the example pipeline app', () => {
  const variants: Array<[string, ConstructorParameters<typeof PipelineStack>[2]]> = [
    ['S3 source', {}],
    ['connection source + ECS deploy', {
      connectionArn: 'arn:aws:codeconnections:eu-west-1:123456789012:connection/abc', repository: 'acme/web', branch: 'trunk',
      ecsServiceArn: 'arn:aws:ecs:eu-west-1:123456789012:service/prod/web', env: { account: '123456789012', region: 'eu-west-1' },
    }],
    ['inline strategy', { strategy: 'inline' }],
    ['buildah strategy', { strategy: 'buildah' }],
  ];

  test.each(variants)('%s: cdk-nag AwsSolutions finds nothing unacknowledged, and every acknowledgement has a reason', (_name, props) => {
    const app = new App();
    const stack = new PipelineStack(app, 'Pipeline', props);
    expect(nagViolations(app)).toEqual([]);
    const acks = acknowledgements(stack);
    expect(acks.length).toBeGreaterThan(0);
    for (const a of acks) expect(a.reason.length).toBeGreaterThan(20);
  });

  test('the connection variant passes branch and commit to the build, and deploys to ECS', () => {
    const stack = new PipelineStack(new App(), 'P', variants[1][1]);
    const pipeline = Object.values(Template.fromStack(stack).findResources('AWS::CodePipeline::Pipeline'))[0].Properties;
    const build = pipeline.Stages[1].Actions[0];
    const env = JSON.parse(build.Configuration.EnvironmentVariables);
    expect(env).toEqual([
      { name: 'CACHE_BRANCH', type: 'PLAINTEXT', value: '#{Source_Source_NS.BranchName}' },
      { name: 'IMAGE_TAG', type: 'PLAINTEXT', value: '#{Source_Source_NS.CommitId}' },
    ]);
    expect(pipeline.Stages.map((s: { Name: string }) => s.Name)).toEqual(['Source', 'Build', 'Deploy']);
    expect(pipeline.Stages[2].Actions[0].InputArtifacts).toEqual(build.OutputArtifacts);
  });

  test('bad context is refused with the value', () => {
    expect(() => new PipelineStack(new App(), 'P', { strategy: 'kaniko' })).toThrow(/strategy must be registry, inline or buildah, got 'kaniko'/);
    expect(() => new PipelineStack(new App(), 'P', { connectionArn: 'arn:x' })).toThrow(/connectionArn and repository go together/);
    expect(() => new PipelineStack(new App(), 'P', { connectionArn: 'arn:x', repository: 'nope' })).toThrow(/repository must be owner\/repo, got 'nope'/);
  });

  test('snapshot (asset hashes blanked)', () => {
    const stack = new PipelineStack(new App(), 'Pipeline');
    expect(stable(Template.fromStack(stack))).toMatchSnapshot();
  });
});

describe('a minimal stack', () => {
  test('cdk-nag AwsSolutions finds nothing unacknowledged in CachedImageBuild alone', () => {
    for (const strategy of [CacheStrategy.registry(), CacheStrategy.inline(), CacheStrategy.buildah()]) {
      const app = new App();
      new CachedImageBuild(new Stack(app, 'Minimal'), 'Build', { strategy });
      expect(nagViolations(app)).toEqual([]);
    }
  });

  test('with a known environment the acknowledged ARNs follow it', () => {
    const app = new App();
    new CachedImageBuild(new Stack(app, 'Env', { env: { account: '123456789012', region: 'us-east-2' } }), 'Build');
    expect(nagViolations(app)).toEqual([]);
  });
});
