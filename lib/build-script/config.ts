/**
 * The build's configuration is data: environment variables the script reads at run time, never text rendered into
 * the script. The script is therefore the same for every project of a strategy, a deploy-time value (a CloudFormation
 * parameter, an imported value) stays a value whatever it contains, and no property can make the buildspec grow.
 */
import { IMAGE_NAME, MAX_IMAGE_NAME_LENGTH } from './cache-refs';
import { StrategyName } from './engine';

/** Everything a build is configured with. Plain data: no CDK types. Values may be CDK tokens (they stay values). */
export interface BuildConfig {
  /** `APP_REPOSITORY_URI`. @default - the environment's */
  readonly appRepositoryUri?: string;
  /** `CACHE_REPOSITORY_URI`. @default - the environment's */
  readonly cacheRepositoryUri?: string;
  /** Dockerfile path, relative to the source root. @default 'Dockerfile' */
  readonly dockerfile?: string;
  /** Build context directory, relative to the source root. @default '.' */
  readonly context?: string;
  /** Branch whose cache every branch falls back to. @default 'main' */
  readonly defaultBranch?: string;
  /** Shell glob patterns of branches that read the cache but never write it. @default [] */
  readonly readOnlyBranches?: readonly string[];
  /** Whether builds write cache at all. @default true */
  readonly cacheWrite?: boolean;
  /** `--build-arg` values; keys are variable names. @default {} */
  readonly buildArgs?: Readonly<Record<string, string>>;
  /** Build secrets: id → name of the environment variable holding the value. @default {} */
  readonly buildSecretEnv?: Readonly<Record<string, string>>;
  /** `--target` stage. @default - the last stage */
  readonly target?: string;
  /** `--platform`; several, comma-separated, build one multi-platform image (registry strategy only). @default - the engine's platform */
  readonly platform?: string;
  /** BuildKit image for the docker-container builder (registry strategy). @default DEFAULT_BUILDKIT_IMAGE */
  readonly buildkitImage?: string;
  /**
   * Compression of the layers the registry strategy's cache export writes first; with zstd the app image is pushed gzip
   * (`force-compression`). @default 'zstd'
   */
  readonly cacheCompression?: 'zstd' | 'gzip';
  /** Container name written to imagedefinitions.json (ECS standard deployments). @default 'app' */
  readonly containerName?: string;
  /** Publish per-build cache metrics to CloudWatch when running in CodeBuild. @default true */
  readonly metrics?: boolean;
  /** Reuse the image when its tag already exists in the app repository (a re-run of the same commit). @default true */
  readonly reuseExistingImage?: boolean;
  /**
   * Skip a build whose inputs (Dockerfile, context, build args, target, platform, the digests of the images it names) are
   * those of an image in the app repository: tag that image instead, as a fully cached build would have made it. @default true
   */
  readonly skipUnchangedBuilds?: boolean;
  /** The image's name in a shared cache repository: its refs are `<image>--<branch tag>`. @default - none: refs are branch tags */
  readonly imageName?: string;
  /**
   * Images of the same shared cache repository whose refs of the branch and of the default branch are read too (the image's own
   * name may be among them: its refs are read first anyway). @default []
   */
  readonly cacheFromImages?: readonly string[];
  /**
   * Whether the image is one platform's part of a multi-platform index that a later `merge` step creates (the native path: one
   * build per architecture): its tag is then `<tag>--<os>-<arch>[-<variant>]` of `platform`, which must name one platform.
   * @default false
   */
  readonly platformTags?: boolean;
  /** The platforms whose `<tag>--<os>-<arch>` images the `merge` step names in the index it creates under `<tag>`. @default - none */
  readonly mergePlatforms?: readonly string[];
}

/**
 * The strategies that build several platforms (`--platform a,b`) into one image index: the registry strategy only. BuildKit
 * builds every platform in one solve, and its mode=max registry cache export holds every platform's records, so each
 * platform hits on every build. The inline strategy cannot: docker 20.10's image store holds one platform per tag, and the
 * strategy pulls its cache refs into that store (one platform each) before building, so every other platform would miss on
 * every build. buildah (1.28 here) builds a platform list into a local manifest list (`--manifest`, pushed with
 * `buildah manifest push --all`) and keys its step cache per platform (checked on the engines), but it builds the platforms
 * concurrently and its `--> Using cache` lines name no platform, so the step parser cannot tell whose hit a line is; until
 * the script drives that path (one platform at a time, the list pushed once), it is refused rather than claimed.
 */
export const MULTI_PLATFORM_STRATEGIES: readonly StrategyName[] = ['registry'];

/** The default BuildKit image for the docker-container builder (buildx's own default). */
export const DEFAULT_BUILDKIT_IMAGE = 'moby/buildkit:buildx-stable-1';

/** Prefix of the variables that carry build args: `CIB_BUILD_ARG_NODE_VERSION=20` is `--build-arg NODE_VERSION=20`. */
export const BUILD_ARG_PREFIX = 'CIB_BUILD_ARG_';

/** A build arg key, and so the tail of its variable name. */
export const BUILD_ARG_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** A build secret id: what `RUN --mount=type=secret,id=<id>` names, and a file name in the work dir. */
export const SECRET_ID = /^(?!\.{1,2}$)[A-Za-z0-9_.-]{1,64}$/;

/** The configuration variables the script reads, with their defaults and meaning (the script's header lists them too). */
export const CONFIG_VARIABLES: ReadonlyArray<{ readonly name: string; readonly default: string; readonly doc: string }> = [
  { name: 'APP_REPOSITORY_URI', default: '', doc: 'app image repository, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/app (required)' },
  { name: 'CACHE_REPOSITORY_URI', default: '', doc: 'cache repository (required)' },
  { name: 'CIB_DOCKERFILE', default: 'Dockerfile', doc: 'Dockerfile, relative to the source root' },
  { name: 'CIB_CONTEXT', default: '.', doc: 'build context, relative to the source root' },
  { name: 'CIB_DEFAULT_BRANCH', default: 'main', doc: 'branch whose cache every branch falls back to' },
  { name: 'CIB_READ_ONLY_BRANCHES', default: '', doc: 'space-separated globs of branches that never write cache' },
  { name: 'CIB_CACHE_WRITE', default: 'true', doc: 'true|false: write cache at all' },
  { name: `${BUILD_ARG_PREFIX}<NAME>`, default: '', doc: 'one variable per --build-arg NAME=value' },
  { name: 'CIB_SECRETS', default: '', doc: 'space-separated id=VARIABLE: build secret id and the variable holding its value' },
  { name: 'CIB_TARGET', default: '', doc: 'target stage (default: the last)' },
  { name: 'CIB_PLATFORM', default: '', doc: 'target platform, e.g. linux/arm64; several, comma-separated, with the registry strategy' },
  { name: 'CIB_BUILDKIT_IMAGE', default: DEFAULT_BUILDKIT_IMAGE, doc: 'BuildKit image for the docker-container builder (registry strategy)' },
  { name: 'CIB_CACHE_COMPRESSION', default: 'zstd', doc: 'zstd|gzip: layers the cache export writes first (registry strategy); with zstd the app image is pushed gzip' },
  { name: 'CIB_CONTAINER_NAME', default: 'app', doc: 'container name in imagedefinitions.json' },
  { name: 'CIB_METRICS', default: 'true', doc: 'true|false: publish metrics to CloudWatch (in CodeBuild)' },
  { name: 'CIB_REUSE_EXISTING_IMAGE', default: 'true', doc: 'true|false: when the tag exists in the app repository, reuse it' },
  { name: 'CIB_SKIP_UNCHANGED', default: 'true', doc: 'true|false: when an image of the same inputs is in the app repository, tag it, build nothing' },
  { name: 'CIB_IMAGE_NAME', default: '', doc: 'the image in a shared cache repository: its cache refs are <image>--<branch>' },
  { name: 'CIB_CACHE_FROM_IMAGES', default: '', doc: 'space-separated images (of the shared cache repository) whose refs are read too' },
  { name: 'CIB_PLATFORM_TAGS', default: 'false', doc: 'true: tag the image <tag>--<os>-<arch> of CIB_PLATFORM (one platform of an index merged later)' },
  { name: 'CIB_MERGE_PLATFORMS', default: '', doc: 'space-separated platforms whose <tag>--<os>-<arch> images the merge step puts in one index <tag>' },
];

/**
 * The configuration as environment variables (name → value). Only what differs from the script's defaults is set,
 * except the repositories, the Dockerfile and the context, which a reader of the project wants to see. Values are
 * passed through untouched: tokens stay tokens.
 */
export function configEnvironment(config: BuildConfig, join: (values: readonly string[]) => string = v => v.join(' ')): Record<string, string> {
  const env: Record<string, string> = {};
  const set = (name: string, value: string | undefined): void => {
    if (value !== undefined) env[name] = value;
  };
  set('APP_REPOSITORY_URI', config.appRepositoryUri);
  set('CACHE_REPOSITORY_URI', config.cacheRepositoryUri);
  // A merge build builds nothing: no Dockerfile, no context.
  if (config.mergePlatforms === undefined) {
    set('CIB_DOCKERFILE', config.dockerfile ?? 'Dockerfile');
    set('CIB_CONTEXT', config.context ?? '.');
  }
  set('CIB_DEFAULT_BRANCH', config.defaultBranch);
  if (config.readOnlyBranches !== undefined && config.readOnlyBranches.length > 0) set('CIB_READ_ONLY_BRANCHES', join(config.readOnlyBranches));
  if (config.cacheWrite === false) set('CIB_CACHE_WRITE', 'false');
  for (const [name, value] of Object.entries(config.buildArgs ?? {})) set(`${BUILD_ARG_PREFIX}${name}`, value);
  const secrets = Object.entries(config.buildSecretEnv ?? {}).map(([id, variable]) => `${id}=${variable}`);
  if (secrets.length > 0) set('CIB_SECRETS', secrets.join(' '));
  set('CIB_TARGET', config.target);
  set('CIB_PLATFORM', config.platform);
  if (config.buildkitImage !== DEFAULT_BUILDKIT_IMAGE) set('CIB_BUILDKIT_IMAGE', config.buildkitImage);
  if (config.cacheCompression === 'gzip') set('CIB_CACHE_COMPRESSION', 'gzip');
  set('CIB_CONTAINER_NAME', config.containerName);
  if (config.metrics === false) set('CIB_METRICS', 'false');
  if (config.reuseExistingImage === false) set('CIB_REUSE_EXISTING_IMAGE', 'false');
  if (config.skipUnchangedBuilds === false) set('CIB_SKIP_UNCHANGED', 'false');
  set('CIB_IMAGE_NAME', config.imageName);
  if (config.cacheFromImages !== undefined && config.cacheFromImages.length > 0) {
    set('CIB_CACHE_FROM_IMAGES', join(config.cacheFromImages));
  }
  if (config.platformTags === true) set('CIB_PLATFORM_TAGS', 'true');
  if (config.mergePlatforms !== undefined && config.mergePlatforms.length > 0) set('CIB_MERGE_PLATFORMS', join(config.mergePlatforms));
  return env;
}

/**
 * `cib_config`: applies the defaults and checks every value, so that a bad value is a clear error naming the variable
 * before anything runs. Values are only ever used as arguments, never evaluated.
 */
export const CONFIG_SHELL = `cib_config() {
  : "\${APP_REPOSITORY_URI:=}" "\${CACHE_REPOSITORY_URI:=}" "\${CIB_DOCKERFILE:=Dockerfile}" "\${CIB_CONTEXT:=.}"
  : "\${CIB_DEFAULT_BRANCH:=main}" "\${CIB_READ_ONLY_BRANCHES:=}" "\${CIB_CACHE_WRITE:=true}" "\${CIB_SECRETS:=}"
  : "\${CIB_TARGET:=}" "\${CIB_PLATFORM:=}" "\${CIB_BUILDKIT_IMAGE:=${DEFAULT_BUILDKIT_IMAGE}}" "\${CIB_CONTAINER_NAME:=app}"
  : "\${CIB_METRICS:=true}" "\${CIB_REUSE_EXISTING_IMAGE:=true}" "\${CIB_IMAGE_NAME:=}" "\${CIB_CACHE_FROM_IMAGES:=}"
  : "\${CIB_PLATFORM_TAGS:=false}" "\${CIB_MERGE_PLATFORMS:=}" "\${CIB_SKIP_UNCHANGED:=true}" "\${CIB_CACHE_COMPRESSION:=zstd}"
  CIB_PLATFORM_RE='[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?'
  local name entry
  for name in CIB_CACHE_WRITE CIB_METRICS CIB_REUSE_EXISTING_IMAGE CIB_PLATFORM_TAGS CIB_SKIP_UNCHANGED; do
    case "\${!name}" in true|false) ;; *) cib_die "$name must be true or false, got '\${!name}'" ;; esac
  done
  for name in APP_REPOSITORY_URI CACHE_REPOSITORY_URI CIB_DOCKERFILE CIB_CONTEXT CIB_DEFAULT_BRANCH CIB_READ_ONLY_BRANCHES \\
    CIB_SECRETS CIB_TARGET CIB_PLATFORM CIB_BUILDKIT_IMAGE CIB_CONTAINER_NAME CIB_CACHE_FROM_IMAGES CIB_MERGE_PLATFORMS; do
    if [[ \${!name} == *$'\\n'* ]]; then cib_die "$name must be one line"; fi
  done
  for name in CIB_DOCKERFILE CIB_CONTEXT; do
    # An engine would read a leading - as an option.
    case "\${!name}" in ''|-*|/*) cib_die "$name must be a path relative to the source root, got '\${!name}'" ;; esac
  done
  case "$CIB_CACHE_COMPRESSION" in zstd|gzip) ;; *) cib_die "CIB_CACHE_COMPRESSION must be zstd or gzip, got '$CIB_CACHE_COMPRESSION'" ;; esac
  CIB_ARG_VARS=$(compgen -v ${BUILD_ARG_PREFIX} || true)
  read -r -a CIB_SECRET_LIST <<< "$CIB_SECRETS"
  for entry in \${CIB_SECRET_LIST[@]+"\${CIB_SECRET_LIST[@]}"}; do
    [[ $entry =~ ^[A-Za-z0-9_.-]{1,64}=[A-Za-z_][A-Za-z0-9_]*$ && \${entry%%=*} != . && \${entry%%=*} != .. ]] \\
      || cib_die "CIB_SECRETS entries must be id=VARIABLE (id: 1-64 of A-Za-z0-9_.-, not . or ..), got '$entry'"
  done
  read -r -a CIB_READ_ONLY_LIST <<< "$CIB_READ_ONLY_BRANCHES"
  read -r -a CIB_CACHE_FROM_LIST <<< "$CIB_CACHE_FROM_IMAGES"
  for entry in "$CIB_IMAGE_NAME" \${CIB_CACHE_FROM_LIST[@]+"\${CIB_CACHE_FROM_LIST[@]}"}; do
    [ -z "$entry" ] || { [[ $entry =~ ${IMAGE_NAME.source.replace('(?:', '(')} ]] && [ "\${#entry}" -le ${MAX_IMAGE_NAME_LENGTH} ]; } \\
      || cib_die "CIB_IMAGE_NAME and CIB_CACHE_FROM_IMAGES entries must be 1-${MAX_IMAGE_NAME_LENGTH} of a-z 0-9 with single . _ - between, got '$entry'"
  done
  # Several platforms: one BuildKit build of them all and one cache export holding every platform (MULTI_PLATFORM_STRATEGIES).
  if [[ $CIB_PLATFORM == *,* ]] && [ "$CIB_STRATEGY" != registry ]; then
    cib_die "CIB_PLATFORM '$CIB_PLATFORM' names several platforms: only the registry strategy builds a multi-platform image" \\
      "(one BuildKit build, one cache export holding every platform); the $CIB_STRATEGY strategy builds one platform a build"
  fi
  if [ "$CIB_PLATFORM_TAGS" = true ] && ! [[ $CIB_PLATFORM =~ ^$CIB_PLATFORM_RE$ ]]; then
    cib_die "CIB_PLATFORM_TAGS=true tags one platform's image <tag>--<os>-<arch>: CIB_PLATFORM must name one platform (e.g. linux/arm64)," \\
      "got '$CIB_PLATFORM'"
  fi
  read -r -a CIB_MERGE_LIST <<< "$CIB_MERGE_PLATFORMS"
  for entry in \${CIB_MERGE_LIST[@]+"\${CIB_MERGE_LIST[@]}"}; do
    [[ $entry =~ ^$CIB_PLATFORM_RE$ ]] || cib_die "CIB_MERGE_PLATFORMS entries must be platforms like linux/arm64, got '$entry'"
  done
  if [ -z "$CIB_IMAGE_NAME" ] && [ "\${#CIB_CACHE_FROM_LIST[@]}" -gt 0 ]; then
    cib_die 'CIB_CACHE_FROM_IMAGES needs CIB_IMAGE_NAME: images that share a cache repository each name their refs'
  fi
}`;
