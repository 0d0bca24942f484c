import { CacheImage } from '../../../lambda/cache-cleanup/plan';
import { untagTimes } from '../../../lambda/cache-cleanup/untag-time';
import { RefWrite } from '../../../lambda/cache-cleanup/usage';
import { DAY, HOUR, image, NOW, usage } from './fixtures';

const MINUTE = 60_000;
const WINDOW_START = NOW - 14 * DAY;

/** A build that wrote `refs` and ended at `end` after ten minutes. */
const wrote = (end: number, ...refs: string[]): RefWrite => ({ start: end - 10 * MINUTE, end, refs });

function estimate(images: CacheImage[], writes: RefWrite[], sharedFirstMoves: Record<string, number> = {}): Record<string, number> {
  const times = untagTimes(images, usage({}, { writes, sharedFirstMoves: new Map(Object.entries(sharedFirstMoves)), completeSince: WINDOW_START }));
  return Object.fromEntries(images.map((i, k) => [i.tags[0] ?? i.digest.slice(7, 15), times[k]]));
}

describe('untagTimes', () => {
  test('a manifest written by a build lost its tag when the next build that wrote the same ref ended', () => {
    const replaced = image('r', { pushedAt: NOW - 3 * DAY - 5 * MINUTE });
    const times = untagTimes([replaced], usage({}, {
      writes: [wrote(NOW - 3 * DAY, 'feat'), wrote(NOW - DAY, 'other'), wrote(NOW - HOUR, 'feat')], completeSince: WINDOW_START,
    }));
    expect(times[0]).toBe(NOW - HOUR);
  });

  test('the current manifest\'s push bounds the move: a build still running (no exports yet) may have moved the ref', () => {
    const replaced = image('r', { pushedAt: NOW - 3 * DAY - 5 * MINUTE });
    const current = image('c', { tags: ['feat'], pushedAt: NOW - 2 * MINUTE });
    expect(estimate([replaced, current], [wrote(NOW - 3 * DAY, 'feat')])[replaced.digest.slice(7, 15)]).toBe(NOW - 2 * MINUTE);
  });

  test('refs other builds moved say nothing about a manifest their builds did not write', () => {
    const replaced = image('r', { pushedAt: NOW - 3 * DAY - 5 * MINUTE });
    const times = untagTimes([replaced, image('c', { tags: ['other'], pushedAt: NOW - MINUTE })], usage({}, {
      writes: [wrote(NOW - 3 * DAY, 'feat'), wrote(NOW - 2 * DAY, 'feat'), wrote(NOW - MINUTE, 'other')], completeSince: WINDOW_START,
    }));
    expect(times[0]).toBe(NOW - 2 * DAY);
  });

  test('with builds writing several refs at the push, the latest move of any of them counts', () => {
    const replaced = image('r', { pushedAt: NOW - 3 * DAY - 5 * MINUTE });
    const writes = [wrote(NOW - 3 * DAY, 'a'), { ...wrote(NOW - 3 * DAY + MINUTE, 'b'), start: NOW - 3 * DAY - 8 * MINUTE }, wrote(NOW - 2 * DAY, 'a'), wrote(NOW - DAY, 'b')];
    expect(untagTimes([replaced], usage({}, { writes, completeSince: WINDOW_START }))[0]).toBe(NOW - DAY);
  });

  test('a manifest pushed before the history began lost its tag no later than the latest shared first move', () => {
    const ancient = image('r', { pushedAt: NOW - 40 * DAY });
    const times = untagTimes([ancient], usage({}, { writes: [wrote(NOW - MINUTE, 'main')], sharedFirstMoves: new Map([['main', NOW - MINUTE]]), completeSince: WINDOW_START }));
    expect(times[0]).toBe(NOW - MINUTE);
  });

  test('a manifest pushed within the history while no build ran was pushed by something else: nothing says, its push counts', () => {
    const stray = image('r', { pushedAt: NOW - 5 * DAY });
    const times = untagTimes([stray], usage({}, { writes: [wrote(NOW - 3 * DAY, 'feat')], sharedFirstMoves: new Map([['feat', NOW - 3 * DAY]]), completeSince: WINDOW_START }));
    expect(times[0]).toBe(-Infinity);
  });

  test('without the history (fail safe) a tag moves only with a push: no later than the latest push of a tagged image', () => {
    const images = [image('old', { pushedAt: NOW - 5 * DAY }), image('t', { tags: ['feat'], pushedAt: NOW - HOUR }), image('new', { pushedAt: NOW - MINUTE })];
    expect([...untagTimes(images, { historyAvailable: false, lastUseByTag: new Map() })]).toEqual([NOW - HOUR, -Infinity, -Infinity]);
  });

  test('tagged images, and a history that says nothing, give no estimate', () => {
    const tagged = image('t', { tags: ['feat'], pushedAt: NOW - DAY });
    expect([...untagTimes([tagged], usage({}, { writes: [wrote(NOW, 'feat')] }))]).toEqual([-Infinity]);
    expect([...untagTimes([image('u')], usage())]).toEqual([-Infinity]);
  });
});
