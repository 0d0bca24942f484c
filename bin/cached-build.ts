#!/usr/bin/env node
import { BuildScript } from '../lib/build-script/build-script';
import { invalidBranchReason } from '../lib/build-script/cache-refs';
import { StrategyName } from '../lib/build-script/engine';

const USAGE = `Usage: cached-build <script|buildspec> [flags]

Prints the cached image build for reuse outside the CDK construct:
  script      a standalone bash script (run it in any CI with docker/buildx or buildah)
  buildspec   a CodeBuild buildspec.yml

Flags:
  --strategy registry|inline|buildah   cache strategy (default registry)
  --app-repo URI                       app image repository (default: $APP_REPOSITORY_URI at build time)
  --cache-repo URI                     cache repository (default: $CACHE_REPOSITORY_URI at build time)
  --dockerfile PATH                    Dockerfile, relative to the source root (default Dockerfile)
  --context DIR                        build context (default .)
  --default-branch NAME                branch whose cache all branches fall back to (default main)
  --read-only-branch GLOB              branches that read but never write cache (repeatable)
  --no-cache-write                     never write cache
  --build-arg KEY=VALUE                build argument (repeatable)
  --target STAGE                       target stage
  --platform OS/ARCH                   target platform
  --buildkit-image IMAGE               BuildKit image for the docker-container builder (registry)
  -h, --help                           this text
`;

/** Thrown for bad command lines: printed with the usage hint, exit code 2. */
export class UsageError extends Error {}

const STRATEGIES: readonly StrategyName[] = ['registry', 'inline', 'buildah'];
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
    if (command === undefined) throw new UsageError('missing command: expected script or buildspec');
    if (command !== 'script' && command !== 'buildspec') {
      throw new UsageError(`unknown command '${command}': expected script or buildspec`);
    }
    const opts = parseFlags(rest);
    const bs = new BuildScript(opts);
    return { stdout: command === 'script' ? bs.renderScript() : bs.renderBuildSpecYaml(), stderr: '', exitCode: 0 };
  } catch (e) {
    if (e instanceof UsageError) {
      return { stdout: '', stderr: `cached-build: ${e.message}\nRun 'cached-build --help' for the flags.\n`, exitCode: 2 };
    }
    throw e;
  }
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

function parseFlags(args: readonly string[]): ConstructorParameters<typeof BuildScript>[0] {
  const o: Mutable<ConstructorParameters<typeof BuildScript>[0]> = { strategy: 'registry' };
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
      case '--read-only-branch': readOnly.push(value()); break;
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
        if (!/^[a-z0-9]+\/[a-z0-9_]+(\/[a-z0-9]+)?(,[a-z0-9]+\/[a-z0-9_]+(\/[a-z0-9]+)?)*$/.test(v)) {
          throw new UsageError(`--platform must look like linux/amd64, got '${v}'`);
        }
        o.platform = v;
        break;
      }
      case '--buildkit-image': o.buildkitImage = value(); break;
      default:
        throw new UsageError(raw.startsWith('-') ? `unknown flag '${flag}'` : `unexpected argument '${raw}'`);
    }
  }
  if (readOnly.length > 0) o.readOnlyBranches = readOnly;
  if (Object.keys(buildArgs).length > 0) o.buildArgs = buildArgs;
  return o;
}

function repoUri(flag: string, v: string): string {
  if (!REPO_URI.test(v)) {
    throw new UsageError(`${flag} must be a repository URI like 123456789012.dkr.ecr.eu-west-1.amazonaws.com/app (no tag), got '${v}'`);
  }
  return v;
}

function relativePath(flag: string, v: string): string {
  if (v.startsWith('/')) throw new UsageError(`${flag} must be relative to the source root, got '${v}'`);
  if (v.split('/').includes('..')) throw new UsageError(`${flag} must stay inside the source root, got '${v}'`);
  return v;
}

if (require.main === module) {
  const r = runCli(process.argv.slice(2));
  process.stdout.write(r.stdout);
  process.stderr.write(r.stderr);
  process.exitCode = r.exitCode;
}
