import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { checkExecutable } from '../../../../common/util/find-executable';
import { tempDir } from '../../../helpers/coordinator-process';

describe('checkExecutable', () => {
  let dir: string;
  const file = (rel: string, mode: number) => {
    const p = path.join(dir, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, '#!/bin/sh\n');
    fs.chmodSync(p, mode);
    return p;
  };
  beforeEach(() => {
    dir = tempDir();
  });

  it('accepts an executable file named by a path, relative paths against cwd', () => {
    const tool = file('bin/tool', 0o755);
    assert.equal(checkExecutable([tool, 'arg'], {}), undefined);
    assert.equal(checkExecutable(['./bin/tool'], {}, dir), undefined);
  });

  it('says ENOENT as spawn() does for a path that does not exist, or a missing cwd', () => {
    const err = checkExecutable(['/nonexistent/restic', 'backup'], {});
    assert.equal(err?.code, 'ENOENT');
    assert.equal(err?.message, 'spawn /nonexistent/restic ENOENT');
    assert.equal(err?.syscall, 'spawn /nonexistent/restic');
    assert.equal(err?.path, '/nonexistent/restic');
    assert.equal(checkExecutable(['/bin/sh'], {}, path.join(dir, 'gone'))?.code, 'ENOENT');
  });

  it('says EACCES for a file that is not executable, or a directory', () => {
    file('plain', 0o644); // not even root may execute a file without any x bit
    assert.equal(checkExecutable([path.join(dir, 'plain')], {})?.code, 'EACCES');
    assert.equal(checkExecutable([dir], {})?.code, 'EACCES');
  });

  it('searches PATH in order, skipping entries it cannot execute, as execvp does', () => {
    file('a/tool', 0o644);
    file('b/tool', 0o755);
    const a = path.join(dir, 'a');
    const b = path.join(dir, 'b');
    assert.equal(checkExecutable(['tool'], { PATH: `${a}:${b}` }), undefined);
    assert.equal(checkExecutable(['tool'], { PATH: a })?.code, 'EACCES');
    assert.equal(checkExecutable(['tool'], { PATH: path.join(dir, 'none') })?.code, 'ENOENT');
    assert.equal(checkExecutable(['tool'], { PATH: ':' }, b), undefined, 'an empty entry is the working directory');
    assert.equal(checkExecutable(['sh'], {}), undefined, 'without PATH: /usr/bin:/bin');
  });
});
