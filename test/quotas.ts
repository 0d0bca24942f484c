/**
 * The AWS quotas and rules of test/aws-contract.md that apply to a synthesized CloudFormation template, as one checker:
 * `quotaViolations(template)` lists every rule a template breaks (empty: the services would take it).
 *
 * A CloudFormation reference (`Ref`, `Fn::GetAtt`, `Fn::Join`, ...) is counted as REFERENCE_LENGTH characters where a
 * length matters: the longest value ours resolve to (an ECR repository ARN with a generated name) is about 110.
 */

/** Characters a CloudFormation reference is counted as in size checks. */
export const REFERENCE_LENGTH = 150;

/** The longest value of each pseudo parameter (aws-iso-b, ap-southeast-7, 12 digits, ...). */
const PSEUDO_PARAMETERS: Record<string, number> = {
  'AWS::Partition': 'aws-iso-b'.length, 'AWS::Region': 'ap-southeast-7'.length, 'AWS::AccountId': 12,
  'AWS::URLSuffix': 'amazonaws.com.cn'.length, 'AWS::StackName': 128, 'AWS::StackId': 150,
};

/** The register's numbers (sources in test/aws-contract.md). */
export const QUOTAS = {
  inlineBuildSpec: 25_600,
  pipelineActionConfigurationValue: 1_000,
  pipelineActionConfigurationKey: 50,
  roleInlinePolicies: 10_240,
  managedPolicy: 6_144,
  lambdaEnvironment: 4 * 1024,
  lambdaTimeoutSeconds: 900,
  codeBuildTimeoutMinutes: { min: 5, max: 2160 },
  lifecyclePolicyText: { min: 100, max: 30_720 },
  alarmEvaluationSeconds: 604_800,
  alarmEvaluationSecondsUnderAnHour: 86_400,
  dashboardWidgets: 500,
  dashboardMetricsPerWidget: 500,
  dashboardMetrics: 2_500,
  wildcardsPerTagPattern: 4,
} as const;

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Resource = { Type: string; Properties?: Record<string, Json> };
export type TemplateJson = { Resources?: Record<string, Resource> };

const isReference = (v: Json): boolean => v !== null && typeof v === 'object' && !Array.isArray(v)
  && Object.keys(v).length === 1 && (Object.keys(v)[0] === 'Ref' || Object.keys(v)[0].startsWith('Fn::'));

/** A value with every reference replaced by a placeholder of REFERENCE_LENGTH characters (Fn::Join joined). */
export function flatten(v: Json): Json {
  if (isReference(v)) {
    const join = (v as Record<string, Json>)['Fn::Join'];
    if (Array.isArray(join) && typeof join[0] === 'string' && Array.isArray(join[1])) {
      return join[1].map(p => { const f = flatten(p); return typeof f === 'string' ? f : JSON.stringify(f); }).join(join[0]);
    }
    const ref = (v as Record<string, Json>).Ref;
    if (typeof ref === 'string' && ref in PSEUDO_PARAMETERS) return 'P'.repeat(PSEUDO_PARAMETERS[ref]);
    return 'R'.repeat(REFERENCE_LENGTH);
  }
  if (Array.isArray(v)) return v.map(flatten);
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, flatten(x)]));
  return v;
}

/** IAM counts a policy's size without whitespace. */
const policySize = (doc: Json): number => JSON.stringify(flatten(doc)).replace(/\s/g, '').length;

const refTo = (v: Json, id: string): boolean => JSON.stringify(v) === JSON.stringify({ Ref: id });

export function quotaViolations(template: TemplateJson): string[] {
  const out: string[] = [];
  const resources = Object.entries(template.Resources ?? {});
  const of = (type: string) => resources.filter(([, r]) => r.Type === type);

  for (const [id, r] of of('AWS::CodeBuild::Project')) {
    const p = r.Properties ?? {};
    const source = (p.Source ?? {}) as Record<string, Json>;
    const spec = flatten(source.BuildSpec ?? '');
    if (typeof spec === 'string' && spec.length > QUOTAS.inlineBuildSpec) {
      out.push(`${id}: inline buildspec of ${spec.length} characters (max ${QUOTAS.inlineBuildSpec})`);
    }
    const env = ((p.Environment as Record<string, Json>)?.EnvironmentVariables ?? []) as Array<Record<string, Json>>;
    const names = env.map(e => String(e.Name));
    for (const n of names) if (n.startsWith('CODEBUILD_')) out.push(`${id}: environment variable ${n} uses the reserved prefix CODEBUILD_`);
    if (new Set(names).size !== names.length) out.push(`${id}: duplicate environment variable names`);
    const secrets = new Set(env.filter(e => e.Type === 'SECRETS_MANAGER' || e.Type === 'PARAMETER_STORE').map(e => String(e.Name)));
    const exported = /exported-variables:\n((?:\s+- .*\n)+)/.exec(typeof spec === 'string' ? spec : '')?.[1].match(/- (\S+)/g)?.map(x => x.slice(2)) ?? [];
    for (const n of exported) {
      if (n.startsWith('AWS_')) out.push(`${id}: exported variable ${n} starts with AWS_`);
      if (secrets.has(n)) out.push(`${id}: exported variable ${n} is a secret`);
    }
    const timeout = p.TimeoutInMinutes;
    if (typeof timeout === 'number' && (timeout < QUOTAS.codeBuildTimeoutMinutes.min || timeout > QUOTAS.codeBuildTimeoutMinutes.max)) {
      out.push(`${id}: TimeoutInMinutes ${timeout} outside 5..2160`);
    }
    if (typeof p.Name === 'string' && !/^[A-Za-z0-9][A-Za-z0-9_-]{1,149}$/.test(p.Name)) out.push(`${id}: project name '${p.Name}'`);
  }

  for (const [id, r] of of('AWS::CodePipeline::Pipeline')) {
    for (const stage of (r.Properties?.Stages ?? []) as Array<Record<string, Json>>) {
      for (const action of (stage.Actions ?? []) as Array<Record<string, Json>>) {
        for (const [k, v] of Object.entries((action.Configuration ?? {}) as Record<string, Json>)) {
          const value = flatten(v);
          const length = typeof value === 'string' ? value.length : JSON.stringify(value).length;
          if (length > QUOTAS.pipelineActionConfigurationValue) {
            out.push(`${id}: action ${String(action.Name)} configuration ${k} is ${length} characters (max 1000)`);
          }
          if (k.length > QUOTAS.pipelineActionConfigurationKey) out.push(`${id}: action configuration key ${k} longer than 50`);
        }
        const ns = action.Namespace;
        if (typeof ns === 'string' && !/^[A-Za-z0-9@_-]{1,100}$/.test(ns)) out.push(`${id}: namespace '${ns}'`);
      }
    }
  }

  for (const [roleId, role] of of('AWS::IAM::Role')) {
    let size = ((role.Properties?.Policies ?? []) as Array<Record<string, Json>>).reduce((s, p) => s + policySize(p.PolicyDocument), 0);
    for (const [, policy] of of('AWS::IAM::Policy')) {
      const roles = (policy.Properties?.Roles ?? []) as Json[];
      if (roles.some(x => refTo(x, roleId))) size += policySize(policy.Properties!.PolicyDocument);
    }
    if (size > QUOTAS.roleInlinePolicies) out.push(`${roleId}: inline policies of ${size} characters (max ${QUOTAS.roleInlinePolicies})`);
  }
  for (const [id, policy] of of('AWS::IAM::ManagedPolicy')) {
    const size = policySize(policy.Properties?.PolicyDocument ?? {});
    if (size > QUOTAS.managedPolicy) out.push(`${id}: managed policy of ${size} characters (max ${QUOTAS.managedPolicy})`);
  }

  for (const [id, r] of of('AWS::Lambda::Function')) {
    const vars = (flatten((r.Properties?.Environment as Record<string, Json>)?.Variables ?? {}) ?? {}) as Record<string, string>;
    const size = Object.entries(vars).reduce((s, [k, v]) => s + k.length + String(v).length, 0);
    if (size > QUOTAS.lambdaEnvironment) out.push(`${id}: environment of ${size} bytes (max 4 KB)`);
    const t = r.Properties?.Timeout;
    if (typeof t === 'number' && t > QUOTAS.lambdaTimeoutSeconds) out.push(`${id}: timeout ${t} s (max 900)`);
  }

  for (const [id, r] of of('AWS::ECR::Repository')) {
    const text = (r.Properties?.LifecyclePolicy as Record<string, Json> | undefined)?.LifecyclePolicyText;
    if (typeof text === 'string') out.push(...lifecycleViolations(text).map(v => `${id}: ${v}`));
    const name = r.Properties?.RepositoryName;
    if (typeof name === 'string' && !/^(?=.{2,256}$)[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$/.test(name)) {
      out.push(`${id}: repository name '${name}'`);
    }
  }

  for (const [id, r] of of('AWS::CloudWatch::Alarm')) {
    const p = r.Properties ?? {};
    const n = Number(p.EvaluationPeriods ?? 1);
    const periods = [p.Period, ...((p.Metrics ?? []) as Array<Record<string, Json>>)
      .map(m => (m.MetricStat as Record<string, Json> | undefined)?.Period ?? m.Period)].filter((x): x is number => typeof x === 'number');
    for (const period of periods) {
      if (![10, 20, 30].includes(period) && period % 60 !== 0) out.push(`${id}: period ${period} s`);
      const max = period < 3600 ? QUOTAS.alarmEvaluationSecondsUnderAnHour : QUOTAS.alarmEvaluationSeconds;
      if (period * n > max) out.push(`${id}: ${n} periods of ${period} s exceed ${max} s`);
    }
    if (typeof p.DatapointsToAlarm === 'number' && p.DatapointsToAlarm > n) out.push(`${id}: DatapointsToAlarm above EvaluationPeriods`);
  }

  for (const [id, r] of of('AWS::CloudWatch::Dashboard')) {
    const body = flatten(r.Properties?.DashboardBody ?? '{}');
    const widgets = (JSON.parse(String(body)).widgets ?? []) as Array<{ properties?: { metrics?: unknown[] } }>;
    const metrics = widgets.map(w => w.properties?.metrics?.length ?? 0);
    if (widgets.length > QUOTAS.dashboardWidgets) out.push(`${id}: ${widgets.length} widgets (max 500)`);
    if (metrics.some(m => m > QUOTAS.dashboardMetricsPerWidget)) out.push(`${id}: a widget with more than 500 metrics`);
    if (metrics.reduce((a, b) => a + b, 0) > QUOTAS.dashboardMetrics) out.push(`${id}: more than 2500 metrics`);
  }

  for (const [id, r] of of('AWS::Events::Rule')) {
    const e = r.Properties?.ScheduleExpression;
    if (typeof e === 'string' && !validSchedule(e)) out.push(`${id}: schedule expression '${e}'`);
  }
  return out;
}

/** A lifecycle rule's `countNumber` is an "Integer" (ECR13; 32 bits inferred): JSON renders a larger number as an exponent. */
const MAX_LIFECYCLE_COUNT = 2_147_483_647;

/** ECR lifecycle policy rules (lifecycle_policy_parameters). */
export function lifecycleViolations(text: string): string[] {
  const out: string[] = [];
  if (text.length < QUOTAS.lifecyclePolicyText.min || text.length > QUOTAS.lifecyclePolicyText.max) {
    out.push(`lifecycle policy of ${text.length} characters (100..30720)`);
  }
  type Rule = { rulePriority: number; selection: Record<string, unknown> };
  const rules = (JSON.parse(text).rules ?? []) as Rule[];
  const priorities = rules.map(r => r.rulePriority);
  if (new Set(priorities).size !== priorities.length) out.push('lifecycle rule priorities are not unique');
  for (const r of rules) {
    const s = r.selection;
    const lists = [s.tagPrefixList, s.tagPatternList].filter(x => x !== undefined) as string[][];
    if (!Number.isInteger(s.countNumber) || (s.countNumber as number) < 1 || (s.countNumber as number) > MAX_LIFECYCLE_COUNT) out.push(`rule ${r.rulePriority}: countNumber ${String(s.countNumber)}`);
    if (s.tagStatus === 'tagged' && lists.length === 0) out.push(`rule ${r.rulePriority}: tagged without tagPrefixList or tagPatternList`);
    if (s.tagStatus === 'untagged' && lists.length > 0) out.push(`rule ${r.rulePriority}: untagged with a tag list`);
    if (s.tagStatus === 'any' && r.rulePriority !== Math.max(...priorities)) out.push(`rule ${r.rulePriority}: 'any' rule is not evaluated last`);
    if (s.countType === 'sinceImagePushed' && s.countUnit !== 'days') out.push(`rule ${r.rulePriority}: sinceImagePushed without countUnit days`);
    for (const p of (s.tagPatternList ?? []) as string[]) {
      if ((p.match(/\*/g) ?? []).length > QUOTAS.wildcardsPerTagPattern) out.push(`rule ${r.rulePriority}: more than 4 wildcards in '${p}'`);
    }
  }
  return out;
}

/** EventBridge: rate(value unit) with a singular unit for 1 and a plural one otherwise, or a cron expression. */
export function validSchedule(e: string): boolean {
  const rate = /^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$/.exec(e);
  if (rate) return Number(rate[1]) >= 1 && (Number(rate[1]) === 1) === !rate[2].endsWith('s');
  return /^cron\(\S+ \S+ \S+ \S+ \S+ \S+\)$/.test(e);
}
