/** The libvirt driver's XML parser: what virsh prints reads as a tree; anything malformed is refused, not guessed at. */
import { strict as assert } from 'node:assert';
import { LibvirtXmlError, child, escapeXml, parseXml } from '../../../../host-backup/hypervisor/libvirt-xml';

describe('libvirt XML', () => {
  it('reads elements, attributes in either quote, entities and text, past a declaration and comments', () => {
    const root = parseXml(`<?xml version="1.0"?>
<!-- a comment -->
<domaincheckpoint>
  <name>cp&amp;1</name>
  <disks>
    <disk name='vda' checkpoint="bitmap" bitmap='cp1' size='65536'/>
    <disk name="v&lt;db" checkpoint='no'/>
  </disks>
</domaincheckpoint>
`);
    assert.equal(root.name, 'domaincheckpoint');
    assert.equal(child(root, 'name')?.text, 'cp&1');
    const disks = child(root, 'disks')!.children;
    assert.deepEqual(
      disks.map((d) => d.attrs),
      [
        { name: 'vda', checkpoint: 'bitmap', bitmap: 'cp1', size: '65536' },
        { name: 'v<db', checkpoint: 'no' },
      ],
    );
  });

  it('refuses mismatched or unclosed tags, two roots, stray text and unknown entities', () => {
    for (const bad of ['<a><b></a>', '<a>', '<a/><b/>', 'x<a/>', '<a>&nbsp;</a>', '<a b=c/>', '']) {
      assert.throws(() => parseXml(bad), LibvirtXmlError, JSON.stringify(bad));
    }
  });

  it('escapes what it writes so that it reads back the same', () => {
    const name = `it's <a> "b" & c`;
    assert.equal(parseXml(`<n a='${escapeXml(name)}'>${escapeXml(name)}</n>`).attrs.a, name);
    assert.equal(parseXml(`<n>${escapeXml(name)}</n>`).text, name);
  });
});
