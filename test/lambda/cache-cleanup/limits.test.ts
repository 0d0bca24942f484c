import fc from 'fast-check';
import { DeleteReason, KeepReason } from '../../../lambda/cache-cleanup/contract';
import { limitDeletes } from '../../../lambda/cache-cleanup/limits';
import { CacheImage, plan } from '../../../lambda/cache-cleanup/plan';
import { policyArb, repositoryArb, usageArb } from './arbitraries';
import { DAY, image, index, NOW, policy, usage } from './fixtures';

function tagged(n: number, pushedDaysAgo: (k: number) => number): CacheImage[] {
  return Array.from({ length: n }, (_, k) => image(`t${k}`, { tags: [`t${k}`], pushedAt: NOW - pushedDaysAgo(k) * DAY }));
}

describe('limitDeletes: maxDeletesPerRun', () => {
  test('deletes the oldest first and defers the rest to the next run', () => {
    const images = [image('main', { tags: ['main'] }), ...tagged(5, k => 20 + k)];
    const p = policy({ maxDeletesPerRun: 2, allowLargeDeletes: true });
    const limited = limitDeletes(plan(images, usage(), p, NOW), p);
    expect(limited.plan.delete.map(e => e.image.tags[0])).toEqual(['t4', 't3']);
    expect(limited.plan.keep.filter(e => e.reason === KeepReason.DEFERRED_RUN_CAP).map(e => e.image.tags[0]).sort()).toEqual(['t0', 't1', 't2']);
    expect(limited.refused).toBeUndefined();
  });

  test('a deferred index keeps its children out of this run', () => {
    const child = image('child', { pushedAt: NOW - 50 * DAY });
    const idx = index('idx', [child], { tags: ['old'], pushedAt: NOW - 10 * DAY });
    const images = [image('main', { tags: ['main'] }), idx, child, image('loose', { pushedAt: NOW - 40 * DAY })];
    const p = policy({ maxDeletesPerRun: 2, allowLargeDeletes: true, idleTimeoutSeconds: 5 * 24 * 3600 });
    const limited = limitDeletes(plan(images, usage(), p, NOW), p);
    // By age alone the cap would pick child and loose; child must wait for idx.
    expect(limited.plan.delete.map(e => e.image.digest)).toEqual([images[3].digest]);
    expect(limited.plan.keep.filter(e => e.reason === KeepReason.DEFERRED_RUN_CAP)).toHaveLength(2);
  });

  test('an unreadable index goes first, because deferring it would keep everything out of every run', () => {
    const idx = index('idx', undefined, { tags: ['old'], pushedAt: NOW - 20 * DAY });
    const images = [image('main', { tags: ['main'] }), idx, image('a', { pushedAt: NOW - 40 * DAY }), image('b', { pushedAt: NOW - 30 * DAY })];
    const p = policy({ maxDeletesPerRun: 2, allowLargeDeletes: true });
    const limited = limitDeletes(plan(images, usage(), p, NOW), p);
    expect(limited.plan.delete.map(e => e.image.digest)).toEqual([idx.digest, images[2].digest]);
  });

  test('when the cap leaves an unreadable index out, everything waits with it', () => {
    const idx1 = index('idx1', undefined, { tags: ['old1'], pushedAt: NOW - 20 * DAY });
    const idx2 = index('idx2', undefined, { tags: ['old2'], pushedAt: NOW - 25 * DAY });
    const images = [image('main', { tags: ['main'] }), idx1, idx2, image('a', { pushedAt: NOW - 40 * DAY })];
    const p = policy({ maxDeletesPerRun: 1, allowLargeDeletes: true });
    const limited = limitDeletes(plan(images, usage(), p, NOW), p);
    expect(limited.plan.delete).toEqual([]);
    expect(limited.plan.keep.filter(e => e.reason === KeepReason.DEFERRED_RUN_CAP)).toHaveLength(3);
  });
});

describe('limitDeletes: maxDeleteFraction', () => {
  test('refuses a run that would delete more than the fraction of the tagged images, and says why', () => {
    const images = [image('main', { tags: ['main'] }), ...tagged(3, () => 30)];
    const limited = limitDeletes(plan(images, usage(), policy(), NOW), policy());
    expect(limited.plan.delete).toEqual([]);
    expect(limited.refused).toMatch(/would delete 3 of 4 tagged images \(75\.0%\), more than maxDeleteFraction 0\.5/);
    expect(limited.plan.keep.filter(e => e.reason === KeepReason.REFUSED_LARGE_DELETE)).toHaveLength(3);
  });

  test('lets it through with allowLargeDeletes, or at or under the fraction', () => {
    const images = [image('main', { tags: ['main'] }), ...tagged(3, () => 30)];
    expect(limitDeletes(plan(images, usage(), policy(), NOW), policy({ allowLargeDeletes: true })).plan.delete).toHaveLength(3);
    expect(limitDeletes(plan(images, usage(), policy(), NOW), policy({ maxDeleteFraction: 0.75 })).plan.delete).toHaveLength(3);
  });

  test('untagged garbage does not count: a repository that is mostly overwritten manifests drains in one run', () => {
    const images = [image('main', { tags: ['main'] }), ...Array.from({ length: 50 }, (_, k) => image(`u${k}`))];
    const limited = limitDeletes(plan(images, usage(), policy(), NOW), policy());
    expect(limited.refused).toBeUndefined();
    expect(limited.plan.delete.map(e => e.reason)).toEqual(Array(50).fill(DeleteReason.UNTAGGED_PAST_GRACE));
  });
});

describe('limitDeletes properties', () => {
  const inputs = fc.tuple(repositoryArb, usageArb, policyArb, fc.integer({ min: 1, max: 10 }), fc.double({ min: 0.05, max: 1, noNaN: true }));

  test('within the cap, a subset of the plan, no kept index loses a child, refusal deletes nothing', () => {
    fc.assert(fc.property(inputs, ([images, use, base, cap, fraction]) => {
      const p = { ...base, maxDeletesPerRun: cap, maxDeleteFraction: fraction };
      const planned = plan(images, use, p, NOW);
      const limited = limitDeletes(planned, p);
      const deleted = new Set(limited.plan.delete.map(e => e.image.digest));
      expect(limited.plan.delete.length).toBeLessThanOrEqual(cap);
      for (const e of limited.plan.delete) expect(planned.delete).toContain(e);
      expect(limited.plan.keep.length + limited.plan.delete.length).toBe(images.length);
      // An archived index pins nothing (plan.ts): it was not read, and serves no build.
      for (const kept of limited.plan.keep.map(e => e.image).filter(i => i.isIndex && i.status !== 'ARCHIVED')) {
        if (kept.children === undefined) expect(limited.plan.delete).toEqual([]);
        else for (const c of kept.children) expect(deleted.has(c)).toBe(false);
      }
      if (limited.refused !== undefined) expect(limited.plan.delete).toEqual([]);
      const taggedTotal = images.filter(i => i.tags.length > 0).length;
      const taggedDeleted = limited.plan.delete.filter(e => e.image.tags.length > 0).length;
      expect(taggedDeleted).toBeLessThanOrEqual(fraction * taggedTotal);
      if (planned.delete.length <= cap && limited.refused === undefined) expect(limited.plan.delete).toEqual(planned.delete);
    }), { numRuns: 500 });
  });
});
