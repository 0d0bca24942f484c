#!/usr/bin/env node
import { BuildScript, BuildScriptOptions, MAX_INLINE_BUILDSPEC_LENGTH } from '../lib/build-script/build-script';
import { IMAGE_NAME, invalidBranchReason, MAX_IMAGE_NAME_LENGTH, PLATFORM } from '../lib/build-script/cache-refs';
import { MULTI_PLATFORM_STRATEGIES } from '../lib/build-script/config';
import { StrategyName } from '../lib/build-script/engine';

const USAGE = `Usage: cached-build <script|env|buildspec> [flags]

Prints the cached image build for reuse outside the CDK construct:
  script      the standalone bash script of a strategy (takes --strategy only). It reads its whole
              configuration from environment variables: the script is the same for every project.
  env         the configuration the flags describe, as NAME=value lines (docker --env-file,
              GitHub Actions' $GITHUB_ENV, a CI's variables); values are raw: do not source it
  buildspec   a CodeBuild buildspec.yml: the script, with the configuration in env.variables

Flags:
  --strategy registry|inline|buildah   cache strategy (default registry)
  --app-repo URI                       app image repository (else APP_REPOSITORY_URI at build time)
  --cache-repo URI                     cache repository (else CACHE_REPOSITORY_URI at build time)
  --dockerfile PATH                    Dockerfile, relative to the source root (default Dockerfile)
  --context DIR                        build context (default .)
  --default-branch NAME                branch whose cache all branches fall back to (default main)
  --read-only-branch GLOB              branches that read but never write cache (repeatable)
  --no-cache-write                     never write cache
  --build-arg KEY=VALUE                build argument (repeatable)
  --target STAGE                       target stage
  --platform OS/ARCH[,OS/ARCH...]      target platform; several build one index (registry strategy)
  --buildkit-image IMAGE               BuildKit image for the docker-container builder (registry)
  --cache-compression zstd|gzip        layers the cache export writes first (registry; default zstd:
                                       the app image is then pushed gzip)
  --image-name NAME                    the image's name in a shared cache repository: refs <name>--<branch>
  --platform-tags                      one platform of a natively built index: tag <tag>--<os>-<arch>
                                       (needs one --platform; give each platform its own --image-name)
  --merge-platforms OS/ARCH,OS/ARCH... the merge build: one index <tag> of the platforms' <tag>--<os>-<arch>
                                       images (buildspec: the merge's; script step: merge)
  --no-reuse-existing-image            build even when the tag already exists in the app repository
  --no-skip-unchanged                  build even when an image of the same inputs is in the app repository
  -h, --help                           this text
`;

/** Thrown for bad command lines: printed with the usage hint, exit code 2. */
export class UsageError extends Error {}

const STRATEGIES: readonly StrategyName[] = ['registry', 'inline', 'buildah'];
const COMMANDS = ['script', 'env', 'buildspec'] as const;
/** What `script` takes: everything else configures a build, which the script reads from its environment. */
const SCRIPT_FLAGS = new Set(['--strategy']);
/** What the merge build takes: it reads the platform images from the app repository and writes the index there. */
const MERGE_FLAGS = new Set(['--strategy', '--app-repo', '--merge-platforms', '--no-reuse-existing-image']);
const REPO_URI = /^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]+)?(\/[a-z0-9]+([._-][a-z0-9]+)*)+$/;

export interface CliResult {
  readonly stdout: string;
  readonly exitCode: number;
  readonly stderr: string;
}

/** Parses the command line and renders; pure, so tests need no subprocess. */
export function runCli(argv: readonly string[]): CliResult {
  try {
    if (argv.includes('-h') || argv.includes('--help')) return { stdout: USAGE, stderr: '', exitCode: 0 };
    const [command, ...rest] = argv;
    if (command === undefined) throw new UsageError('missing command: expected script, env or buildspec');
    if (!(COMMANDS as readonly string[]).includes(command)) {
      throw new UsageError(`unknown command '${command}': expected script, env or buildspec`);
    }
    const { options, flags } = parseFlags(rest);
    const bs = new BuildScript(options);
    if (command === 'script') {
      const config = flags.filter(f => !SCRIPT_FLAGS.has(f));
      if (config.length > 0) {
        throw new UsageError(`script takes --strategy only: the script reads its configuration from the environment; `
          + `print the variables for ${config.join(' ')} with 'cached-build env'`);
      }
      return { stdout: bs.renderScript(), stderr: '', exitCode: 0 };
    }
    if (command === 'env') {
      const env = bs.environment();
      return { stdout: Object.entries(env).map(([k, v]) => `${k}=${v}\n`).join(''), stderr: '', exitCode: 0 };
    }
    const yaml = options.mergePlatforms
      ? bs.renderMergeBuildSpecYaml(undefined, bs.environment())
      : bs.renderBuildSpecYaml(undefined, bs.environment());
    const stderr = yaml.length > MAX_INLINE_BUILDSPEC_LENGTH
      ? `cached-build: note: this buildspec is ${yaml.length} characters: commit it as a file in your source (buildspec.yml); `
        + `CodeBuild refuses an inline buildspec over ${MAX_INLINE_BUILDSPEC_LENGTH}\n`
      : '';
    return { stdout: yaml, stderr, exitCode: 0 };
  } catch (e) {
    if (e instanceof UsageError) {
      return { stdout: '', stderr: `cached-build: ${e.message}\nRun 'cached-build --help' for the flags.\n`, exitCode: 2 };
    }
    throw e;
  }
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

function parseFlags(args: readonly string[]): { options: BuildScriptOptions; flags: string[] } {
  const o: Mutable<BuildScriptOptions> = { strategy: 'registry' };
  const readOnly: string[] = [];
  const buildArgs: Record<string, string> = {};
  const seen = new Set<string>();
  for (let i = 0; i < args.length; i++) {
    const raw = args[i];
    const eq = raw.startsWith('--') ? raw.indexOf('=') : -1;
    const flag = eq > 0 ? raw.slice(0, eq) : raw;
    const inline = eq > 0 ? raw.slice(eq + 1) : undefined;
    const value = (): string => {
      const v = inline ?? args[++i];
      if (v === undefined || (inline === undefined && v.startsWith('--'))) throw new UsageError(`${flag} needs a value`);
      if (v.length === 0) throw new UsageError(`${flag} must not be empty`);
      if (/[\n\r]/.test(v)) throw new UsageError(`${flag} must be one line, got ${JSON.stringify(v)}`);
      return v;
    };
    const repeatable = flag === '--read-only-branch' || flag === '--build-arg';
    if (!repeatable && seen.has(flag)) throw new UsageError(`${flag} given twice`);
    seen.add(flag);
    switch (flag) {
      case '--strategy': {
        const v = value();
        if (!(STRATEGIES as readonly string[]).includes(v)) {
          throw new UsageError(`--strategy must be one of ${STRATEGIES.join(', ')}, got '${v}'`);
        }
        o.strategy = v as StrategyName;
        break;
      }
      case '--app-repo': o.appRepositoryUri = repoUri(flag, value()); break;
      case '--cache-repo': o.cacheRepositoryUri = repoUri(flag, value()); break;
      case '--dockerfile': o.dockerfile = relativePath(flag, value()); break;
      case '--context': o.context = relativePath(flag, value()); break;
      case '--default-branch': {
        const v = value();
        const why = invalidBranchReason(v);
        if (why) throw new UsageError(`--default-branch '${v}' is not a valid branch name: ${why}`);
        o.defaultBranch = v;
        break;
      }
      case '--read-only-branch': {
        const v = value();
        if (/\s/.test(v)) throw new UsageError(`--read-only-branch must be a glob without whitespace, got '${v}'`);
        readOnly.push(v);
        break;
      }
      case '--no-cache-write':
        if (inline !== undefined) throw new UsageError('--no-cache-write takes no value');
        o.cacheWrite = false;
        break;
      case '--build-arg': {
        const v = value();
        const k = v.split('=')[0];
        if (!v.includes('=') || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) {
          throw new UsageError(`--build-arg must be KEY=VALUE with KEY a variable name, got '${v}'`);
        }
        buildArgs[k] = v.slice(k.length + 1);
        break;
      }
      case '--target': {
        const v = value();
        if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(v)) throw new UsageError(`--target must be a stage name, got '${v}'`);
        o.target = v;
        break;
      }
      case '--platform': {
        const v = value();
        if (!v.split(',').every(p => PLATFORM.test(p))) throw new UsageError(`--platform must look like linux/amd64, got '${v}'`);
        o.platform = platformList(flag, v).join(',');
        break;
      }
      case '--buildkit-image': {
        const v = value();
        if (!/^[^\s-]\S*$/.test(v)) throw new UsageError(`--buildkit-image must be an image reference, got '${v}'`);
        o.buildkitImage = v;
        break;
      }
      case '--cache-compression': {
        const v = value();
        if (v !== 'zstd' && v !== 'gzip') throw new UsageError(`--cache-compression must be zstd or gzip, got '${v}'`);
        o.cacheCompression = v;
        break;
      }
      case '--image-name': {
        const v = value();
        if (!IMAGE_NAME.test(v) || v.length > MAX_IMAGE_NAME_LENGTH) {
          throw new UsageError(`--image-name must be 1-${MAX_IMAGE_NAME_LENGTH} of a-z 0-9 with single . _ - between, got '${v}'`);
        }
        o.imageName = v;
        break;
      }
      case '--platform-tags':
        if (inline !== undefined) throw new UsageError('--platform-tags takes no value');
        o.platformTags = true;
        break;
      case '--merge-platforms': {
        const v = value();
        const bad = v.split(',').find(p => !PLATFORM.test(p));
        if (bad !== undefined) throw new UsageError(`--merge-platforms must be platforms like linux/amd64,linux/arm64, got '${bad}' in '${v}'`);
        if (!v.includes(',')) throw new UsageError(`--merge-platforms must name two or more platforms (one index of them), got '${v}'`);
        o.mergePlatforms = platformList(flag, v);
        break;
      }
      case '--no-reuse-existing-image':
        if (inline !== undefined) throw new UsageError('--no-reuse-existing-image takes no value');
        o.reuseExistingImage = false;
        break;
      case '--no-skip-unchanged':
        if (inline !== undefined) throw new UsageError('--no-skip-unchanged takes no value');
        o.skipUnchangedBuilds = false;
        break;
      default:
        throw new UsageError(raw.startsWith('-') ? `unknown flag '${flag}'` : `unexpected argument '${raw}'`);
    }
  }
  if (o.platform?.includes(',') && !MULTI_PLATFORM_STRATEGIES.includes(o.strategy)) {
    throw new UsageError(`--platform '${o.platform}' names several platforms: only --strategy registry builds a multi-platform image, `
      + `got --strategy ${o.strategy}`);
  }
  if (o.cacheCompression !== undefined && o.strategy !== 'registry') {
    throw new UsageError(`--cache-compression is the registry strategy's (its cache export), got --strategy ${o.strategy}`);
  }
  if (o.platformTags && (o.platform === undefined || o.platform.includes(','))) {
    throw new UsageError(`--platform-tags tags one platform's image <tag>--<os>-<arch>: give one --platform, got '${o.platform ?? ''}'`);
  }
  if (o.mergePlatforms) {
    const build = [...seen].filter(f => !MERGE_FLAGS.has(f));
    if (build.length > 0) {
      throw new UsageError(`--merge-platforms describes the merge build, which builds nothing: ${build.join(' ')} belong to the platforms' builds`);
    }
  }
  if (readOnly.length > 0) o.readOnlyBranches = readOnly;
  if (Object.keys(buildArgs).length > 0) o.buildArgs = buildArgs;
  return { options: o, flags: [...seen] };
}

/** A comma-separated list of platforms (each already checked), refused when it names one twice. */
function platformList(flag: string, v: string): string[] {
  const list = v.split(',');
  const twice = list.find((p, n) => list.indexOf(p) !== n);
  if (twice) throw new UsageError(`${flag} '${v}' names ${twice} twice`);
  return list;
}

function repoUri(flag: string, v: string): string {
  if (!REPO_URI.test(v)) {
    throw new UsageError(`${flag} must be a repository URI like 123456789012.dkr.ecr.eu-west-1.amazonaws.com/app (no tag), got '${v}'`);
  }
  return v;
}

function relativePath(flag: string, v: string): string {
  if (v.startsWith('/')) throw new UsageError(`${flag} must be relative to the source root, got '${v}'`);
  // An engine would read a leading - as one of its options.
  if (v.startsWith('-')) throw new UsageError(`${flag} must not start with -, got '${v}'`);
  if (v.split('/').includes('..')) throw new UsageError(`${flag} must stay inside the source root, got '${v}'`);
  return v;
}

if (require.main === module) {
  const r = runCli(process.argv.slice(2));
  process.stdout.write(r.stdout);
  process.stderr.write(r.stderr);
  process.exitCode = r.exitCode;
}
