import { spawnSync } from 'child_process';
import * as path from 'path';
import { BUILDAH_STEPS_AWK, BUILDKIT_STEPS_AWK } from '../../lib/build-script/cache-report.sh';

const LOGS = path.join(__dirname, 'fixtures', 'logs');

function steps(awk: string, file: string): Array<{ status: string; seconds: string; title: string }> {
  const r = spawnSync('awk', [awk, path.join(LOGS, file)], { encoding: 'utf8' });
  expect(r.status).toBe(0);
  return r.stdout.split('\n').filter(Boolean).map(l => {
    const [status, seconds, title] = l.split('\t');
    return { status, seconds, title };
  });
}

const stepNo = (title: string) => Number(/(?:\[|STEP )(\d+)\//.exec(title)![1]);

/**
 * Logs captured from the real engines (test/integration/capture-logs.ts): a cold build, a build after a
 * dependency change (steps 2-3 from cache, 4-7 executed) and a no-op build.
 */
describe.each([
  ['registry-d26', BUILDKIT_STEPS_AWK], ['inline-d20', BUILDKIT_STEPS_AWK], ['buildah-buildah', BUILDAH_STEPS_AWK],
])('step parser on real %s logs', (name, awk) => {
  test.each([
    ['cold', [2, 3, 4, 5, 6, 7]],
    ['deps-changed', [4, 5, 6, 7]],
    ['noop', []],
  ])('%s build: executed steps %j, FROM excluded', (kind, executed) => {
    const s = steps(awk, `real-${name}-${kind}.log`);
    // Steps print in the order the engine finishes them, not always the Dockerfile order.
    expect(s.map(x => stepNo(x.title)).sort()).toEqual([2, 3, 4, 5, 6, 7]);
    expect(s.filter(x => x.status === 'executed').map(x => stepNo(x.title)).sort()).toEqual(executed);
    expect(s.every(x => !/FROM /.test(x.title))).toBe(true);
  });
});

describe('step parser on a real two-platform log (registry, docker 26: linux/amd64 + linux/386, the 386 deps changed)', () => {
  test('every step of each platform, titled with its platform; 386 ran its deps path, amd64 nothing', () => {
    const s = steps(BUILDKIT_STEPS_AWK, 'real-registry-d26-platforms-deps386.log');
    const of = (platform: string) => s.filter(x => x.title.startsWith(`[${platform} `));
    const stepNo = (title: string) => Number(/ (\d+)\/\d+\] /.exec(title)![1]);
    expect(of('linux/amd64').map(x => stepNo(x.title)).sort()).toEqual([2, 3, 4, 5, 6, 7]);
    expect(of('linux/386').map(x => stepNo(x.title)).sort()).toEqual([2, 3, 4, 5, 6, 7]);
    expect(s).toHaveLength(12);
    expect(of('linux/amd64').filter(x => x.status === 'executed')).toEqual([]);
    expect(of('linux/386').filter(x => x.status === 'executed').map(x => stepNo(x.title)).sort()).toEqual([4, 5, 6, 7]);
  });
});

describe('BuildKit hits without CACHED', () => {
  test('a step whose layer is only pulled and extracted for a later step counts as a hit', () => {
    const log = [
      '#5 [2/3] RUN npm ci', '#5 sha256:aaaa 0B / 10MB 0.1s', '#5 sha256:aaaa 10MB / 10MB 0.4s done', '#5 extracting sha256:aaaa',
      '#5 extracting sha256:aaaa 0.2s done', '#5 DONE 0.6s', '', '#6 [3/3] COPY . .', '#6 DONE 0.1s',
      '',
    ].join('\n');
    const r = spawnSync('awk', [BUILDKIT_STEPS_AWK], { input: log, encoding: 'utf8' });
    expect(r.stdout).toBe('cached\t0.6\t[2/3] RUN npm ci\nexecuted\t0.1\t[3/3] COPY . .\n');
  });

  test('a step that printed output ran, whatever it pulled', () => {
    const log = ['#5 [2/2] RUN make', '#5 pulling sha256:bbbb', '#5 0.52 compiling', '#5 DONE 3.0s', ''].join('\n');
    const r = spawnSync('awk', [BUILDKIT_STEPS_AWK], { input: log, encoding: 'utf8' });
    expect(r.stdout).toBe('executed\t3.0\t[2/2] RUN make\n');
  });

  test('multi-stage step titles keep their stage name', () => {
    const log = ['#4 [build 2/3] RUN go build', '#4 CACHED', '#5 [stage-1 1/2] FROM x', '#6 [stage-1 2/2] COPY --from=build /a /a', '#6 DONE 0.0s', ''].join('\n');
    const r = spawnSync('awk', [BUILDKIT_STEPS_AWK], { input: log, encoding: 'utf8' });
    expect(r.stdout).toBe('cached\t-\t[build 2/3] RUN go build\nexecuted\t0.0\t[stage-1 2/2] COPY --from=build /a /a\n');
  });
});

describe('buildah stages that nest', () => {
  test("a step's result belongs to the innermost step still open: COPY --from waits for the other stage", () => {
    // Captured from buildah 1.28 (engine suite M1, build 2): runtime's COPY --from=deps starts, the deps stage's steps run,
    // then the COPY ends with its own "Using cache". Read as "the step printed last", it looked executed.
    const s = steps(BUILDAH_STEPS_AWK, 'real-buildah-multistage-nested.log');
    const status = Object.fromEntries(s.map(x => [x.title.replace(/^\[\d\/4\] STEP \d+\/\d+: /, ''), x.status]));
    expect(status['COPY --from=deps /deps /deps']).toBe('cached');
    expect(status['COPY deps.txt /deps/deps.txt']).toBe('cached');
    expect(status['COPY --from=build /src/out /app/out']).toBe('executed');
    expect(s.filter(x => x.status === 'cached')).toHaveLength(4);
  });
});
