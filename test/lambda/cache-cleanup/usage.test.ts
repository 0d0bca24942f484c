import { BuildRecord, isBuildahStepTag, usageFromRecords } from '../../../lambda/cache-cleanup/usage';
import { DAY, HOUR, NOW, stepTag } from './fixtures';

const MINUTE = 60_000;

/** A finished, successful build of `branch` that ended at `end`. */
function record(branch: string, end: number | undefined, read: string[], written: string[] = [], fields: Partial<BuildRecord> = {}): BuildRecord {
  return {
    start: (end ?? NOW) - 10 * MINUTE, end, succeeded: end !== undefined, branchTag: branch,
    refsRead: read, refsWritten: written, reused: false, ...fields,
  };
}

describe('usageFromRecords', () => {
  test('a finished build used every ref it read and wrote, at its end; a fully cached build wrote nothing but its reads count', () => {
    const u = usageFromRecords([
      record('f', NOW - HOUR, ['f', 'main']),
      record('f', NOW - 3 * DAY, ['f', 'main'], ['f']),
      record('g', NOW - 2 * DAY, ['g']),
    ], 'main', NOW - 14 * DAY);
    expect(Object.fromEntries(u.lastUseByTag)).toEqual({ f: NOW - HOUR, main: NOW - HOUR, g: NOW - 2 * DAY });
    expect(u.writes).toEqual([{ start: NOW - 3 * DAY - 10 * MINUTE, end: NOW - 3 * DAY, refs: ['f'] }]);
  });

  test('the default branch\'s refs: those of its newest successful build that used cache (not a reuse, not a failure)', () => {
    const [a, b, c] = ['a', 'b', 'c'].map(stepTag);
    const u = usageFromRecords([
      record('main', NOW - HOUR, [], [], { reused: true }),
      record('main', NOW - 2 * HOUR, [a], [], { succeeded: false }),
      record('feat', NOW - 3 * HOUR, [a], [c]),
      record('main', NOW - 4 * HOUR, [a], [b]),
      record('main', NOW - 5 * HOUR, [c]),
    ], 'main', NOW - 14 * DAY);
    expect([...u.defaultBranchRefs!]).toEqual([a, b]);
  });

  test('buildah: the steps a build read, then those it wrote, form its chain; the newest build that used a step places it', () => {
    const [a, b, c, d] = ['a', 'b', 'c', 'd'].map(stepTag);
    const u = usageFromRecords([record('x', NOW - HOUR, [a, b], [c]), record('y', NOW - 2 * HOUR, [a], [d, b])], 'main', NOW - 14 * DAY);
    expect(Object.fromEntries(u.steps!)).toEqual({
      [a]: { depth: 0 }, [b]: { depth: 1, parent: a }, [c]: { depth: 2, parent: b }, [d]: { depth: 1, parent: a },
    });
    expect(isBuildahStepTag(a)).toBe(true);
    expect(isBuildahStepTag('main')).toBe(false);
  });

  test('a running build reads its branch\'s ref and the default branch\'s, and the steps its branch\'s newest build used', () => {
    const [q1, q2, m1] = ['q1', 'q2', 'm1'].map(stepTag);
    const u = usageFromRecords([
      record('feature-q', undefined, []),
      record('feature-q', NOW - 10 * DAY, [q1], [q2]),
      record('main', NOW - DAY, [m1]),
    ], 'main', NOW - 14 * DAY);
    expect([...u.refsInUse!].sort()).toEqual(['feature-q', 'main', m1, q1, q2].sort());
    // Its exports are not final: it adds no use of its own.
    expect(u.lastUseByTag.has('feature-q')).toBe(false);
  });

  test('a first move is shared when another build used the ref and started before the move ended; a new branch\'s first write is not', () => {
    const u = usageFromRecords([
      record('main', NOW - MINUTE, ['main'], ['main']),
      record('main', NOW - 2 * DAY, ['main']),
      record('new', NOW - HOUR, ['new', 'main'], ['new']),
    ], 'main', NOW - 14 * DAY);
    expect(Object.fromEntries(u.sharedFirstMoves!)).toEqual({ main: NOW - MINUTE });
  });
});
