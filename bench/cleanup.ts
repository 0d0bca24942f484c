/**
 * `npm run bench:cleanup`: one cleanup run over a synthetic cache repository of 100,000 images (200 branches,
 * 10,000 builds), through the real handler and real SDK clients whose requests are answered in-process, after a
 * fixed latency, by the strict ECR and CodeBuild fakes of test/fakes/ (the ones the unit tests use, which refuse
 * every call the services would refuse). Prints a Markdown table and a machine-readable last line.
 *
 * The fakes sit at the start of the SDK middleware stack (not aws-sdk-client-mock), and record no call inputs here:
 * sinon, or a log of every call, would keep the arguments alive and inflate the memory being measured.
 */
import { branchTag } from '../lib/build-script/cache-refs';
import { resolvePolicy } from '../lambda/cache-cleanup/config';
import { DeleteReason } from '../lambda/cache-cleanup/contract';
import { runCleanup } from '../lambda/cache-cleanup/index';
import { CleanupReport } from '../lambda/cache-cleanup/report';
import { FakeBuild, FakeCodeBuild } from '../test/fakes/codebuild';
import { FakeEcr, FakeImage, OCI_INDEX, OCI_MANIFEST } from '../test/fakes/ecr';

const IMAGES = 100_000;
const BRANCHES = 200;
const BUILDS = 10_000;
const LATENCY_MS = 2;
/** What CacheCleanup is assumed to configure: the target for peak memory. */
const FUNCTION_MEMORY_MB = 512;
const PLANNER_TARGET_MS = 1000;

const HOUR = 3600_000;
const DAY = 24 * HOUR;
const NOW = Date.UTC(2025, 5, 1, 12);
const IDLE_DAYS = 14;

/** mulberry32: a seeded generator, so every run benchmarks the same repository. */
function prng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const random = prng(20250601);
const between = (lo: number, hi: number): number => lo + Math.floor(random() * (hi - lo));
let digestCounter = 0;
const nextDigest = (): string => `sha256:${(++digestCounter).toString(16).padStart(64, '0')}`;
const hex64 = (): string => Array.from({ length: 8 }, () => Math.floor(random() * 2 ** 32).toString(16).padStart(8, '0')).join('');

interface Synthetic {
  images: FakeImage[];
  children: Map<string, string[]>;
  /** Newest first. */
  builds: FakeBuild[];
  defaultTag: string;
}

/**
 * A repository that was never cleaned: per branch its current cache plus the manifests overwrites left untagged,
 * a few branches with extra `--` refs, inline caches pushed as indexes (image + attestation), and buildah step
 * tags for the rest; builds over 30 days that read their branch and main, 60% of them writing.
 */
function synthesize(): Synthetic {
  const defaultTag = branchTag('main');
  const branches = Array.from({ length: BRANCHES }, (_, k) => ({
    tag: k === 0 ? defaultTag : branchTag(`feature/${k}-${hex64().slice(0, 6)}`),
    lastActive: k === 0 ? NOW - HOUR : NOW - between(0, 45) * DAY - between(0, 24) * HOUR,
  }));
  const builds: FakeBuild[] = [];
  const writes = new Map<string, number[]>();
  for (let b = 0; b < BUILDS; b++) {
    const start = NOW - Math.floor((b / BUILDS) * 30 * DAY) - HOUR;
    let branch = branches[0];
    for (let tries = 0; tries < 8 && random() > 0.3; tries++) {
      const candidate = branches[between(1, BRANCHES)];
      if (candidate.lastActive >= start) {
        branch = candidate;
        break;
      }
    }
    const wrote = random() < 0.6;
    if (wrote) writes.set(branch.tag, [...(writes.get(branch.tag) ?? []), start + 10 * 60_000]);
    builds.push({
      id: `app-build:${BUILDS - b}`,
      buildNumber: BUILDS - b,
      startTime: start,
      endTime: start + 10 * 60_000,
      exportedEnvironmentVariables: [
        { name: 'CACHE_REFS_READ', value: branch.tag === defaultTag ? defaultTag : `${branch.tag},${defaultTag}` },
        { name: 'CACHE_REF_WRITTEN', value: wrote ? branch.tag : '' },
      ],
    });
  }

  const images: FakeImage[] = [];
  const children = new Map<string, string[]>();
  const add = (tags: string[], pushedAt: number, size: number, fields: Partial<Omit<FakeImage, 'digest'>> = {}): string => {
    const digest = nextDigest();
    images.push({ digest, tags, sizeBytes: size, pushedAt, mediaType: OCI_MANIFEST, ...fields });
    return digest;
  };
  for (const branch of branches) {
    const times = (writes.get(branch.tag) ?? []).sort((a, b) => a - b);
    const latest = times.pop() ?? branch.lastActive - between(0, 20) * DAY;
    add([branch.tag], latest, between(300, 900) * 2 ** 20);
    for (const t of times) add([], t, between(300, 900) * 2 ** 20);
  }
  for (const branch of branches.slice(1, 21)) {
    for (const suffix of ['2', '3']) add([`${branch.tag}--${suffix}`], NOW - between(0, 10 * 24) * HOUR, between(100, 300) * 2 ** 20);
  }
  const addIndex = (tags: string[], pushedAt: number): void => {
    const parts = [add([], pushedAt, between(200, 600) * 2 ** 20), add([], pushedAt, 12_000)];
    const digest = add(tags, pushedAt, 0, { mediaType: OCI_INDEX, children: parts, lastPulledAt: NOW - HOUR });
    children.set(digest, parts);
  };
  for (const branch of branches.slice(21, 121)) addIndex([`${branch.tag}--oci`], NOW - between(0, 30 * 24) * HOUR);
  for (let k = 0; k < 1000; k++) addIndex([], NOW - between(2 * 24, 60 * 24) * HOUR);
  while (images.length < IMAGES) {
    const pushedAt = NOW - between(0, 90 * 24) * HOUR;
    const pulled = random() < 0.7 ? pushedAt + Math.floor(random() * (NOW - pushedAt)) : undefined;
    add([hex64()], pushedAt, between(1, 200) * 2 ** 20, { lastPulledAt: pulled });
  }
  return { images, children, builds, defaultTag };
}

const mb = (bytes: number): number => Math.round(bytes / 2 ** 20);

async function main(): Promise<void> {
  const repo = synthesize();
  const fakeEcr = new FakeEcr({ repositoryName: 'app-cache', images: repo.images, latencyMs: LATENCY_MS, recordRequests: false });
  const fakeCodeBuild = new FakeCodeBuild({
    projectName: 'app-build', builds: [...repo.builds].reverse(), latencyMs: LATENCY_MS, recordRequests: false,
  });
  const ecr = fakeEcr.client();
  const codebuild = fakeCodeBuild.client();
  const callsOf = (name: string): number => fakeEcr.callCount(name) + fakeCodeBuild.callCount(name);
  const policy = resolvePolicy({
    defaultBranchTag: repo.defaultTag, maxRefsPerBranch: 2, maxCacheBytes: 2 * 2 ** 40, maxDeletesPerRun: IMAGES, allowLargeDeletes: true,
  });

  global.gc?.();
  const baseline = process.memoryUsage();
  let peakHeap = baseline.heapUsed;
  let peakRss = baseline.rss;
  const sampler = setInterval(() => {
    const m = process.memoryUsage();
    peakHeap = Math.max(peakHeap, m.heapUsed);
    peakRss = Math.max(peakRss, m.rss);
  }, 5);
  const started = process.hrtime.bigint();
  let report: CleanupReport | undefined;
  await runCleanup(
    { repositoryName: 'app-cache', projectName: 'app-build', dryRun: false, metricsNamespace: 'Bench', policy },
    { ecr, codebuild, now: () => NOW, log: line => {
      if (report === undefined) report = JSON.parse(line) as CleanupReport;
    } },
  );
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  clearInterval(sampler);
  peakRss = Math.max(peakRss, process.resourceUsage().maxRSS * 1024);
  const r = report!;

  // The minimum, from the synthetic data and the plan's deletion count, independently of the adapters' paging.
  const since = NOW - IDLE_DAYS * DAY;
  const inWindow = repo.builds.filter(b => b.startTime! >= since).length;
  const historyPages = inWindow < repo.builds.length ? Math.floor(inWindow / 100) + 1 : Math.ceil(repo.builds.length / 100);
  const minimum: [string, number][] = [
    ['DescribeImages', Math.ceil(repo.images.length / 1000)],
    ['BatchGetImage', Math.ceil(repo.children.size / 100)],
    ['ListBuildsForProject', historyPages],
    ['BatchGetBuilds', historyPages],
    ['BatchDeleteImage', Math.ceil(r.deleted / 100)],
  ];
  const made = minimum.reduce((s, [name]) => s + callsOf(name), 0);
  const least = minimum.reduce((s, [, n]) => s + n, 0);

  // The run must also have been right: the newest default cache is there and no remaining index lost a child.
  const defaultLeft = fakeEcr.images().some(i => i.tags?.includes(repo.defaultTag));
  const brokenIndexes = [...repo.children].filter(([idx, kids]) => fakeEcr.has(idx) && kids.some(k => !fakeEcr.has(k))).length;

  const date = new Date().toISOString().slice(0, 10);
  console.log(`cleanup benchmark, ${date}, node ${process.version}: ${IMAGES.toLocaleString('en')} images, ${BRANCHES} branches, `
    + `${BUILDS.toLocaleString('en')} builds, ${LATENCY_MS} ms a call`);
  console.log('');
  console.log('| measure | result | minimum / target |');
  console.log('|---|---|---|');
  for (const [name, n] of minimum) console.log(`| ${name} calls | ${callsOf(name)} | ${n} |`);
  console.log(`| **API calls** | **${made}** | **${least}** |`);
  console.log(`| images deleted / kept | ${r.deleted.toLocaleString('en')} / ${r.kept.toLocaleString('en')} | failures: ${r.failures} |`);
  for (const reason of Object.values(DeleteReason)) console.log(`| deleted: ${reason} | ${r.deletedByReason[reason] ?? 0} | |`);
  console.log(`| bytes reclaimed / left | ${(r.bytesReclaimed / 2 ** 40).toFixed(2)} / ${(r.repositoryBytes / 2 ** 40).toFixed(2)} TiB | budget 2.00 TiB |`);
  console.log(`| correctness | newest default cache ${defaultLeft ? 'kept' : 'DELETED'}, ${brokenIndexes} broken indexes | kept, 0 |`);
  console.log(`| planner CPU (plan + limits + batching) | ${r.plannerMs} ms | < ${PLANNER_TARGET_MS} ms |`);
  console.log(`| peak memory: RSS / heap (whole process) | ${mb(peakRss)} / ${mb(peakHeap)} MB | < ${FUNCTION_MEMORY_MB} MB |`);
  console.log(`| heap before the run (fake repository loaded) | ${mb(baseline.heapUsed)} MB | |`);
  console.log(`| total run time | ${seconds.toFixed(2)} s | |`);
  console.log('');
  console.log(`cleanup-bench: calls ${made}/${least}, planner ${r.plannerMs} ms for ${IMAGES} images, peak ${mb(peakRss)} MB`);
  const missed = made !== least || r.plannerMs >= PLANNER_TARGET_MS || mb(peakRss) >= FUNCTION_MEMORY_MB || !defaultLeft || brokenIndexes > 0;
  if (missed) process.exitCode = 1;
}

main().catch(e => {
  console.error(e);
  process.exitCode = 1;
});
