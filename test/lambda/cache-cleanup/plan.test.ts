import { branchTag } from '../../../lib/build-script/cache-refs';
import { DeleteReason, KeepReason } from '../../../lambda/cache-cleanup/contract';
import { accountedBytes, CacheImage, HISTORY_UNAVAILABLE, plan, Plan, refFamily } from '../../../lambda/cache-cleanup/plan';
import { DAY, HOUR, image, index, NOW, policy, stepTag, usage } from './fixtures';

function reasons(p: Plan): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of [...p.keep, ...p.delete]) out[e.image.tags[0] ?? e.image.digest.slice(7, 15)] = e.reason;
  return out;
}

function reasonOf(p: Plan, target: CacheImage): string | undefined {
  return [...p.keep, ...p.delete].find(e => e.image.digest === target.digest)?.reason;
}

describe('refFamily', () => {
  test('a branch tag and its --suffix refs share a family; buildah step tags have none', () => {
    expect(refFamily('main')).toBe('main');
    expect(refFamily('main--2')).toBe('main');
    expect(refFamily(branchTag('feature/x'))).toBe(branchTag('feature/x'));
    expect(refFamily(`${branchTag('feature/x')}--b`)).toBe(branchTag('feature/x'));
    expect(refFamily(stepTag('a'))).toBeUndefined();
  });
});

describe('plan: use within the idle timeout', () => {
  test('a ref every build reads stays alive though nobody pushed it for weeks (no-op builds push nothing)', () => {
    const feature = branchTag('feature/x');
    const images = [image('main', { tags: ['main'], pushedAt: NOW - 60 * DAY }), image('f', { tags: [feature], pushedAt: NOW - 60 * DAY })];
    const p = plan(images, usage({ [feature]: NOW - 2 * DAY }), policy(), NOW);
    expect(reasons(p)).toEqual({ main: KeepReason.NEWEST_DEFAULT_BRANCH, [feature]: KeepReason.RECENTLY_USED });
  });

  test('a ref no build used, nobody pulled and nobody pushed within the idle timeout is deleted as idle', () => {
    const images = [image('main', { tags: ['main'] }), image('old', { tags: ['old'], pushedAt: NOW - 15 * DAY, lastPulledAt: NOW - 15 * DAY })];
    const p = plan(images, usage({ old: NOW - 15 * DAY }), policy(), NOW);
    expect(p.delete.map(e => [e.image.tags[0], e.reason])).toEqual([['old', DeleteReason.IDLE]]);
  });

  test('the idle timeout is configurable, and a push or a recorded pull inside it counts as use', () => {
    const images = [
      image('main', { tags: ['main'] }),
      image('pushed', { tags: ['pushed'], pushedAt: NOW - 2 * DAY }),
      image('pulled', { tags: ['pulled'], lastPulledAt: NOW - 2 * DAY }),
      image('stale', { tags: ['stale'], pushedAt: NOW - 4 * DAY }),
    ];
    const p = plan(images, usage(), policy({ idleTimeoutSeconds: 3 * 24 * 3600 }), NOW);
    expect(reasons(p)).toMatchObject({ pushed: KeepReason.RECENTLY_USED, pulled: KeepReason.RECENTLY_USED, stale: DeleteReason.IDLE });
  });

  test('the pull time of an index is ignored unless trusted: our own BatchGetImage records a pull', () => {
    const child = image('child');
    const idx = index('idx', [child], { tags: ['feat'], lastPulledAt: NOW - HOUR });
    const images = [image('main', { tags: ['main'] }), idx, child];
    expect(reasonOf(plan(images, usage(), policy(), NOW), idx)).toBe(DeleteReason.IDLE);
    expect(reasonOf(plan(images, usage(), policy({ trustIndexPullTime: true }), NOW), idx)).toBe(KeepReason.RECENTLY_USED);
  });

  test('buildah step tags are kept or deleted by their own last use', () => {
    const used = image('s1', { tags: [stepTag('1')], lastPulledAt: NOW - DAY });
    const unused = image('s2', { tags: [stepTag('2')], lastPulledAt: NOW - 20 * DAY });
    const p = plan([image('main', { tags: ['main'] }), used, unused], usage(), policy(), NOW);
    expect(reasonOf(p, used)).toBe(KeepReason.RECENTLY_USED);
    expect(reasonOf(p, unused)).toBe(DeleteReason.IDLE);
  });

  test('an image with several tags is kept when any of them is alive', () => {
    const shared = image('shared', { tags: ['a', 'b'] });
    const p = plan([shared], usage({ b: NOW - DAY }), policy(), NOW);
    expect(p.keep.map(e => e.reason)).toEqual([KeepReason.RECENTLY_USED]);
  });
});

describe('plan: the newest default-branch cache', () => {
  test('is kept however long it has been idle, and however small the budget', () => {
    const main = image('main', { tags: ['main'], pushedAt: NOW - 400 * DAY, sizeBytes: 10_000 });
    const p = plan([main], usage(), policy({ maxCacheBytes: 1 }), NOW);
    expect(p.keep.map(e => e.reason)).toEqual([KeepReason.NEWEST_DEFAULT_BRANCH]);
  });

  test('is the newest push of the family (main, main--<suffix>); older idle family refs go', () => {
    const main = image('main', { tags: ['main'], pushedAt: NOW - 40 * DAY });
    const newer = image('main2', { tags: ['main--2'], pushedAt: NOW - 30 * DAY });
    const p = plan([main, newer], usage(), policy(), NOW);
    expect(reasons(p)).toEqual({ main: DeleteReason.IDLE, 'main--2': KeepReason.NEWEST_DEFAULT_BRANCH });
  });

  test('on equal push times the exact default tag wins', () => {
    const suffixed = image('main2', { tags: ['main--2'], pushedAt: NOW - 30 * DAY });
    const main = image('main', { tags: ['main'], pushedAt: NOW - 30 * DAY });
    expect(reasons(plan([suffixed, main], usage(), policy(), NOW)).main).toBe(KeepReason.NEWEST_DEFAULT_BRANCH);
  });

  test('follows the configured default branch tag', () => {
    const trunk = branchTag('release/2.x');
    const images = [image('main', { tags: ['main'] }), image('trunk', { tags: [trunk] })];
    expect(reasons(plan(images, usage(), policy({ defaultBranchTag: trunk }), NOW))).toEqual({
      main: DeleteReason.IDLE, [trunk]: KeepReason.NEWEST_DEFAULT_BRANCH,
    });
  });
});

describe('plan: maxRefsPerBranch', () => {
  test('keeps the N most recently used refs of each family, not counting buildah step tags', () => {
    const images = [
      image('main', { tags: ['main'] }),
      image('a', { tags: ['feat'] }), image('a1', { tags: ['feat--1'] }), image('a2', { tags: ['feat--2'] }),
      image('s1', { tags: [stepTag('1')], pushedAt: NOW - HOUR }), image('s2', { tags: [stepTag('2')], pushedAt: NOW - HOUR }),
    ];
    const use = usage({ feat: NOW - 3 * HOUR, 'feat--1': NOW - 1 * HOUR, 'feat--2': NOW - 2 * HOUR });
    const p = plan(images, use, policy({ maxRefsPerBranch: 2 }), NOW);
    expect(reasons(p)).toMatchObject({ feat: DeleteReason.OVER_MAX_REFS, 'feat--1': KeepReason.RECENTLY_USED, 'feat--2': KeepReason.RECENTLY_USED });
    expect(p.keep.filter(e => refFamily(e.image.tags[0]) === undefined)).toHaveLength(2);
  });

  test('an idle ref beyond the limit is reported as idle, the limit did not decide it', () => {
    const images = [image('main', { tags: ['main'] }), image('a', { tags: ['feat'] }), image('a1', { tags: ['feat--1'] })];
    const p = plan(images, usage({ 'feat--1': NOW - HOUR }), policy({ maxRefsPerBranch: 1 }), NOW);
    expect(reasons(p).feat).toBe(DeleteReason.IDLE);
  });
});

describe('plan: untagged manifests', () => {
  test('are kept during the grace period after their push or last pull, then deleted', () => {
    const fresh = image('fresh', { pushedAt: NOW - 2 * HOUR });
    const pulled = image('pulled', { pushedAt: NOW - 10 * DAY, lastPulledAt: NOW - 3 * HOUR });
    const old = image('old', { pushedAt: NOW - 2 * DAY });
    const p = plan([image('main', { tags: ['main'] }), fresh, pulled, old], usage(), policy(), NOW);
    expect(reasonOf(p, fresh)).toBe(KeepReason.UNTAGGED_IN_GRACE);
    expect(reasonOf(p, pulled)).toBe(KeepReason.UNTAGGED_IN_GRACE);
    expect(reasonOf(p, old)).toBe(DeleteReason.UNTAGGED_PAST_GRACE);
    expect(reasonOf(plan([old], usage(), policy({ untaggedGracePeriodSeconds: 3 * 24 * 3600 }), NOW), old)).toBe(KeepReason.UNTAGGED_IN_GRACE);
  });
});

describe('plan: image indexes', () => {
  test('the children of a kept index are kept, even idle or tagged idle; those of a deleted index are not', () => {
    const amd = image('amd');
    const att = image('att', { tags: ['stale-child'] });
    const kept = index('kept', [amd, att], { tags: ['main'] });
    const orphan = image('orphan');
    const gone = index('gone', [orphan], { tags: ['gone'] });
    const p = plan([kept, amd, att, gone, orphan], usage(), policy(), NOW);
    expect(reasonOf(p, amd)).toBe(KeepReason.CHILD_OF_KEPT_INDEX);
    expect(reasonOf(p, att)).toBe(KeepReason.CHILD_OF_KEPT_INDEX);
    expect(reasonOf(p, gone)).toBe(DeleteReason.IDLE);
    expect(reasonOf(p, orphan)).toBe(DeleteReason.UNTAGGED_PAST_GRACE);
  });

  test('keeping goes through nested indexes, and an untagged index in grace keeps its children', () => {
    const leaf = image('leaf');
    const inner = index('inner', [leaf]);
    const outer = index('outer', [inner], { pushedAt: NOW - HOUR });
    const p = plan([leaf, inner, outer], usage(), policy(), NOW);
    expect([reasonOf(p, outer), reasonOf(p, inner), reasonOf(p, leaf)]).toEqual([
      KeepReason.UNTAGGED_IN_GRACE, KeepReason.CHILD_OF_KEPT_INDEX, KeepReason.CHILD_OF_KEPT_INDEX,
    ]);
  });

  test('while a kept index could not be read nothing is deleted (it might reference anything); a deleted one blocks nothing', () => {
    const loose = image('loose');
    const unknownKept = index('u', undefined, { tags: ['main'] });
    const idleTagged = image('idle', { tags: ['idle'] });
    const blocked = plan([unknownKept, loose, idleTagged], usage(), policy(), NOW);
    expect(blocked.delete).toEqual([]);
    expect([reasonOf(blocked, loose), reasonOf(blocked, idleTagged)]).toEqual(Array(2).fill(KeepReason.INDEX_CHILDREN_UNKNOWN));
    const unknownIdle = index('u2', undefined, { tags: ['feat'] });
    const p = plan([image('main', { tags: ['main'] }), unknownIdle, loose], usage(), policy(), NOW);
    expect(reasonOf(p, unknownIdle)).toBe(DeleteReason.IDLE);
    expect(reasonOf(p, loose)).toBe(DeleteReason.UNTAGGED_PAST_GRACE);
  });

  test('an index whose children are known adds no bytes of its own (ECR reports its largest child)', () => {
    const child = image('c', { sizeBytes: 700 });
    expect(accountedBytes(index('i', [child], { sizeBytes: 700 }))).toBe(0);
    expect(accountedBytes(index('i', undefined, { sizeBytes: 700 }))).toBe(700);
    expect(accountedBytes(child)).toBe(700);
  });
});

describe('plan: maxCacheBytes', () => {
  const main = image('main', { tags: ['main'], sizeBytes: 1000, pushedAt: NOW - DAY });
  const refs = [1, 2, 3, 4].map(k => image(`f${k}`, { tags: [`f${k}`], sizeBytes: 1000, pushedAt: NOW - 5 * DAY }));
  const use = usage({ f1: NOW - 4 * DAY, f2: NOW - 1 * DAY, f3: NOW - 3 * DAY, f4: NOW - 2 * DAY });

  test('evicts least recently used first, and only until the budget is met', () => {
    const p = plan([main, ...refs], use, policy({ maxCacheBytes: 3000 }), NOW);
    expect(p.delete.map(e => [e.image.tags[0], e.reason])).toEqual([['f1', DeleteReason.OVER_BUDGET], ['f3', DeleteReason.OVER_BUDGET]]);
    expect(p.keep.reduce((s, e) => s + e.bytes, 0)).toBe(3000);
  });

  test('last use is the latest of build use, recorded pull and push', () => {
    const pulled = image('f1', { tags: ['f1'], sizeBytes: 1000, pushedAt: NOW - 5 * DAY, lastPulledAt: NOW - HOUR });
    const p = plan([main, pulled, ...refs.slice(1)], use, policy({ maxCacheBytes: 3000 }), NOW);
    expect(p.delete.map(e => e.image.tags[0])).toEqual(['f3', 'f4']);
  });

  test('evicting an index frees its children, except those another kept index still references', () => {
    const shared = image('shared', { sizeBytes: 500 });
    const own = image('own', { sizeBytes: 500 });
    const old = index('old', [shared, own], { tags: ['old'], pushedAt: NOW - 3 * DAY });
    const recent = index('recent', [shared], { tags: ['recent'], pushedAt: NOW - 1 * DAY });
    const p = plan([image('main', { tags: ['main'], sizeBytes: 0 }), old, recent, shared, own], usage(), policy({ maxCacheBytes: 600 }), NOW);
    expect(reasons(p)).toMatchObject({ old: DeleteReason.OVER_BUDGET, recent: KeepReason.RECENTLY_USED });
    expect(reasonOf(p, own)).toBe(DeleteReason.OVER_BUDGET);
    expect(reasonOf(p, shared)).toBe(KeepReason.CHILD_OF_KEPT_INDEX);
  });

  test('an unreadable index kept only by an evicted index does not keep itself and the untagged manifests alive', () => {
    // Regression (found by the idempotency property): the "might be its child" protection once counted for itself.
    const unreadable = index('u', undefined, { sizeBytes: 100 });
    const parent = index('p', [unreadable], { tags: ['p'], pushedAt: NOW - DAY });
    const loose = image('loose', { sizeBytes: 100 });
    const images = [image('main', { tags: ['main'], sizeBytes: 0 }), parent, unreadable, loose];
    const p = plan(images, usage(), policy({ maxCacheBytes: 50 }), NOW);
    expect([reasonOf(p, parent), reasonOf(p, unreadable), reasonOf(p, loose)]).toEqual(Array(3).fill(DeleteReason.OVER_BUDGET));
    const withoutBudget = plan(images, usage(), policy(), NOW);
    expect([reasonOf(withoutBudget, unreadable), reasonOf(withoutBudget, loose)]).toEqual([
      KeepReason.CHILD_OF_KEPT_INDEX, KeepReason.INDEX_CHILDREN_UNKNOWN,
    ]);
  });

  test('never evicts what no rule lets it: the newest default cache and untagged manifests in grace', () => {
    const inGrace = image('g', { sizeBytes: 5000, pushedAt: NOW - HOUR });
    const p = plan([main, inGrace, ...refs], use, policy({ maxCacheBytes: 10 }), NOW);
    expect(p.keep.map(e => e.reason).sort()).toEqual([KeepReason.NEWEST_DEFAULT_BRANCH, KeepReason.UNTAGGED_IN_GRACE]);
    expect(p.delete).toHaveLength(4);
  });
});

describe('plan: fail safe (history unavailable)', () => {
  test('keeps every tagged image, deletes only unreferenced untagged manifests past grace', () => {
    const child = image('child');
    const images = [
      image('main', { tags: ['main'] }), image('idle', { tags: ['idle'], pushedAt: NOW - 300 * DAY }),
      index('idx', [child], { tags: ['x'], pushedAt: NOW - 300 * DAY }), child, image('loose'), image('fresh', { pushedAt: NOW - HOUR }),
    ];
    const p = plan(images, HISTORY_UNAVAILABLE, policy({ maxCacheBytes: 1, maxRefsPerBranch: 1 }), NOW);
    expect(p.delete.map(e => [e.image.digest, e.reason])).toEqual([[images[4].digest, DeleteReason.UNTAGGED_PAST_GRACE]]);
    expect(reasons(p)).toMatchObject({
      main: KeepReason.NEWEST_DEFAULT_BRANCH, idle: KeepReason.HISTORY_UNAVAILABLE, x: KeepReason.HISTORY_UNAVAILABLE,
    });
  });
});

describe('plan: input', () => {
  test('rejects a digest listed twice', () => {
    expect(() => plan([image('a'), image('a')], usage(), policy(), NOW)).toThrow(/duplicate image digest sha256:/);
  });

  test('plans 100,000 images in under a second', () => {
    const images: CacheImage[] = [];
    for (let i = 0; i < 100_000; i++) {
      images.push(image(`i${i}`, { tags: i % 3 === 0 ? [`b${i % 200}--${i}`] : [], pushedAt: NOW - (i % 40) * DAY, sizeBytes: 1000 }));
    }
    const started = process.hrtime.bigint();
    const p = plan(images, usage(), policy({ maxCacheBytes: 10_000_000, maxRefsPerBranch: 3 }), NOW);
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    expect(p.keep.length + p.delete.length).toBe(100_000);
    expect(ms).toBeLessThan(1000);
  });
});
