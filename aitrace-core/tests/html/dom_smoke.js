// A minimal DOM, enough to run the report's script and click through it.
'use strict';
const fs = require('fs');
const page = fs.readFileSync(process.argv[2], 'utf8');
const dataMatch = /<script type="application\/json" id="aitrace-data">([\s\S]*?)<\/script>/.exec(page);
const scriptMatch = /<script>\n([\s\S]*?)<\/script>/.exec(page);
class Node {
  constructor(tag) { this.tagName = tag; this.value = ''; this.children = []; this._text = ''; this.className = ''; this.style = {}; this.parent = null;
    const self = this; this.classList = { add(c) { if (!self.className.split(' ').includes(c)) self.className = (self.className + ' ' + c).trim(); },
      remove(c) { self.className = self.className.split(' ').filter(x => x !== c).join(' '); } }; }
  appendChild(c) { if (c.tagName === '#frag') { c.children.forEach(k => this.appendChild(k)); c.children = []; return c; } c.parent = this; this.children.push(c); return c; }
  insertBefore(c, ref) { if (c.tagName === '#frag') { const ks = c.children; c.children = []; ks.forEach(k => this.insertBefore(k, ref)); return c; }
    const i = this.children.indexOf(ref); c.parent = this; if (i < 0) this.children.push(c); else this.children.splice(i, 0, c); return c; }
  set textContent(t) { this.children = []; this._text = String(t); }
  get textContent() { return this._text + this.children.map(c => c.textContent).join(''); }
  addEventListener() {}
  all(pred, out = []) { if (pred(this)) out.push(this); this.children.forEach(c => c.all(pred, out)); return out; }
}
const body = new Node('body');
const dataEl = new Node('script'); dataEl._text = dataMatch[1];
global.document = { body, createElement: t => new Node(t), createDocumentFragment: () => new Node('#frag'),
  createTextNode: t => { const n = new Node('#text'); n._text = t; return n; },
  getElementById: id => id === 'aitrace-data' ? dataEl : null, addEventListener() {} };
global.setTimeout = (f) => f(); global.clearTimeout = () => {};
global.window = {}; global.location = { hash: '' };
const assert = require('assert');
new Function(scriptMatch[1])();
const stats = () => body.all(n => n.className === 'stats')[0].textContent;
const rows = () => body.all(n => n.tagName === 'tr' && n.className.includes('trace'));
assert.strictEqual(rows().length, Number(process.argv[3]), 'one row per trace');
// Open the trace with an error: tree, timeline, the error's message.
const failed = rows().find(r => r.children[4].textContent === 'error');
// The trace retention kept whole has a badge saying why, and only that one.
const kept = rows().filter(r => r.children[0].all(n => n.className.includes('kept')).length);
assert.deepStrictEqual(kept, [failed], 'one trace kept whole: the failed one');
assert.ok(failed.children[0].textContent.startsWith('kept: failed order'), failed.children[0].textContent);
failed.onclick();
const text = body.textContent;
assert.ok(text.includes('kept whole: failed'), 'the trace says why it was kept');
assert.ok(text.includes('Tree') && text.includes('Timeline'), 'tree and timeline drawn');
assert.ok(text.includes('✖ declined'), 'the failed span shows its error');
assert.ok(body.all(n => n.className.startsWith('bar')).length > 0, 'timeline bars');
// A click on a record shows every field.
const pay = body.all(n => n.className === 'row' && n.textContent.includes('payment_requested'))[0];
pay.onclick({ stopPropagation() {} });
const pane = body.all(n => n.id === 'record')[0].textContent;
assert.ok(pane.includes('"card": "4000"') && pane.includes('__tracer_meta__'), pane);
// Level filter and search narrow the trace list.
const sel = body.all(n => n.tagName === 'select')[0];
sel.value = 4; sel.onchange();
assert.ok(stats().includes('(1 traces match)'), stats());
sel.value = 0; sel.onchange();
const search = body.all(n => n.tagName === 'input')[0];
search.value = 'NOTHING-MATCHES'; search.oninput();
assert.ok(stats().includes('(0 traces match)'), stats());
// Hostile text stays text.
assert.ok(!body.all(n => n.tagName === 'script').length, 'no element made from record text');
console.log('ok');
