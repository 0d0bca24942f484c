import { App, CfnResource, Duration, Lazy, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as sns from 'aws-cdk-lib/aws-sns';
import { AwsSolutionsChecks } from 'cdk-nag';
import { DEFAULT_METRICS_NAMESPACE, DeleteReason } from '../lambda/cache-cleanup/contract';
import { BuildMetric, BuildMetricDimension, CachedImageBuild, CachedImageBuildProps } from '../lib';
import { BUILD_METRICS, buildMetricsNamespace } from '../lib/build-script/build-script';
import { projectStatements, Setup, synth } from './synth';

type AlarmProps = {
  Metrics: Array<{ Id: string; Expression?: string; ReturnData?: boolean; MetricStat?: { Metric: { MetricName: string; Namespace: string;
    Dimensions: Array<{ Name: string; Value: unknown }> }; Period: number; Stat: string } }>;
  Threshold: number; ComparisonOperator: string; EvaluationPeriods: number; DatapointsToAlarm: number; TreatMissingData: string;
  AlarmActions?: unknown[]; AlarmDescription: string;
};

function cacheHitAlarm(t: Template): AlarmProps | undefined {
  const found = Object.entries(t.findResources('AWS::CloudWatch::Alarm')).find(([id]) => id.startsWith('BuildObservabilityCacheHitAlarm'));
  return found?.[1].Properties;
}

/** A reference in the dashboard body, rendered as a readable placeholder. */
function placeholder(token: unknown): string {
  const t = token as { Ref?: string; 'Fn::GetAtt'?: string[] };
  if (t.Ref) return `<${t.Ref}>`;
  if (t['Fn::GetAtt']) return `<${t['Fn::GetAtt'].join('.')}>`;
  throw new Error(`unexpected token in the dashboard body: ${JSON.stringify(token)}`);
}

type MetricRow = Array<string | { expression?: string; label?: string; stat?: string; period?: number }>;
type Widget = {
  type: string; x: number; y: number; width: number; height: number;
  properties: { title?: string; markdown?: string; metrics?: MetricRow[]; alarms?: string[]; stacked?: boolean;
    annotations?: { horizontal: Array<{ value: number }> } };
};

/** The dashboard body: an Fn::Join of JSON text and references, parsed with the references as placeholders. */
function dashboard(t: Template): Widget[] {
  const dashboards = Object.values(t.findResources('AWS::CloudWatch::Dashboard'));
  expect(dashboards).toHaveLength(1);
  const [sep, parts] = dashboards[0].Properties.DashboardBody['Fn::Join'] as [string, unknown[]];
  const body = JSON.parse(parts.map(p => (typeof p === 'string' ? p : placeholder(p))).join(sep));
  return body.widgets;
}

const titled = (widgets: Widget[], title: string) => widgets.find(w => w.properties.title === title);
const metricNames = (w: Widget | undefined) => (w?.properties.metrics ?? []).map(row => (typeof row[0] === 'string' ? row[1] : 'expression'));
const PROJECT = '<BuildProject943F6A6A>';
const REPOSITORY = '<BuildRepositoriesCacheC46EB7B9>';

describe('the build metrics contract', () => {
  test('names, namespace and dimensions are the ones the build script publishes', () => {
    expect(Object.values(BuildMetric)).toEqual([...BUILD_METRICS]);
    // Each project publishes in a namespace of its own; the cleanup's is the shared one, which no build role may write.
    expect(buildMetricsNamespace('web')).toBe('CachedImageBuild/web');
    expect(DEFAULT_METRICS_NAMESPACE).toBe('CachedImageBuild');
    expect(BuildMetricDimension).toEqual({ PROJECT: 'Project', BRANCH: 'Branch' });
  });

  test('metrics reach the build script; metrics: false turns publishing off', () => {
    // The script publishes unless told not to.
    expect(synth().build.scriptEnvironment.CIB_METRICS).toBeUndefined();
    const { build } = synth({ metrics: false, cacheHitAlarm: { enabled: false } });
    expect(build.scriptEnvironment.CIB_METRICS).toBe('false');
  });
});

describe('permission to publish', () => {
  test("PutMetricData only in the project's own namespace: no build can publish another project's metrics or the cleanup's", () => {
    const star = projectStatements(synth().t).filter(s => s.Resource === '*');
    expect(star).toContainEqual({
      Effect: 'Allow', Action: 'cloudwatch:PutMetricData', Resource: '*',
      Condition: { StringEquals: { 'cloudwatch:namespace': { 'Fn::Join': ['', ['CachedImageBuild/', { Ref: expect.stringMatching(/^BuildProject/) }]] } } },
    });
    expect(star.filter(s => [s.Action].flat().some(a => a.startsWith('cloudwatch:')))).toHaveLength(1);
  });

  test('with metrics off the role cannot put metrics at all', () => {
    const statements = projectStatements(synth({ metrics: false }).t);
    expect(JSON.stringify(statements)).not.toContain('cloudwatch:');
    expect(statements.filter(s => s.Resource === '*').flatMap(s => [s.Action].flat())).toEqual(['ecr:GetAuthorizationToken']);
  });
});

describe('the cache hit alarm', () => {
  test('defaults: the default branch, windows of at least 4 builds in a day, average below 0.5, missing data not breaching', () => {
    const { t, build } = synth();
    const alarm = cacheHitAlarm(t)!;
    expect(build.cacheHitAlarm).toBeDefined();
    expect(alarm).toMatchObject({
      Threshold: 0.5, ComparisonOperator: 'LessThanThreshold', EvaluationPeriods: 1, DatapointsToAlarm: 1, TreatMissingData: 'notBreaching',
    });
    expect(alarm.AlarmActions).toBeUndefined();
    const expression = alarm.Metrics.find(m => m.Expression)!;
    expect(expression).toMatchObject({ Expression: 'IF(builds >= 4, ratio, 1)', ReturnData: true });
    const byId = Object.fromEntries(alarm.Metrics.filter(m => m.MetricStat).map(m => [m.Id, m.MetricStat!]));
    const dims = [{ Name: 'Branch', Value: 'main' }, { Name: 'Project', Value: { Ref: expect.stringMatching(/^BuildProject/) } }];
    const ns = { 'Fn::Join': ['', ['CachedImageBuild/', { Ref: expect.stringMatching(/^BuildProject/) }]] };
    expect(byId.ratio).toEqual({ Metric: { Namespace: ns, MetricName: 'CacheHitRatio', Dimensions: dims }, Period: 86400, Stat: 'Average' });
    expect(byId.builds).toEqual({ Metric: { Namespace: ns, MetricName: 'CacheHitRatio', Dimensions: dims }, Period: 86400, Stat: 'SampleCount' });
    expect(alarm.AlarmDescription).toMatch(/'main' builds averaged below 0.5 over at least 4 builds in 1 day/);
  });

  test('threshold, builds, period, actions and the default branch are applied', () => {
    const { t } = synth({ defaultBranch: 'release/1.x' }, stack => ({
      cacheHitAlarm: {
        threshold: 0.3, builds: 5, period: Duration.hours(12), actions: [new cwActions.SnsAction(new sns.Topic(stack, 'Topic'))],
      },
    }));
    const alarm = cacheHitAlarm(t)!;
    expect(alarm.Threshold).toBe(0.3);
    expect(alarm.AlarmActions).toEqual([{ Ref: expect.stringMatching(/^Topic/) }]);
    expect(alarm.Metrics.find(m => m.Expression)!.Expression).toBe('IF(builds >= 5, ratio, 1)');
    for (const m of alarm.Metrics.filter(x => x.MetricStat)) {
      expect(m.MetricStat!.Period).toBe(43200);
      expect(m.MetricStat!.Metric.Dimensions).toContainEqual({ Name: 'Branch', Value: 'release/1.x' });
    }
  });

  test('disabled, or metrics off: no cache hit alarm (the cleanup alarms stay)', () => {
    for (const props of [{ cacheHitAlarm: { enabled: false } }, { metrics: false }]) {
      const { t, build } = synth(props);
      expect(cacheHitAlarm(t)).toBeUndefined();
      expect(build.cacheHitAlarm).toBeUndefined();
      t.resourceCountIs('AWS::CloudWatch::Alarm', 3);
    }
  });

  /**
   * The alarm as CloudWatch evaluates it, read from the template: every minute, over the `period` that ends then,
   * IF(SampleCount >= N, Average, 1) < threshold. Builds are [hour, ratio]; returns whether any evaluation fired.
   */
  function fires(alarm: AlarmProps, builds: Array<[number, number]>): boolean {
    const n = Number(/IF\(builds >= (\d+), ratio, 1\)/.exec(alarm.Metrics.find(m => m.Expression)!.Expression!)![1]);
    const periodHours = alarm.Metrics.find(m => m.Id === 'ratio')!.MetricStat!.Period / 3600;
    const end = Math.max(...builds.map(([h]) => h)) + periodHours;
    for (let now = 0; now <= end; now += 1 / 60) {
      const inWindow = builds.filter(([h]) => h > now - periodHours && h <= now).map(([, r]) => r);
      if (inWindow.length === 0) continue; // missing data: not breaching
      const value = inWindow.length >= n ? inWindow.reduce((a, b) => a + b, 0) / inWindow.length : 1;
      if (value < alarm.Threshold) return true;
    }
    return false;
  }
  // A 6-step Dockerfile whose app layer changes every commit: 4 of 6 steps cached when healthy.
  const HEALTHY = 0.67;
  const every = (hours: number, ratios: number[]): Array<[number, number]> => ratios.map((r, i) => [i * hours, r]);

  test('design: the every-other-build bug and a persistent miss fire; healthy builds and a single cold build do not', () => {
    const alarm = cacheHitAlarm(synth().t)!;
    for (const hours of [2, 6]) { // a busy branch (12 builds a window), a quiet one (exactly 4 builds a window)
      expect(fires(alarm, every(hours, [HEALTHY, 0, HEALTHY, 0, HEALTHY, 0, HEALTHY, 0]))).toBe(true);
      expect(fires(alarm, every(hours, [0, 0, 0, 0]))).toBe(true);
      expect(fires(alarm, every(hours, Array(12).fill(HEALTHY)))).toBe(false);
      // A dependency change: one build re-runs the dependency steps (2 of 6 cached), or even every step.
      expect(fires(alarm, every(hours, [HEALTHY, HEALTHY, 0.33, HEALTHY, HEALTHY, HEALTHY, HEALTHY]))).toBe(false);
      expect(fires(alarm, every(hours, [HEALTHY, HEALTHY, 0, HEALTHY, HEALTHY, HEALTHY, HEALTHY]))).toBe(false);
    }
    // A regression after a healthy history shows once its builds are about half of the window's.
    expect(fires(alarm, every(2, [...Array(12).fill(HEALTHY), HEALTHY, 0, HEALTHY, 0, HEALTHY, 0, HEALTHY, 0]))).toBe(true);
    // Fewer builds than the window needs are no evidence, however cold.
    expect(fires(alarm, every(2, [0, 0, 0]))).toBe(false);
    expect(fires(alarm, every(30, [0, 0, 0, 0, 0]))).toBe(false);
  });
});

describe('the dashboard', () => {
  test('layout: header; hit ratio, steps, alarms; duration, bytes pushed; repository size, bytes reclaimed, deletions by reason', () => {
    const { t, build } = synth();
    expect(build.dashboard).toBeDefined();
    const widgets = dashboard(t);
    const grid = widgets.map(w => [w.y, w.x, w.width, w.properties.title ?? w.type]);
    expect(grid).toEqual([
      [0, 0, 24, 'text'],
      [2, 0, 8, 'Cache hit ratio per build'], [2, 8, 8, 'Steps per build (main)'], [2, 16, 8, 'Alarms'],
      [8, 0, 12, 'Build duration (CodeBuild)'], [8, 12, 12, 'Cache bytes pushed per build'],
      [14, 0, 8, 'Cache repository size'], [14, 8, 8, 'Bytes reclaimed by the cleanup'], [14, 16, 8, 'Cleanup deletions by reason'],
    ]);
    t.hasResourceProperties('AWS::CloudWatch::Dashboard', { DashboardBody: Match.anyValue(), DashboardName: Match.absent() });
    expect(JSON.parse(JSON.stringify(t.toJSON()))).toBeDefined();
  });

  test('build metrics: the default branch as a metric, the other branches by SEARCH, the threshold as an annotation', () => {
    const widgets = dashboard(synth().t);
    const ratio = titled(widgets, 'Cache hit ratio per build')!;
    expect(ratio.properties.metrics![0]).toEqual([`CachedImageBuild/${PROJECT}`, 'CacheHitRatio', 'Branch', 'main', 'Project', PROJECT, { label: 'main' }]);
    expect(ratio.properties.metrics![1]).toEqual([{
      expression: `SEARCH('{CachedImageBuild/${PROJECT},Branch,Project} MetricName="CacheHitRatio" Project="${PROJECT}" NOT Branch="main"', 'Average', 300)`,
      label: "${PROP('Dim.Branch')}",
    }]);
    expect(ratio.properties.annotations!.horizontal).toEqual([expect.objectContaining({ value: 0.5 })]);
    const steps = titled(widgets, 'Steps per build (main)')!;
    expect(steps.properties.metrics!.map(row => row.slice(0, 6))).toEqual([
      [`CachedImageBuild/${PROJECT}`, 'StepsExecuted', 'Branch', 'main', 'Project', PROJECT],
      [`CachedImageBuild/${PROJECT}`, 'StepsCached', 'Branch', 'main', 'Project', PROJECT],
    ]);
    expect(steps.properties.stacked).toBe(true);
    const pushed = titled(widgets, 'Cache bytes pushed per build')!;
    expect(metricNames(pushed)).toEqual(['CacheBytesPushed', 'expression']);
    expect(JSON.stringify(pushed.properties.metrics![1])).toContain('MetricName=\\"CacheBytesPushed\\"');
  });

  test('build duration is CodeBuild\'s own Duration metric of the project', () => {
    const duration = titled(dashboard(synth().t), 'Build duration (CodeBuild)')!;
    expect(duration.properties.metrics!.map(row => row.slice(0, 4))).toEqual([
      ['AWS/CodeBuild', 'Duration', 'ProjectName', PROJECT], ['AWS/CodeBuild', 'Duration', 'ProjectName', PROJECT],
    ]);
    expect(duration.properties.metrics!.map(row => (row[4] as { stat?: string }).stat ?? 'Average')).toEqual(['Average', 'Maximum']);
  });

  test('cleanup widgets: repository size, bytes reclaimed, deletions for every reason, from the cache repository', () => {
    const widgets = dashboard(synth().t);
    expect(titled(widgets, 'Cache repository size')!.properties.metrics![0].slice(0, 4))
      .toEqual(['CachedImageBuild', 'CacheRepositoryBytes', 'Repository', REPOSITORY]);
    expect(titled(widgets, 'Bytes reclaimed by the cleanup')!.properties.metrics![0].slice(0, 4))
      .toEqual(['CachedImageBuild', 'BytesReclaimed', 'Repository', REPOSITORY]);
    const deletions = titled(widgets, 'Cleanup deletions by reason')!.properties.metrics!;
    expect(deletions.map(row => row.slice(0, 6))).toEqual(Object.values(DeleteReason).map(reason => (
      ['CachedImageBuild', 'ImagesDeleted', 'Reason', reason, 'Repository', REPOSITORY])));
    expect(deletions).toHaveLength(4);
  });

  test('the alarm widget shows the cache hit alarm and the cleanup\'s three alarms', () => {
    const alarms = titled(dashboard(synth().t), 'Alarms')!.properties.alarms!;
    expect(alarms).toHaveLength(4);
    expect(alarms[0]).toMatch(/^<BuildObservabilityCacheHitAlarm\w+\.Arn>$/);
    expect(alarms.slice(1).map(a => a.replace(/[0-9A-F]{8}\.Arn>$/, ''))).toEqual(['<BuildCleanupErrors', '<BuildCleanupDeletionRefused', '<BuildCleanupFailSafe']);
  });

  test('without the cleanup: no cleanup widgets, only the cache hit alarm', () => {
    const widgets = dashboard(synth({ cleanup: { enabled: false } }).t);
    for (const title of ['Cache repository size', 'Bytes reclaimed by the cleanup', 'Cleanup deletions by reason']) {
      expect(titled(widgets, title)).toBeUndefined();
    }
    expect(titled(widgets, 'Alarms')!.properties.alarms).toEqual([expect.stringMatching(/^<BuildObservabilityCacheHitAlarm/)]);
    expect(JSON.stringify(widgets)).not.toContain('Repository');
  });

  test('without build metrics: no build-metric widget, no threshold; duration beside the cleanup alarms', () => {
    const widgets = dashboard(synth({ metrics: false }).t);
    expect(JSON.stringify(widgets)).not.toMatch(/CacheHitRatio|StepsExecuted|CacheBytesPushed/);
    expect(widgets.slice(1, 3).map(w => [w.y, w.x, w.width, w.properties.title])).toEqual([
      [2, 0, 16, 'Build duration (CodeBuild)'], [2, 16, 8, 'Alarms'],
    ]);
    expect(titled(widgets, 'Alarms')!.properties.alarms).toHaveLength(3);
  });

  test('no alarms at all: no alarm widget, duration full width', () => {
    const widgets = dashboard(synth({ metrics: false, cleanup: { enabled: false } }).t);
    expect(widgets.map(w => w.properties.title ?? w.type)).toEqual(['text', 'Build duration (CodeBuild)']);
    expect(widgets[1].width).toBe(24);
  });

  test('alarm disabled: no threshold annotation', () => {
    const widgets = dashboard(synth({ cacheHitAlarm: { enabled: false } }).t);
    expect(titled(widgets, 'Cache hit ratio per build')!.properties.annotations).toBeUndefined();
  });

  test('a custom threshold is the annotation', () => {
    const ratio = titled(dashboard(synth({ cacheHitAlarm: { threshold: 0.4 } }).t), 'Cache hit ratio per build')!;
    expect(ratio.properties.annotations!.horizontal[0].value).toBe(0.4);
  });

  test('a default branch with a quote is not excluded from the SEARCH (shown twice, never escaped wrong)', () => {
    const ratio = titled(dashboard(synth({ defaultBranch: 'it\'s' }).t), 'Cache hit ratio per build')!;
    expect(JSON.stringify(ratio.properties.metrics![1])).not.toContain('NOT Branch');
  });

  test('name and interval; disabled: no dashboard', () => {
    const { t } = synth({ dashboard: { dashboardName: 'web-cache', defaultInterval: Duration.days(3) } });
    t.hasResourceProperties('AWS::CloudWatch::Dashboard', { DashboardName: 'web-cache' });
    expect(JSON.stringify(t.toJSON())).toContain('\\"start\\":\\"-P3D\\"');
    const off = synth({ dashboard: { enabled: false } });
    off.t.resourceCountIs('AWS::CloudWatch::Dashboard', 0);
    expect(off.build.dashboard).toBeUndefined();
  });

  test('no synth warnings from the math and search expressions', () => {
    const { stack } = synth();
    Template.fromStack(stack);
    expect(Annotations.fromStack(stack).findWarning('*', Match.anyValue())).toEqual([]);
  });
});

describe('metric helpers', () => {
  test.each([
    ['metricCacheHitRatio', 'CacheHitRatio'], ['metricStepsExecuted', 'StepsExecuted'], ['metricStepsCached', 'StepsCached'],
    ['metricCacheBytesPushed', 'CacheBytesPushed'], ['metricBuildSeconds', 'BuildSeconds'],
  ] as const)('%s: the default branch by default, any branch on request', (method, metricName) => {
    const { stack, build } = synth({ defaultBranch: 'trunk' });
    const m = build[method]();
    expect(stack.resolve(m.namespace)).toEqual({ 'Fn::Join': ['', ['CachedImageBuild/', { Ref: expect.stringMatching(/^BuildProject/) }]] });
    expect(m.metricName).toBe(metricName);
    expect(m.statistic).toBe('Average');
    expect(stack.resolve(m.dimensions)).toEqual({ Project: { Ref: expect.stringMatching(/^BuildProject/) }, Branch: 'trunk' });
    const other = build[method]('feature/x', { statistic: cloudwatch.Stats.MAXIMUM, period: Duration.hours(1) });
    expect(other.dimensions!.Branch).toBe('feature/x');
    expect(other.statistic).toBe('Maximum');
    expect(other.period.toHours()).toBe(1);
  });

  test('an invalid branch is refused with the value', () => {
    expect(() => synth().build.metricCacheHitRatio('a..b')).toThrow(/branch 'a..b' is not a valid branch name/);
  });
});

describe('validation names the option and the value', () => {
  test.each<[string, CachedImageBuildProps, RegExp]>([
    ['threshold above 1', { cacheHitAlarm: { threshold: 1.5 } }, /Build: cacheHitAlarm.threshold must be in \(0, 1\], got 1.5/],
    ['threshold 0', { cacheHitAlarm: { threshold: 0 } }, /cacheHitAlarm.threshold must be in \(0, 1\], got 0/],
    ['negative threshold', { cacheHitAlarm: { threshold: -0.1 } }, /cacheHitAlarm.threshold must be in \(0, 1\], got -0.1/],
    ['fractional builds', { cacheHitAlarm: { builds: 2.5 } }, /cacheHitAlarm.builds must be an integer >= 1, got 2.5/],
    ['zero builds', { cacheHitAlarm: { builds: 0 } }, /cacheHitAlarm.builds must be an integer >= 1, got 0/],
    ['period too long', { cacheHitAlarm: { period: Duration.days(8) } }, /cacheHitAlarm.period must be whole minutes from 1 minute to 7 days, got 8 days/],
    ['period too short', { cacheHitAlarm: { period: Duration.seconds(30) } }, /cacheHitAlarm.period must be whole minutes .* got 30 seconds/],
    ['period not whole minutes', { cacheHitAlarm: { period: Duration.seconds(90) } }, /cacheHitAlarm.period must be whole minutes .* got 1 minute 30 seconds/],
    ['alarm disabled with options', { cacheHitAlarm: { enabled: false, threshold: 0.2, builds: 4 } },
      /cacheHitAlarm.enabled is false but threshold, builds are set: remove them or enable the alarm/],
    ['alarm without metrics', { metrics: false, cacheHitAlarm: { threshold: 0.2 } }, /cacheHitAlarm needs the build metrics, but metrics is false/],
    ['alarm enabled without metrics', { metrics: false, cacheHitAlarm: { enabled: true } }, /cacheHitAlarm needs the build metrics/],
    ['dashboard name', { dashboard: { dashboardName: 'my cache' } }, /dashboard.dashboardName must be 1-255 of \[A-Za-z0-9_-\], got 'my cache'/],
    ['dashboard interval', { dashboard: { defaultInterval: Duration.seconds(10) } }, /dashboard.defaultInterval must be at least 1 minute, got 10 seconds/],
    ['dashboard disabled with a name', { dashboard: { enabled: false, dashboardName: 'x' } },
      /dashboard.enabled is false but dashboardName is set: remove them or enable the dashboard/],
  ])('%s', (_name, props, message) => {
    expect(() => synth(props)).toThrow(message);
  });

  test('tokens are not validated at synth', () => {
    const later = (n: number) => Lazy.number({ produce: () => n });
    expect(() => synth({ cacheHitAlarm: { threshold: later(2), builds: later(0) }, dashboard: { dashboardName: Lazy.string({ produce: () => 'x' }) } }))
      .not.toThrow();
  });

  test('a failed option leaves no resources behind', () => {
    const stack = new Stack(new App(), 'S');
    expect(() => new CachedImageBuild(stack, 'B', { cacheHitAlarm: { threshold: 2 } })).toThrow();
    // Looked for in the tree: synthesizing an empty stack would only make CDK warn that a template needs resources.
    expect(stack.node.findAll().filter(c => CfnResource.isCfnResource(c)).map(c => c.node.path)).toEqual([]);
  });
});

describe('cdk-nag', () => {
  test('AwsSolutions finds nothing unacknowledged with an alarm action, a named dashboard, or metrics off', () => {
    const variants: Setup[] = [
      stack => ({ cacheHitAlarm: { actions: [new cwActions.SnsAction(new sns.Topic(stack, 'T', { enforceSSL: true }))] }, dashboard: { dashboardName: 'c' } }),
      () => ({ metrics: false }),
    ];
    for (const setup of variants) {
      const app = new App();
      const stack = new Stack(app, 'Nag');
      new CachedImageBuild(stack, 'Build', setup(stack));
      const report = new AwsSolutionsChecks(app).validateScope(app);
      expect(report.violations.map(v => `${v.ruleName} at ${v.violatingResources.map(r => r.constructPath).join(', ')}`)).toEqual([]);
    }
  });
});
