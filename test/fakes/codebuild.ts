/**
 * A strict in-memory fake of one CodeBuild project's build history, for ListBuildsForProject and BatchGetBuilds.
 *
 * Every rule below rejects what the CodeBuild API reference says the service rejects, with the service's error name and
 * a message that cites the rule (STYLE.md rule 12). In particular ListBuildsForProject refuses `sortOrder` on a project
 * with more than 100 builds and together with a `nextToken`, as the service does. See test/fakes/fakes.test.ts for one
 * test per rule.
 */
import {
  BatchGetBuildsInput, BatchGetBuildsOutput, Build, CodeBuildClient, CodeBuildClientConfig, CodeBuildServiceException,
  EnvironmentVariableType, InvalidInputException, ListBuildsForProjectInput, ListBuildsForProjectOutput, ResourceNotFoundException, StatusType,
} from '@aws-sdk/client-codebuild';
import { FakeService, FakeServiceOptions, TokenBook } from './service';

const API = 'https://docs.aws.amazon.com/codebuild/latest/APIReference';
export const CODEBUILD_DOCS = {
  listBuildsForProject: `${API}/API_ListBuildsForProject.html`,
  batchGetBuilds: `${API}/API_BatchGetBuilds.html`,
  /** The service's answer to a sortOrder sent with a nextToken, quoted from a real response. */
  sortOrderWithToken: 'https://github.com/aws/aws-cli/issues/5863',
  /** BuildIds: list of NonEmptyString, @length(min 1, max 100), in the service model the SDKs are generated from. */
  buildIdsModel: 'https://github.com/aws/aws-sdk-js-v3/blob/main/codegen/sdk-codegen/aws-models/codebuild.json',
  /** An empty id list is refused with InvalidInputException "The input build ID list cannot be empty." */
  emptyIdList: 'https://github.com/rlister/stax/issues/39',
  /** An empty history is answered with an empty `ids` list (though the reference says "Minimum number of 1 item"). */
  emptyHistory: 'https://github.com/aws/aws-sdk/issues/343',
  /** Build: buildStatus (FAILED, FAULT, IN_PROGRESS, STOPPED, SUCCEEDED, TIMED_OUT), buildComplete, sourceVersion, environment. */
  build: `${API}/API_Build.html`,
  /** "After the post_build phase ends, the value of exported variables cannot change." */
  exportedVariables: `${API}/API_ExportedEnvironmentVariable.html`,
} as const;

/** ListBuildsForProject pages and BatchGetBuilds batches: 100. */
export const CODEBUILD_PAGE = 100;

/** A build of the fake project. Times are epoch milliseconds. */
export interface FakeBuild {
  /** @default `${projectName}:<uuid-like>` */
  readonly id?: string;
  /** The build number ListBuildsForProject sorts by. @default - position in the history, oldest first, from 1 */
  readonly buildNumber?: number;
  readonly startTime?: number;
  /** Absent while the build runs (or waits in the queue). */
  readonly endTime?: number;
  /** @default - 'SUCCEEDED' when it has an `endTime`, 'IN_PROGRESS' otherwise */
  readonly buildStatus?: StatusType;
  /** Only once the build has ended: exported variables are final after post_build, and a running build has none (CB4). */
  readonly exportedEnvironmentVariables?: readonly { readonly name: string; readonly value: string }[];
  /** Build.sourceVersion: a branch, `refs/heads/<branch>`, `pr/<n>`, a commit, or CodePipeline's artifact ARN. */
  readonly sourceVersion?: string;
  /** The build's environment variables (the project's and StartBuild's overrides, e.g. a pipeline action's CACHE_BRANCH). */
  readonly environmentVariables?: readonly { readonly name: string; readonly value: string; readonly type?: EnvironmentVariableType }[];
}

const TERMINAL: readonly string[] = ['SUCCEEDED', 'FAILED', 'FAULT', 'STOPPED', 'TIMED_OUT'];

/** Refuses a build CodeBuild cannot report: a status that contradicts `endTime`, or exported variables on a running build. */
function checkBuild(build: FakeBuild, id: string): void {
  const status = build.buildStatus ?? (build.endTime === undefined ? 'IN_PROGRESS' : 'SUCCEEDED');
  // buildStatus: IN_PROGRESS "The build is still in progress"; the others are final, and a final build has an end time.
  if ((status === 'IN_PROGRESS') !== (build.endTime === undefined) || !(status === 'IN_PROGRESS' || TERMINAL.includes(status))) {
    throw new Error(`fake CodeBuild: build ${id} has buildStatus ${status} and endTime ${build.endTime}: CodeBuild reports an end time `
      + `exactly for the final statuses ${TERMINAL.join(', ')} (${CODEBUILD_DOCS.build})`);
  }
  if (status === 'IN_PROGRESS' && build.exportedEnvironmentVariables !== undefined) {
    throw new Error(`fake CodeBuild: running build ${id} with exported variables: they are final only after post_build, and a build in `
      + `progress has none (${CODEBUILD_DOCS.exportedVariables})`);
  }
}

interface StoredBuild {
  readonly id: string;
  readonly buildNumber: number;
  readonly build: FakeBuild;
}

export interface FakeCodeBuildOptions extends FakeServiceOptions {
  /** @default 'app-build' */
  readonly projectName?: string;
  /** The project's builds, oldest first (unless they carry their own `buildNumber`). */
  readonly builds?: readonly FakeBuild[];
}

function invalidInput(message: string, rule: string): InvalidInputException {
  return new InvalidInputException({ message: `${message} [rule: ${rule}]`, $metadata: { httpStatusCode: 400 } });
}

/** A service error without a modelled class (ThrottlingException, AccessDeniedException...), for scripted faults. */
export function codeBuildError(name: string, message: string, fault: 'client' | 'server' = 'client'): CodeBuildServiceException {
  return new CodeBuildServiceException({ name, $fault: fault, message, $metadata: { httpStatusCode: fault === 'client' ? 400 : 500 } });
}

function uuidLike(n: number): string {
  const hex = n.toString(16).padStart(12, '0');
  return `00000000-0000-4000-8000-${hex}`;
}

export class FakeCodeBuild extends FakeService {
  readonly projectName: string;
  private readonly byId = new Map<string, StoredBuild>();
  /** Builds by build number, ascending. */
  private readonly history: StoredBuild[] = [];
  private newestFirst: StoredBuild[] | undefined;
  private readonly numbers = new Set<number>();
  private readonly tokens = new TokenBook<{ readonly after: number; readonly ascending: boolean }>();

  constructor(options: FakeCodeBuildOptions = {}) {
    super('CodeBuild', options);
    this.projectName = options.projectName ?? 'app-build';
    (options.builds ?? []).forEach(b => this.add(b));
  }

  /** A real CodeBuildClient (dummy region and credentials: nothing leaves the process) answered by this fake. */
  client(config: CodeBuildClientConfig = {}): CodeBuildClient {
    return this.attach(new CodeBuildClient({ region: 'us-east-1', credentials: { accessKeyId: 'AKIDFAKE', secretAccessKey: 'fake' }, ...config }));
  }

  /** Adds a build, numbered after the existing ones unless it carries its own number. */
  add(build: FakeBuild): this {
    const last = this.history[this.history.length - 1];
    const buildNumber = build.buildNumber ?? (last === undefined ? 1 : last.buildNumber + 1);
    const id = build.id ?? `${this.projectName}:${uuidLike(buildNumber)}`;
    if (this.byId.has(id) || this.numbers.has(buildNumber)) {
      throw new Error(`fake CodeBuild: build ${id} (number ${buildNumber}) added twice`);
    }
    checkBuild(build, id);
    const stored = { id, buildNumber, build };
    this.byId.set(id, stored);
    this.numbers.add(buildNumber);
    if (last === undefined || buildNumber > last.buildNumber) this.history.push(stored);
    else this.history.splice(this.history.findIndex(b => b.buildNumber > buildNumber), 0, stored);
    this.newestFirst = undefined;
    return this;
  }

  /** Ends a running build, as post_build finishing would: from now on BatchGetBuilds reports its status, end time and exports. */
  finish(id: string, fields: Pick<FakeBuild, 'endTime' | 'buildStatus' | 'exportedEnvironmentVariables'>): this {
    const stored = this.byId.get(id);
    if (!stored || stored.build.endTime !== undefined) throw new Error(`fake CodeBuild: no running build ${id}`);
    const build = { ...stored.build, ...fields };
    checkBuild(build, id);
    const finished = { ...stored, build };
    this.byId.set(id, finished);
    this.history[this.history.indexOf(stored)] = finished;
    this.newestFirst = undefined;
    return this;
  }

  private ordered(ascending: boolean): readonly StoredBuild[] {
    if (ascending) return this.history;
    this.newestFirst ??= [...this.history].reverse();
    return this.newestFirst;
  }

  get buildCount(): number {
    return this.history.length;
  }

  /** The ids in the service's default order (build number descending). */
  idsNewestFirst(): string[] {
    return this.ordered(false).map(b => b.id);
  }

  protected handlers(): Record<string, (input: unknown) => object> {
    return {
      ListBuildsForProject: input => this.listBuildsForProject(input as ListBuildsForProjectInput),
      BatchGetBuilds: input => this.batchGetBuilds(input as BatchGetBuildsInput),
    };
  }

  listBuildsForProject(input: ListBuildsForProjectInput): ListBuildsForProjectOutput {
    const rule = (what: string, url: string = CODEBUILD_DOCS.listBuildsForProject): string => `ListBuildsForProject ${what}, ${url}`;
    const { projectName, sortOrder, nextToken } = input;
    // projectName: "Length Constraints: Minimum length of 1. Required: Yes"
    if (typeof projectName !== 'string' || projectName.length < 1) throw invalidInput('projectName is required and cannot be empty', rule('projectName'));
    // sortOrder: "Valid values include: ASCENDING ... DESCENDING"
    if (sortOrder !== undefined && sortOrder !== 'ASCENDING' && sortOrder !== 'DESCENDING') {
      throw invalidInput(`Invalid sortOrder ${JSON.stringify(sortOrder)}: valid values are ASCENDING and DESCENDING`, rule('sortOrder values'));
    }
    // The service's answer to sortOrder with a nextToken: InvalidInputException "Sort order can't be specified when
    // passing a nextToken" (https://github.com/aws/aws-cli/issues/5863).
    if (sortOrder !== undefined && nextToken !== undefined) {
      throw invalidInput('Sort order can\'t be specified when passing a nextToken', rule('sortOrder with nextToken', CODEBUILD_DOCS.sortOrderWithToken));
    }
    // ResourceNotFoundException: "The specified AWS resource cannot be found."
    if (projectName !== this.projectName) {
      throw new ResourceNotFoundException({
        message: `Project cannot be found: ${projectName} [rule: ${rule('ResourceNotFoundException')}]`, $metadata: { httpStatusCode: 400 },
      });
    }
    // sortOrder: "If the project has more than 100 builds, setting the sort order will result in an error."
    if (sortOrder !== undefined && this.history.length > CODEBUILD_PAGE) {
      throw invalidInput(`Sort order can't be specified for a project with more than 100 builds (${this.history.length})`,
        rule('sortOrder on a project with more than 100 builds'));
    }
    let ascending = sortOrder === 'ASCENDING';
    let start = 0;
    if (nextToken !== undefined) {
      const position = this.tokens.resolve('ListBuildsForProject', projectName, nextToken);
      // nextToken: "a unique string called a nextToken" returned by a previous call — only such a value.
      if (position === undefined) throw invalidInput('Invalid nextToken: not a token returned by a previous call for this project', rule('nextToken'));
      ascending = position.ascending;
      const list = this.ordered(ascending);
      start = list.findIndex(b => (ascending ? b.buildNumber > position.after : b.buildNumber < position.after));
      if (start < 0) start = list.length;
    }
    // "If this is not specified, the results are sorted in descending order." "If there are more than 100 items in the
    // list, only the first 100 items are returned, along with a unique string called a nextToken."
    const list = this.ordered(ascending);
    const page = list.slice(start, start + CODEBUILD_PAGE);
    const more = start + CODEBUILD_PAGE < list.length;
    return {
      // An empty history is an empty list, not an error (https://github.com/aws/aws-sdk/issues/343).
      ids: page.map(b => b.id),
      nextToken: more ? this.tokens.issue('ListBuildsForProject', projectName, { after: page[page.length - 1].buildNumber, ascending }) : undefined,
    };
  }

  batchGetBuilds(input: BatchGetBuildsInput): BatchGetBuildsOutput {
    return batchGetBuildsOf([this], input);
  }

  /** The build with this id as BatchGetBuilds reports it, if this project has it. */
  describe(id: string): Build | undefined {
    const stored = this.byId.get(id);
    return stored && this.toBuild(stored);
  }

  private toBuild({ id, buildNumber, build }: StoredBuild): Build {
    // Fresh objects on every call, as deserialisation would make them.
    return {
      id,
      arn: `arn:aws:codebuild:us-east-1:123456789012:build/${id}`,
      buildNumber,
      projectName: this.projectName,
      startTime: build.startTime === undefined ? undefined : new Date(build.startTime),
      endTime: build.endTime === undefined ? undefined : new Date(build.endTime),
      buildStatus: build.buildStatus ?? (build.endTime === undefined ? 'IN_PROGRESS' : 'SUCCEEDED'),
      buildComplete: build.endTime !== undefined,
      currentPhase: build.endTime === undefined ? 'BUILD' : 'COMPLETED',
      sourceVersion: build.sourceVersion,
      environment: {
        type: 'LINUX_CONTAINER', image: 'aws/codebuild/standard:7.0', computeType: 'BUILD_GENERAL1_SMALL',
        environmentVariables: build.environmentVariables?.map(v => ({ name: v.name, value: v.value, type: v.type ?? 'PLAINTEXT' })),
      },
      exportedEnvironmentVariables: build.exportedEnvironmentVariables?.map(v => ({ ...v })),
    };
  }
}

/** BatchGetBuilds over the builds of several projects (ids are account-wide), with the service's limits on the id list. */
function batchGetBuildsOf(projects: readonly FakeCodeBuild[], input: BatchGetBuildsInput): BatchGetBuildsOutput {
  const { ids } = input;
  // ids: BuildIds, a list of NonEmptyString with @length(min: 1, max: 100) in the service model; an empty list is
  // refused with InvalidInputException "The input build ID list cannot be empty." (https://github.com/rlister/stax/issues/39)
  const rule = `BatchGetBuilds ids 1..100, ${CODEBUILD_DOCS.buildIdsModel}`;
  if (!Array.isArray(ids) || ids.length === 0) throw invalidInput('The input build ID list cannot be empty.', rule);
  if (ids.length > CODEBUILD_PAGE) throw invalidInput(`Member 'ids' must have length less than or equal to 100, got ${ids.length}`, rule);
  if (ids.some(id => typeof id !== 'string' || id.length === 0)) throw invalidInput('Build ids must be non-empty strings', rule);
  const builds: Build[] = [];
  const buildsNotFound: string[] = [];
  for (const id of new Set(ids)) {
    const build = projects.map(p => p.describe(id)).find(b => b !== undefined);
    // buildsNotFound: "The IDs of builds for which information could not be found."
    if (!build) buildsNotFound.push(id);
    else builds.push(build);
  }
  return { builds, buildsNotFound };
}

/**
 * One account's CodeBuild with several projects (the images of a CachedImageBuildGroup): ListBuildsForProject answered by the
 * named project's fake, with all its rules (an unknown project is ResourceNotFoundException); BatchGetBuilds across projects.
 */
export class FakeCodeBuildAccount extends FakeService {
  constructor(readonly projects: readonly FakeCodeBuild[], options: FakeServiceOptions = {}) {
    super('CodeBuild', options);
    const names = projects.map(p => p.projectName);
    if (new Set(names).size !== names.length) throw new Error(`fake CodeBuild: a project named twice in ${names.join(', ')}`);
  }

  /** A real CodeBuildClient (dummy region and credentials: nothing leaves the process) answered by this fake. */
  client(config: CodeBuildClientConfig = {}): CodeBuildClient {
    return this.attach(new CodeBuildClient({ region: 'us-east-1', credentials: { accessKeyId: 'AKIDFAKE', secretAccessKey: 'fake' }, ...config }));
  }

  protected handlers(): Record<string, (input: unknown) => object> {
    return {
      ListBuildsForProject: input => {
        const { projectName } = input as ListBuildsForProjectInput;
        const project = this.projects.find(p => p.projectName === projectName) ?? this.projects[0];
        return project.listBuildsForProject(input as ListBuildsForProjectInput);
      },
      BatchGetBuilds: input => batchGetBuildsOf(this.projects, input as BatchGetBuildsInput),
    };
  }
}
