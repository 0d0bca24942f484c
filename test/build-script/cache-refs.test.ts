import { execFileSync } from 'child_process';
import * as fc from 'fast-check';
import { BRANCH_TAG_SHELL, branchTag, invalidBranchReason, matchesBranchPattern, planCacheRefs } from '../../lib/build-script/cache-refs';

const VALID_TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

/** Runs the shell twin over many names in one bash process (NUL-separated in, newline-separated out). */
function shellTags(names: string[]): string[] {
  const script = `${BRANCH_TAG_SHELL}\nwhile IFS= read -r -d '' name; do cib_branch_tag "$name"; done`;
  const out = execFileSync('bash', ['-c', script], { input: names.map(n => n + '\0').join('') });
  return out.toString('utf8').split('\n').slice(0, -1);
}

describe('branchTag', () => {
  test('keeps plain names as they are', () => {
    expect(branchTag('main')).toBe('main');
    expect(branchTag('release-1.2_x')).toBe('release-1.2_x');
  });

  test('sanitises and adds a hash so that similar names never collide', () => {
    const a = branchTag('feature/a');
    const b = branchTag('feature-a');
    expect(b).toBe('feature-a');
    expect(a).toMatch(/^feature-a-[0-9a-f]{8}$/);
    expect(a).not.toBe(b);
  });

  test('drops leading dots and dashes; an all-invalid name still gives a valid tag', () => {
    expect(branchTag('-x')).toMatch(/^x-[0-9a-f]{8}$/);
    expect(branchTag('..')).toMatch(/^b-[0-9a-f]{8}$/);
    expect(branchTag('')).toMatch(/^b-[0-9a-f]{8}$/);
  });

  test('bounds long names to 128 characters and keeps them distinct', () => {
    const long1 = 'x'.repeat(300) + '1';
    const long2 = 'x'.repeat(300) + '2';
    expect(branchTag(long1)).toHaveLength(128);
    expect(branchTag(long1)).not.toBe(branchTag(long2));
  });

  test('never contains -- (the ref-family separator of the cleanup)', () => {
    expect(branchTag('a--b')).toMatch(/^a-b-[0-9a-f]{8}$/);
    expect(branchTag('x'.repeat(118) + '-/y')).not.toContain('--');
  });

  test('property: always a valid tag without --, injective on distinct inputs', () => {
    fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 200 }), fc.string({ unit: 'binary', maxLength: 200 }), (x, y) => {
      expect(branchTag(x)).toMatch(VALID_TAG);
      expect(branchTag(x)).not.toContain('--');
      if (x !== y) expect(branchTag(x)).not.toBe(branchTag(y));
    }), { numRuns: 500 });
  });

  test('the bash twin gives the same tag as TypeScript', () => {
    const names = fc.sample(fc.string({ unit: 'grapheme-ascii', maxLength: 160 }), 300)
      .concat(fc.sample(fc.string({ unit: 'binary', maxLength: 40 }), 100))
      .concat(['main', 'feature/a', 'x'.repeat(129), '-lead', '.dot', 'ünïcode/branch', 'a b', '', 'a--b', 'x'.repeat(118) + '-/y', '--'])
      .filter(n => !n.includes('\0'));
    expect(shellTags(names)).toEqual(names.map(n => branchTag(n)));
  });
});

describe('planCacheRefs', () => {
  test('reads the branch then the default branch, writes the branch', () => {
    expect(planCacheRefs('feat/x', 'main', [], true)).toEqual({ read: [branchTag('feat/x'), 'main'], write: branchTag('feat/x') });
  });
  test('the default branch reads itself once', () => {
    expect(planCacheRefs('main', 'main', [], true)).toEqual({ read: ['main'], write: 'main' });
  });
  test('read-only patterns and disabled writes never write', () => {
    expect(planCacheRefs('pr-12', 'main', ['pr-*'], true).write).toBeUndefined();
    expect(planCacheRefs('dependabot/npm/x', 'main', ['dependabot/*'], true).write).toBeUndefined();
    expect(planCacheRefs('main', 'main', [], false).write).toBeUndefined();
    expect(planCacheRefs('pr-12', 'main', ['pr-?'], true).write).toBe('pr-12');
  });
});

describe('matchesBranchPattern agrees with bash [[ == ]]', () => {
  const cases: Array<[string, string]> = [
    ['pr-1', 'pr-*'], ['pr-1', 'pr-?'], ['pr-12', 'pr-?'], ['feature/a', 'feature/*'], ['a.b', 'a?b'], ['a.b', 'a.b'],
    ['axb', 'a.b'], ['v1', 'v[0-9]'], ['va', 'v[0-9]'], ['va', 'v[!0-9]'], ['x(y', 'x(*'], ['main', '*'], ['', '*'],
  ];
  test.each(cases)('%s vs %s', (branch, pattern) => {
    const bash = execFileSync('bash', ['-c', 'if [[ $1 == $2 ]]; then echo y; else echo n; fi', '_', branch, pattern]).toString().trim();
    expect(matchesBranchPattern(branch, pattern)).toBe(bash === 'y');
  });
});

describe('invalidBranchReason', () => {
  test.each(['', 'a b', 'a..b', '-x', 'x/', 'a:b', 'x.lock', 'a~1'])('rejects %j', n => {
    expect(invalidBranchReason(n)).toBeDefined();
  });
  test.each(['main', 'release/1.2', 'feature/x-y_z'])('accepts %s', n => {
    expect(invalidBranchReason(n)).toBeUndefined();
  });
});
