import { strict as assert } from 'node:assert';
import { formatFields, formatHeader, formatTable, truncate } from '../../../ctl/table';

describe('ctl table', () => {
  it('pads columns to the widest cell, right-aligns numbers and leaves no trailing spaces', () => {
    const out = formatTable(
      [{ header: 'HOST' }, { header: 'FENCING', align: 'right' }, { header: 'NOTE' }],
      [
        ['host-a', '7', 'x'],
        ['h', '1234', ''],
      ],
    );
    assert.equal(out, ['HOST    FENCING  NOTE', 'host-a        7  x', 'h          1234'].join('\n'));
  });

  it('cuts long cells with an ellipsis at the column maximum', () => {
    const out = formatTable([{ header: 'DETAIL', maxWidth: 8 }], [['a very long detail text'], ['short']]);
    assert.equal(out, ['DETAIL', 'a very …', 'short'].join('\n'));
    assert.equal(truncate('abcdef', 6), 'abcdef');
    assert.equal(truncate('abcdefg', 6), 'abcde…');
    assert.equal(truncate('abc', 0), '');
  });

  it('prints the empty message instead of a table without rows', () => {
    assert.equal(formatTable([{ header: 'ID' }], [], { empty: 'no tokens' }), 'no tokens');
    assert.equal(formatTable([{ header: 'ID' }], []), '');
  });

  it('keeps a row on one line when a cell holds a newline or a tab', () => {
    const out = formatTable([{ header: 'A' }, { header: 'B' }], [['x\ny', 'z\tw']]);
    assert.equal(out.split('\n').length, 2);
    assert.equal(out.split('\n')[1], 'x y  z w');
  });

  it('pads short rows with empty cells', () => {
    assert.equal(formatTable([{ header: 'A' }, { header: 'B' }], [['1']]), 'A  B\n1');
  });

  it('aligns streamed rows with a header printed earlier through minimum widths', () => {
    const cols = [
      { header: 'T', minWidth: 4, maxWidth: 4 },
      { header: 'X', minWidth: 3, maxWidth: 3 },
      { header: 'DETAIL' },
    ];
    assert.equal(formatHeader(cols), 'T     X    DETAIL');
    assert.equal(formatTable(cols, [['ab', 'cdef', 'd']], { header: false }), 'ab    cd…  d');
  });

  it('counts characters, not UTF-16 units or bytes, for → and …', () => {
    const out = formatTable(
      [{ header: 'SLOT' }, { header: 'N' }],
      [
        ['1 → 2', 'x'],
        ['12345', 'y'],
      ],
    );
    assert.deepEqual(out.split('\n'), ['SLOT   N', '1 → 2  x', '12345  y']);
  });

  it('aligns label: value pairs', () => {
    assert.equal(
      formatFields([
        ['host', 'a'],
        ['lease ttl', '30s'],
      ]),
      'host:      a\nlease ttl: 30s',
    );
  });
});
