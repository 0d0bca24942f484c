import { createHash } from 'crypto';

/** The longest tag a registry accepts (OCI distribution spec). */
export const MAX_TAG_LENGTH = 128;
const HASH_LENGTH = 8;

/**
 * Turns a branch name into a valid, bounded, collision-safe image tag.
 *
 * Characters outside `[A-Za-z0-9_.-]` become `-` (byte by byte, like `LC_ALL=C tr`), leading `.` and `-`
 * are dropped, runs of `-` become one (`--` is the ref-family separator), and whenever the name had to
 * change or is too long, the first 8 hex characters of the SHA-256 of the original name are appended, so
 * `feature/a` and `feature-a` never share a tag.
 * The shell twin is {@link BRANCH_TAG_SHELL}; a unit test keeps them identical.
 */
export function branchTag(branch: string, maxLength: number = MAX_TAG_LENGTH): string {
  const bytes = Buffer.from(branch, 'utf8');
  let tag = '';
  for (const b of bytes) {
    const c = String.fromCharCode(b);
    tag += /[A-Za-z0-9_.-]/.test(c) ? c : '-';
  }
  // `--` separates a branch tag from a suffix (the inline strategy's `<tag>--<stage>` refs): never inside a name.
  tag = tag.replace(/^[.-]+/, '').replace(/-{2,}/g, '-');
  if (tag !== branch || tag.length > maxLength || tag.length === 0) {
    const hash = createHash('sha256').update(bytes).digest('hex').slice(0, HASH_LENGTH);
    const head = tag.slice(0, maxLength - HASH_LENGTH - 1).replace(/-+$/, '');
    tag = head.length > 0 ? `${head}-${hash}` : `b-${hash}`;
  }
  return tag;
}

/**
 * An image name in a `CachedImageBuildGroup`: it prefixes the image's cache refs in the shared cache
 * repository (`<image>--<branch tag>`). Lower case, digits and single `.`, `_` or `-` between them: never `--`, so the
 * prefix ends at the first `--` and a grouped ref never equals a plain branch tag (which has no `--` either).
 */
export const IMAGE_NAME = /^[a-z0-9]+(?:[._-][a-z0-9]+)*$/;
/** The longest image name: its refs keep at least 94 characters for the branch. */
export const MAX_IMAGE_NAME_LENGTH = 32;
/** Separates an image name from the branch tag in a grouped image's cache ref, and a ref from an inline side stage. */
export const REF_FAMILY_SEPARATOR = '--';

/**
 * The cache ref of one branch of one image: the branch tag alone (an image of its own cache repository), or
 * `<image>--<branch tag>` with the branch tag bounded so that the ref stays within 128 characters. The shell twin is
 * `cib_cache_ref` in {@link BRANCH_TAG_SHELL}.
 */
export function imageCacheRef(imageName: string | undefined, branch: string): string {
  if (!imageName) return branchTag(branch);
  return `${imageName}${REF_FAMILY_SEPARATOR}${branchTag(branch, MAX_TAG_LENGTH - imageName.length - REF_FAMILY_SEPARATOR.length)}`;
}

/**
 * Bash twin of {@link branchTag}: `cib_branch_tag NAME [MAX]` prints the tag; and of {@link imageCacheRef}:
 * `cib_cache_ref IMAGE BRANCH` (IMAGE may be empty). Needs coreutils only.
 */
export const BRANCH_TAG_SHELL = `cib_branch_tag() {
  local branch="$1" max="\${2:-${MAX_TAG_LENGTH}}" tag hash head
  tag=$(printf '%s' "$branch" | LC_ALL=C tr -c 'A-Za-z0-9_.-' '-' | LC_ALL=C sed -E -e 's/^[.-]+//' -e 's/-{2,}/-/g')
  if [ "$tag" != "$branch" ] || [ "\${#tag}" -gt "$max" ] || [ -z "$tag" ]; then
    hash=$(printf '%s' "$branch" | sha256sum | cut -c1-${HASH_LENGTH})
    head=\${tag:0:$((max - ${HASH_LENGTH + 1}))}
    head=$(printf '%s' "$head" | LC_ALL=C sed -E 's/-+$//')
    if [ -n "$head" ]; then tag="$head-$hash"; else tag="b-$hash"; fi
  fi
  printf '%s\\n' "$tag"
}

cib_cache_ref() {
  if [ -z "$1" ]; then cib_branch_tag "$2"; return; fi
  printf '%s${REF_FAMILY_SEPARATOR}%s\\n' "$1" "$(cib_branch_tag "$2" $((${MAX_TAG_LENGTH} - \${#1} - ${REF_FAMILY_SEPARATOR.length})))"
}`;

/** One platform: `os/arch` or `os/arch/variant` (the script's CIB_PLATFORM_RE). */
export const PLATFORM = /^[a-z0-9]+\/[a-z0-9_]+(\/[a-z0-9]+)?$/;

/** `linux/arm/v7` → `linux-arm-v7`: a platform in image tags (the script's `cib_platform_tag`), cache ref and construct names. */
export function platformSlug(platform: string): string {
  return platform.replace(/\//g, '-');
}

/** Where a build reads its cache from and where it writes it. */
export interface CacheRefPlan {
  /** Tags to read, in order: the current branch, then the default branch (deduplicated). */
  readonly read: string[];
  /** Tag to write, or undefined when the branch is read-only or writing is disabled. */
  readonly write?: string;
}

/**
 * Whether a branch matches a read-only pattern. Patterns are shell globs (`*`, `?`, `[...]`), matched
 * against the whole branch name like bash `[[ $branch == $pattern ]]`.
 */
export function matchesBranchPattern(branch: string, pattern: string): boolean {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '*') {
      re += '.*';
    } else if (c === '?') {
      re += '.';
    } else if (c === '[') {
      const end = pattern.indexOf(']', i + 2);
      if (end < 0) {
        re += '\\[';
      } else {
        let cls = pattern.slice(i + 1, end);
        if (cls.startsWith('!')) cls = '^' + cls.slice(1);
        re += `[${cls.replace(/\\/g, '\\\\')}]`;
        i = end;
      }
    } else {
      re += c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
    }
  }
  return new RegExp(`^${re}$`, 's').test(branch);
}

/**
 * The read chain and write ref for a branch, as the generated script computes them at build time: the image's own ref of the
 * branch, then the sibling images' refs of the branch (a group's images share stages), then the same for the default branch;
 * duplicates dropped. Only the image's own ref of the branch is written.
 */
export function planCacheRefs(
  branch: string, defaultBranch: string, readOnlyBranches: readonly string[], cacheWrite: boolean,
  imageName?: string, siblingImages: readonly string[] = [],
): CacheRefPlan {
  const images = [imageName, ...siblingImages.filter(s => s !== imageName)];
  const read: string[] = [];
  for (const b of [branch, defaultBranch]) {
    for (const image of images) {
      const ref = imageCacheRef(image, b);
      if (!read.includes(ref)) read.push(ref);
    }
  }
  const readOnly = !cacheWrite || readOnlyBranches.some(p => matchesBranchPattern(branch, p));
  return { read, write: readOnly ? undefined : imageCacheRef(imageName, branch) };
}

/**
 * Why a branch name is unusable as a default branch, or undefined when it is fine. Mirrors
 * `git check-ref-format --branch` for the cases users hit.
 */
export function invalidBranchReason(name: string): string | undefined {
  if (name.length === 0) return 'it is empty';
  if (/\s/.test(name)) return 'it contains whitespace';
  // eslint-disable-next-line no-control-regex -- control characters are exactly what git refuses
  if (/[~^:?*[\\\x00-\x1f\x7f]/.test(name)) return 'it contains one of ~ ^ : ? * [ \\ or a control character';
  if (name.startsWith('-') || name.startsWith('/') || name.endsWith('/') || name.endsWith('.')) {
    return 'it starts with - or /, or ends with / or .';
  }
  if (name.includes('..') || name.includes('//') || name.includes('@{') || name.endsWith('.lock')) {
    return 'it contains .., //, @{ or ends with .lock';
  }
  return undefined;
}
