import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { CachedImageBuild, CachedImageBuildProps } from '../lib';

/** Props that need the stack (imports, keys, secrets) come from `setup`. */
export type Setup = (stack: Stack) => Partial<CachedImageBuildProps>;

/** One IAM policy statement as synthesized. */
export type Statement = { Action: string | string[]; Resource: unknown; Effect: string; Condition?: unknown };

export interface Synthesized {
  readonly stack: Stack;
  readonly build: CachedImageBuild;
  /** Lazy: synthesizing freezes the tree, and some tests add a pipeline first. */
  readonly t: Template;
}

/** A CachedImageBuild with id 'Build' in a stack 'S' with a known environment. */
export function synth(props: CachedImageBuildProps = {}, setup?: Setup): Synthesized {
  const stack = new Stack(new App(), 'S', { env: { account: '123456789012', region: 'eu-west-1' } });
  const build = new CachedImageBuild(stack, 'Build', { ...props, ...setup?.(stack) });
  let t: Template | undefined;
  return { stack, build, get t() { return (t ??= Template.fromStack(stack)); } };
}

/** The statements of the CodeBuild project role's default policy. */
export function projectStatements(t: Template): Statement[] {
  const policy = Object.entries(t.findResources('AWS::IAM::Policy')).find(([id]) => id.startsWith('BuildProjectRoleDefaultPolicy'));
  if (!policy) throw new Error('no project role policy in the template');
  return policy[1].Properties.PolicyDocument.Statement;
}
