/**
 * The fault-injection suite's cases and its report (test/integration/faults.ts runs them; test/integration/cross-lane.ts
 * prints the report of CI's lanes together).
 */
import type { FaultRule } from '../fakes/registry-front';
import { Combo, comboName } from './harness';

export type Phase = 'cache import' | 'app push' | 'cache export' | 'registry down' | 'cache deleted mid-build' | 'two builds at once' | 'cleanup' | 'retag';

export interface FaultCase {
  readonly phase: Phase;
  readonly label: string;
  readonly rule?: Omit<FaultRule, 'repository'>;
  /** A cache cleanup run against the cache repository: just before the build's first request, during its cache reads, or with ECR throttling it. */
  readonly cleanup?: 'as it starts' | 'while it reads' | 'throttled';
}

const ALL = 10_000;
export const CASES: readonly FaultCase[] = [
  { phase: 'cache import', label: 'HTTP 500', rule: { fault: 'status-500', direction: 'read', times: ALL } },
  { phase: 'cache import', label: '429 Too Many Requests', rule: { fault: 'status-429', direction: 'read', times: ALL } },
  { phase: 'cache import', label: 'connection reset mid-body', rule: { fault: 'reset', direction: 'read', times: ALL } },
  { phase: 'cache import', label: '10 s stall', rule: { fault: 'stall', direction: 'read', times: 1, seconds: 10 } },
  { phase: 'app push', label: 'HTTP 503', rule: { fault: 'status-503', direction: 'write', times: ALL } },
  { phase: 'app push', label: '429 Too Many Requests', rule: { fault: 'status-429', direction: 'write', times: ALL } },
  { phase: 'app push', label: 'connection reset mid-upload', rule: { fault: 'reset', direction: 'write', kind: 'blobs', times: 1 } },
  { phase: 'app push', label: 'truncated blob upload', rule: { fault: 'truncate-upload', direction: 'write', times: 1 } },
  { phase: 'app push', label: '10 s stall', rule: { fault: 'stall', direction: 'write', times: 1, seconds: 10 } },
  { phase: 'app push', label: 'registry restart (5 s down)', rule: { fault: 'unavailable', direction: 'write', seconds: 5 } },
  { phase: 'cache export', label: 'HTTP 500', rule: { fault: 'status-500', direction: 'write', times: ALL } },
  { phase: 'cache export', label: '429 Too Many Requests', rule: { fault: 'status-429', direction: 'write', times: ALL } },
  { phase: 'cache export', label: 'connection reset mid-upload', rule: { fault: 'reset', direction: 'write', kind: 'blobs', times: ALL } },
  { phase: 'cache export', label: 'truncated blob upload', rule: { fault: 'truncate-upload', direction: 'write', times: 1 } },
  { phase: 'cache export', label: '10 s stall', rule: { fault: 'stall', direction: 'write', times: 1, seconds: 10 } },
  { phase: 'cache export', label: 'registry restart (5 s down)', rule: { fault: 'unavailable', direction: 'write', seconds: 5 } },
  // The skip of an unchanged build (skipUnchangedBuilds): a build records its inputs, the faulted build of the same inputs
  // reads the record and retags; a fault there means a build, never a failed one.
  // The script's two reads of the app repository before it decides (the commit's tag, the record): a third would be the engine's push.
  { phase: 'retag', label: 'record unreadable (HTTP 500 on both of its app manifest reads)', rule: { fault: 'status-500', direction: 'read', kind: 'manifests', times: 2 } },
  { phase: 'retag', label: 'retag refused (HTTP 500 on the retag PUT)', rule: { fault: 'status-500', direction: 'write', kind: 'manifests', times: 1 } },
  { phase: 'retag', label: '10 s stall on the retag PUT', rule: { fault: 'stall', direction: 'write', kind: 'manifests', times: 1, seconds: 10 } },
  // The whole registry (ECR is one registry per account and region) gone as the build starts: the base image and the
  // cache are unreachable alike, so failing with the engine's error is allowed, as for an app push.
  { phase: 'registry down', label: 'registry restart as the build starts (5 s down)', rule: { fault: 'unavailable', direction: 'read', seconds: 5 } },
  { phase: 'cache deleted mid-build', label: 'cache manifest deleted after the import read it', rule: { fault: 'delete-after-read', direction: 'read' } },
  { phase: 'two builds at once', label: 'two builds of one branch at once' },
  // The cleanup function's planner and deletions, on the repository the engines wrote (the front's DescribeImages view) and
  // the suite's real build history, with the most aggressive policy: idle after 1 s, no untagged grace, no blast-radius
  // limit, and no default-branch protection (the default branch is another one), so the build's refs are kept only
  // because CodeBuild lists it IN_PROGRESS. The build must run exactly what its cache allows, as without the cleanup.
  { phase: 'cleanup', label: 'cleanup run as the build starts (IN_PROGRESS)', cleanup: 'as it starts' },
  { phase: 'cleanup', label: 'cleanup run while the build reads the cache', cleanup: 'while it reads' },
  { phase: 'cleanup', label: "cleanup's view unreadable (DescribeImages throttled)", cleanup: 'throttled' },
];

/**
 * Which cases a run takes: `repository` faults touch only the build's own repositories, so CI's lanes run them at once;
 * `registry` faults take the whole registry down (ECR is one registry per account and region), so they run alone, when no
 * other lane builds; `all` (the default) both.
 */
export type CaseSet = 'all' | 'repository' | 'registry';

export const isOutage = (c: FaultCase): boolean => c.rule?.fault === 'unavailable';

export function casesOf(set: string | undefined): readonly FaultCase[] {
  switch (set ?? 'all') {
    case 'all': return CASES;
    case 'repository': return CASES.filter(c => !isOutage(c));
    case 'registry': return CASES.filter(isOutage);
    default: throw new Error(`FAULTS_CASES: '${set}' is not one of all, repository, registry`);
  }
}

/** One case on one strategy × engine, as a run reports it (JSON: the lanes' runs are printed together). */
export interface Outcome {
  readonly combo: Combo;
  readonly phase: Phase;
  readonly label: string;
  readonly build: string;
  readonly integrity: string;
  readonly next: string;
  readonly held: boolean;
  readonly lost: boolean;
  readonly why: string[];
}

/**
 * Prints a Markdown table a case, a table a fault by strategy × engine (the README's), the cases not held, and
 * `fault-suite: F faults, H held, L lost`; returns whether every case held and none was lost.
 */
export function printReport(outcomes: readonly Outcome[], title: string): boolean {
  const log = (line = ''): void => console.log(line);
  log(`${title}, ${new Date().toISOString().slice(0, 10)}: each fault in one build, then a build without it`);
  log();
  log('| strategy | engine | phase | fault | build | app image | next build | held | lost |');
  log('|---|---|---|---|---|---|---|---|---|');
  for (const o of outcomes) {
    log(`| ${o.combo.recipe} | ${o.combo.engine} | ${o.phase} | ${o.label} | ${o.build.replace(/\|/g, '/')} | ${o.integrity} | ${o.next} `
      + `| ${o.held ? 'yes' : 'NO'} | ${o.lost ? 'LOST' : '-'} |`);
  }
  const columns = [...new Set(outcomes.map(o => comboName(o.combo)))];
  const short = (o: Outcome): string => {
    const build = o.build.startsWith('succeeded, succeeded') ? 'both built'
      : o.build.startsWith('succeeded') ? `${/retagged/.test(o.build) ? 'retagged' : 'built'}${/export failed|cleanup failed/.test(o.build) ? ' (warned)' : ''}`
        : 'failed (error)';
    return `${build}${o.lost ? ', LOST' : o.held ? '' : ', NOT HELD'}`;
  };
  log();
  log(`| phase | fault | ${columns.join(' | ')} |`);
  log(`|---|---|${columns.map(() => '---').join('|')}|`);
  for (const fault of CASES) {
    const row = columns.map(c => outcomes.find(o => o.phase === fault.phase && o.label === fault.label && comboName(o.combo) === c));
    if (row.every(o => o === undefined)) continue;
    log(`| ${fault.phase} | ${fault.label} | ${row.map(o => (o ? short(o) : '-')).join(' | ')} |`);
  }
  log();
  const held = outcomes.filter(o => o.held).length;
  const lost = outcomes.filter(o => o.lost).length;
  for (const o of outcomes.filter(x => !x.held)) log(`not held: ${comboName(o.combo)} ${o.phase} ${o.label}: ${o.why.join('; ')}`);
  log(`fault-suite: ${outcomes.length} faults, ${held} held, ${lost} lost`);
  return held === outcomes.length && lost === 0 && outcomes.length > 0;
}
