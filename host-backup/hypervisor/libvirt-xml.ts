/**
 * The XML libvirt speaks, both ways: a small strict parser for what virsh prints (domain, checkpoint and
 * job descriptions: elements, attributes, text; no DTDs, no namespaces needed), and escaping for the
 * documents the libvirt driver writes. Malformed input throws LibvirtXmlError rather than guessing.
 */

export class LibvirtXmlError extends Error {
  override readonly name = 'LibvirtXmlError';
}

export interface XmlElement {
  name: string;
  attrs: Record<string, string>;
  children: XmlElement[];
  /** The element's own text, entities decoded, trimmed. */
  text: string;
}

const ENTITIES: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

function decode(s: string): string {
  return s.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-z]+);/g, (all, e: string) => {
    if (e.startsWith('#x')) return String.fromCodePoint(parseInt(e.slice(2), 16));
    if (e.startsWith('#')) return String.fromCodePoint(parseInt(e.slice(1), 10));
    const v = ENTITIES[e];
    if (v === undefined) throw new LibvirtXmlError(`unknown entity ${all}`);
    return v;
  });
}

/** Text or attribute value for an XML document. */
export function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (c) => `&${Object.keys(ENTITIES).find((k) => ENTITIES[k] === c)};`);
}

const NAME = '[A-Za-z_][A-Za-z0-9_.:-]*';
const TAG = new RegExp(`^<(${NAME})((?:\\s+${NAME}\\s*=\\s*(?:"[^"]*"|'[^']*'))*)\\s*(/?)>`);
const ATTR = new RegExp(`(${NAME})\\s*=\\s*(?:"([^"]*)"|'([^']*)')`, 'g');

/** Parses one XML document into its root element. Throws LibvirtXmlError naming what is wrong. */
export function parseXml(xml: string): XmlElement {
  let i = 0;
  const stack: XmlElement[] = [];
  let root: XmlElement | undefined;
  const skip = (open: string, close: string) => {
    const end = xml.indexOf(close, i + open.length);
    if (end < 0) throw new LibvirtXmlError(`unterminated ${open} at offset ${i}`);
    i = end + close.length;
  };
  while (i < xml.length) {
    if (xml.startsWith('<?', i)) skip('<?', '?>');
    else if (xml.startsWith('<!--', i)) skip('<!--', '-->');
    else if (xml.startsWith('</', i)) {
      const m = new RegExp(`^</(${NAME})\\s*>`).exec(xml.slice(i));
      const open = stack.pop();
      if (!m || !open || open.name !== m[1])
        throw new LibvirtXmlError(`unexpected closing tag at offset ${i}${open ? ` (open: <${open.name}>)` : ''}`);
      open.text = open.text.trim();
      i += m[0].length;
    } else if (xml[i] === '<') {
      const m = TAG.exec(xml.slice(i));
      if (!m) throw new LibvirtXmlError(`malformed tag at offset ${i}`);
      const attrs: Record<string, string> = {};
      for (const a of m[2].matchAll(ATTR)) attrs[a[1]] = decode(a[2] ?? a[3]);
      const el: XmlElement = { name: m[1], attrs, children: [], text: '' };
      if (stack.length) stack[stack.length - 1].children.push(el);
      else if (root) throw new LibvirtXmlError(`a second root element <${el.name}> at offset ${i}`);
      else root = el;
      if (!m[3]) stack.push(el);
      i += m[0].length;
    } else {
      const next = xml.indexOf('<', i);
      const text = xml.slice(i, next < 0 ? xml.length : next);
      if (stack.length) stack[stack.length - 1].text += decode(text);
      else if (text.trim()) throw new LibvirtXmlError(`text outside the root element at offset ${i}`);
      i = next < 0 ? xml.length : next;
    }
  }
  if (stack.length) throw new LibvirtXmlError(`<${stack[stack.length - 1].name}> is not closed`);
  if (!root) throw new LibvirtXmlError('no element');
  return root;
}

/** The children of `el` named `name`. */
export function childrenNamed(el: XmlElement, name: string): XmlElement[] {
  return el.children.filter((c) => c.name === name);
}

/** The first child of `el` named `name`, if any. */
export function child(el: XmlElement, name: string): XmlElement | undefined {
  return el.children.find((c) => c.name === name);
}
