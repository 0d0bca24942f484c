import fc from 'fast-check';
import { deletionBatches } from '../../../lambda/cache-cleanup/delete-order';
import { CacheImage } from '../../../lambda/cache-cleanup/plan';
import { repositoryArb } from './arbitraries';
import { image, index } from './fixtures';

function batchOf(batches: string[][]): Map<string, number> {
  const at = new Map<string, number>();
  batches.forEach((b, k) => b.forEach(d => at.set(d, k)));
  return at;
}

describe('deletionBatches', () => {
  test('plain images fill batches of 100: ceil(n / 100) calls', () => {
    const images = Array.from({ length: 250 }, (_, k) => image(`p${k}`));
    expect(deletionBatches(images).map(b => b.length)).toEqual([100, 100, 50]);
    expect(deletionBatches([])).toEqual([]);
  });

  test('an index goes in an earlier call than its children, and filling around them costs no extra call', () => {
    const children = Array.from({ length: 30 }, (_, k) => image(`c${k}`));
    const idx = index('idx', children);
    const plain = Array.from({ length: 120 }, (_, k) => image(`p${k}`));
    const batches = deletionBatches([...children, ...plain, idx]);
    expect(batches).toHaveLength(2);
    expect(batches[0]).toContain(idx.digest);
    for (const c of children) expect(batches[1]).toContain(c.digest);
  });

  test('a chain of nested indexes needs one call per level', () => {
    const leaf = image('leaf');
    const mid = index('mid', [leaf]);
    const top = index('top', [mid]);
    expect(deletionBatches([leaf, mid, top])).toEqual([[top.digest], [mid.digest], [leaf.digest]]);
  });

  test('references to images outside the deletion set impose no order', () => {
    const kept = image('kept');
    expect(deletionBatches([index('idx', [kept]), image('x')], 2)).toHaveLength(1);
  });

  test('properties: every image once, batches within size, parents strictly before children', () => {
    fc.assert(fc.property(repositoryArb, fc.integer({ min: 1, max: 7 }), fc.infiniteStream(fc.boolean()), (images, size, pick) => {
      const chosen: CacheImage[] = images.filter(() => pick.next().value);
      const batches = deletionBatches(chosen, size);
      expect(batches.flat().sort()).toEqual(chosen.map(i => i.digest).sort());
      for (const b of batches) expect(b.length).toBeGreaterThan(0);
      for (const b of batches) expect(b.length).toBeLessThanOrEqual(size);
      const at = batchOf(batches);
      for (const parent of chosen) {
        for (const child of parent.children ?? []) {
          if (at.has(child)) expect(at.get(parent.digest)!).toBeLessThan(at.get(child)!);
        }
      }
      const withoutEdges = chosen.every(i => (i.children ?? []).every(c => !at.has(c)));
      if (withoutEdges) expect(batches).toHaveLength(Math.ceil(chosen.length / size));
    }), { numRuns: 500 });
  });
});
