import { Validations } from 'aws-cdk-lib';
import { IConstruct } from 'constructs';

const PIPELINE_ARTIFACT_GRANTS = 'CDK\'s standard pipeline artifact grants: the wildcard actions (s3:GetObject*, s3:List*, kms:GenerateDataKey*, ...)'
  + ' are scoped to this pipeline\'s artifact bucket and its objects';

/**
 * cdk-nag findings of the example pipeline that are acknowledged, each with its reason. The findings of
 * CachedImageBuild itself are acknowledged inside the construct.
 */
export function acknowledgeExampleFindings(scopes: {
  pipeline: IConstruct; project: IConstruct; sourceBucket?: IConstruct; deployStage?: IConstruct;
}): void {
  for (const scope of [scopes.pipeline, scopes.project]) {
    for (const finding of ['Action::s3:GetObject*', 'Action::s3:GetBucket*', 'Action::s3:List*', 'Action::s3:DeleteObject*', 'Action::s3:Abort*']) {
      Validations.of(scope).acknowledge({ id: `AwsSolutions-IAM5[${finding}]`, reason: PIPELINE_ARTIFACT_GRANTS });
    }
    Validations.of(scope).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::<PipelineArtifactsBucket22248F97.Arn>/*]', reason: PIPELINE_ARTIFACT_GRANTS,
    });
  }
  Validations.of(scopes.pipeline).acknowledge({
    id: 'AwsSolutions-S1',
    reason: 'The artifact bucket holds short-lived pipeline artifacts; access is already logged by CloudTrail data events where enabled',
  });
  if (scopes.deployStage) {
    Validations.of(scopes.deployStage).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason: 'CDK\'s EcsDeployAction: ecs:DescribeServices, DescribeTaskDefinition and RegisterTaskDefinition take no resource ARNs',
    });
  }
  if (scopes.sourceBucket) {
    Validations.of(scopes.sourceBucket).acknowledge({
      id: 'AwsSolutions-S1',
      reason: 'Example source bucket for a zip upload; production pipelines use a repository connection (-c connectionArn=...)',
    });
  }
}
