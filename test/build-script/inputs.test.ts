/**
 * The Dockerfile reader of the skip of unchanged builds (lib/build-script/inputs.sh.ts INPUTS_AWK), run as the script runs
 * it (LC_ALL=C mawk or gawk): every image the engine would fetch is listed, and what it cannot read as BuildKit does is
 * `unknown` (a build, never a wrong skip).
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { INPUTS_AWK } from '../../lib/build-script/inputs.sh';

function read(dockerfile: string | Buffer): string[] {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cib-inputs-'));
  try {
    fs.writeFileSync(path.join(dir, 'Dockerfile'), dockerfile);
    const r = spawnSync('awk', [INPUTS_AWK, path.join(dir, 'Dockerfile')], { encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } });
    expect(r.status).toBe(0);
    return r.stdout.split('\n').filter(Boolean);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe('the images a Dockerfile needs', () => {
  test('FROM, COPY --from, RUN --mount=from, # syntax; stages (any case), indexes and scratch are not images', () => {
    expect(read([
      '# syntax=docker/dockerfile:1', 'FROM --platform=$BUILDPLATFORM node:20 AS Build', 'RUN --mount=type=cache,target=/x --MOUNT=type=bind,FROM=build,target=/y true',
      'FROM scratch', 'COPY --from=BUILD /a /a', 'COPY --from=0 /a /b', 'COPY --from=busybox:1 /bin/sh /sh',
      'RUN --mount=type=bind,From=alpine:3,target=/z true', '',
    ].join('\n'))).toEqual(['image docker/dockerfile:1', 'image node:20', 'image busybox:1', 'image alpine:3']);
  });

  test('ONBUILD X is read as X: it runs in the later stages built FROM this one', () => {
    expect(read('FROM alpine:3 AS a\nONBUILD COPY --from=node:20 /n /n\nFROM a\n')).toEqual(['image alpine:3', 'image node:20']);
    expect(read('FROM alpine:3 AS a\nONBUILD ADD https://x.example/a /a\nFROM a\n')).toContainEqual(expect.stringMatching(/^unknown an ADD source/));
  });

  test('continuations join as BuildKit joins them: as they are, and only after a single backslash', () => {
    // "from=\" + "alpine:3": one word, from=alpine:3.
    expect(read('FROM a.example/b:1\nRUN --mount=type=bind,target=/x,from=\\\nalpine:3 true\n')).toEqual(['image a.example/b:1', 'image alpine:3']);
    // A line ending in two backslashes ends there: the COPY is an instruction of its own.
    expect(read('FROM a.example/b:1\nRUN echo C:\\\\\nCOPY --from=alpine:latest /x /y\n')).toEqual(['image a.example/b:1', 'image alpine:latest']);
    // A line that is only a backslash continues too: the FROM below is part of the RUN, and node is an image, not a stage.
    expect(read('FROM a.example/b:1\nRUN echo \\\n\\\nFROM alpine AS node\nCOPY --from=node /a /b\n')).toEqual(['image a.example/b:1', 'image node']);
    // Comment and blank lines inside a continuation are dropped.
    expect(read('FROM a.example/b:1\nRUN --mount=type=cache,target=/x \\\n# a comment\n\n  --mount=from=busybox:1,target=/b true\n'))
      .toEqual(['image a.example/b:1', 'image busybox:1']);
  });

  test('a UTF-8 BOM and a #! first line are dropped before the directives, as BuildKit drops them', () => {
    const bom = Buffer.from([0xef, 0xbb, 0xbf]);
    expect(read(Buffer.concat([bom, Buffer.from('# syntax=docker/dockerfile:1\nFROM a.example/b:1\n')])))
      .toEqual(['image docker/dockerfile:1', 'image a.example/b:1']);
    expect(read('#!/usr/bin/env docker-build\n# syntax=docker/dockerfile:1\nFROM a.example/b:1\n')).toEqual(['image docker/dockerfile:1', 'image a.example/b:1']);
    expect(read(Buffer.concat([bom, Buffer.from('# escape=`\nFROM a.example/b:1\n')]))).toEqual(['unknown an escape directive', 'image a.example/b:1']);
    // A directive after a comment or a blank line is a comment.
    expect(read('# hello\n# syntax=docker/dockerfile:1\nFROM a.example/b:1\n')).toEqual(['image a.example/b:1']);
  });

  test.each([
    ['a heredoc', 'FROM a.example/b:1\nCOPY <<EOF /t\nFROM scratch AS node\nEOF\nCOPY --from=node /t /u\n', 'unknown a heredoc (COPY <<)'],
    ['a quoted flag', 'FROM a.example/b:1\nRUN --mount="type=cache,target=/my cache" --mount=type=bind,from=alpine:3,target=/x true\n',
      'unknown a quoted or escaped flag (--mount="type=cache,target=/my)'],
    ['a quoted mount key', 'FROM a.example/b:1\nRUN --mount=type=bind,"from=busybox:1",target=/b true\n', 'unknown a quoted or escaped flag'],
    ['an escaped flag', 'FROM a.example/b:1\nCOPY --fr\\om=node:20 /a /b\n', 'unknown a quoted or escaped flag'],
    ['a JSON-form ADD', 'FROM a.example/b:1\nADD ["https://x.example/a","/y"]\n', 'unknown an ADD in JSON form'],
    ['a form feed', 'FROM\fnode:20\n', 'unknown a line with a form feed'],
    ['a vertical tab', 'FROM a.example/b:1\nCOPY\v--from=node:20 /a /b\n', 'unknown a line with a form feed, vertical tab'],
    ['an inner carriage return', 'FROM a.example/b:1\nADD https://x\r/y\n', 'unknown a line with a form feed, vertical tab or carriage return'],
    ['a leading no-break space', '\u00a0FROM node:20\n', 'unknown a line that starts with a non-ASCII byte'],
    ['a directive with a non-ASCII byte', '#\u00a0syntax=evil/frontend:1\nFROM a.example/b:1\n', 'unknown a directive with a non-ASCII byte'],
    ['a // syntax line', '// syntax=evil/frontend:1\nFROM a.example/b:1\n', 'unknown a first line in another syntax'],
    ['a JSON Dockerfile', '{"syntax":"evil/frontend:1"}\n', 'unknown a first line in another syntax'],
    ['a variable ADD source', 'FROM a.example/b:1\nARG SRC=https://x.example/latest.tgz\nADD ${SRC} /opt/\n', 'unknown an ADD source that may be remote or a variable (${SRC})'],
    ['an ssh git ADD source', 'FROM a.example/b:1\nADD ci@git.example.com:org/repo.git /src\n', 'unknown an ADD source that may be remote'],
    ['a variable in FROM', 'ARG V=20\nFROM node:${V}\n', "unknown a variable in the image reference 'node:${V}' (FROM)"],
    ['an empty --from', 'FROM a.example/b:1\nCOPY --from= /a /b\n', 'unknown an empty image reference (COPY --from)'],
  ])('%s is unknown', (_, dockerfile, expected) => {
    expect(read(dockerfile).some(l => l.startsWith(expected))).toBe(true);
  });

  test('ADD of context files, and COPY of anything from the context, need nothing', () => {
    expect(read('FROM a.example/b:1\nADD app.tar.gz /app\nCOPY ${DIR} /x\nADD --chown=1:1 ./a ./b /c/\n')).toEqual(['image a.example/b:1']);
    // A CRLF file is read like an LF one; non-ASCII text inside an instruction is fine.
    expect(read('FROM a.example/b:1\r\nLABEL note="caf\u00e9"\r\nCOPY --from=alpine:3 /a /b\r\n')).toEqual(['image a.example/b:1', 'image alpine:3']);
  });
});
