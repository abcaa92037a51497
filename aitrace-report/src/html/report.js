(function () {
  'use strict';
  // Everything below builds the page with textContent: record text is never markup.
  var LEVELS = ['trace', 'debug', 'info', 'warning', 'error'];
  var META = '__tracer_meta__';
  var FLAT = ['timestamp', 'event', 'level', 'logger', 'trace_id', 'span_id', 'parent_span_id',
    'file', 'line', 'function', 'provisional', 'record_id'];
  var PAGE = 200;
  var RETENTION = 'aitrace.retention';

  var data = JSON.parse(document.getElementById('aitrace-data').textContent);

  function levelIndex(l) {
    l = String(l || '').toLowerCase();
    if (l === 'warn') { l = 'warning'; }
    if (l === 'critical' || l === 'fatal') { l = 'error'; }
    var i = LEVELS.indexOf(l);
    return i < 0 ? 2 : i;
  }
  function micros(ts) {
    if (typeof ts !== 'string') { return NaN; }
    var m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z$/.exec(ts);
    if (!m) { return Date.parse(ts) * 1000; }
    var frac = ((m[2] || '') + '000000').slice(0, 6);
    return Date.parse(m[1] + 'Z') * 1000 + Number(frac);
  }
  function norm(raw, i) {
    var ns = raw[META] && typeof raw[META] === 'object';
    var m = ns ? raw[META] : raw;
    var f = {};
    Object.keys(raw).forEach(function (k) {
      if (ns ? (k === META || (k === 'timestamp' && raw[k] === m.timestamp)) : FLAT.indexOf(k) >= 0) { return; }
      f[k] = raw[k];
    });
    return { i: i, raw: raw, m: m, f: f, lv: levelIndex(m.level), t: micros(m.timestamp),
      ev: String(m.event == null ? '' : m.event), s: null };
  }
  var recs = data.records.map(norm);
  var byTrace = {};
  recs.forEach(function (r) {
    var id = typeof r.m.trace_id === 'string' ? r.m.trace_id : '';
    (byTrace[id] = byTrace[id] || []).push(r);
  });

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text != null) { e.textContent = String(text); }
    return e;
  }
  function fmtMs(ms) {
    if (ms == null || isNaN(ms)) { return ''; }
    if (ms < 1) { return ms.toFixed(3) + ' ms'; }
    if (ms < 1000) { return ms.toFixed(1) + ' ms'; }
    return (ms / 1000).toFixed(2) + ' s';
  }
  function compact(v) {
    var s = typeof v === 'string' ? v : JSON.stringify(v);
    return s.length > 80 ? s.slice(0, 79) + '…' : s;
  }
  // Why retention by outcome kept a trace whole ('failed', 'slow', 'sampled').
  function keptTag(reason) {
    var tag = el('span', 'tag kept kept-' + String(reason).replace(/[^a-z]/g, ''), 'kept: ' + reason);
    tag.title = 'trace kept whole (retention by outcome): ' + reason;
    return tag;
  }
  function fieldsText(r) {
    return Object.keys(r.f).map(function (k) { return k + '=' + compact(r.f[k]); }).join(' ');
  }

  // ---- filters ----
  var minLevel = 0;
  var query = '';
  function matches(r) {
    if (r.lv < minLevel) { return false; }
    if (!query) { return true; }
    if (r.s === null) { r.s = JSON.stringify(r.raw).toLowerCase(); }
    return r.s.indexOf(query) >= 0;
  }
  function filtering() { return minLevel > 0 || query !== ''; }

  // ---- page skeleton ----
  var header = el('header');
  header.appendChild(el('h1', null, 'aitrace report'));
  var stats = el('span', 'stats');
  header.appendChild(stats);
  var levelSel = el('select');
  levelSel.title = 'lowest level shown';
  LEVELS.forEach(function (l, i) { var o = el('option', null, l + (i ? ' and above' : ' (all)')); o.value = i; levelSel.appendChild(o); });
  header.appendChild(levelSel);
  var search = el('input');
  search.type = 'search';
  search.placeholder = 'search text in records…';
  header.appendChild(search);
  document.body.appendChild(header);
  var main = el('main');
  var listPane = el('section');
  listPane.id = 'traces';
  var detail = el('section');
  detail.id = 'detail';
  detail.appendChild(el('p', 'hint', 'Pick a trace on the left. Click any line to see all its fields.'));
  main.appendChild(listPane);
  main.appendChild(detail);
  document.body.appendChild(main);
  var recordPane = el('pre');
  recordPane.id = 'record';
  document.body.appendChild(recordPane);

  var selectedRow = null;
  function showRecord(r, row) {
    if (selectedRow) { selectedRow.classList.remove('sel'); }
    selectedRow = row || null;
    if (row) { row.classList.add('sel'); }
    recordPane.textContent = r ? JSON.stringify(r.raw, null, 2) : '';
  }
  document.addEventListener('keydown', function (e) { if (e.key === 'Escape') { showRecord(null); } });

  // ---- trace list, a page at a time ----
  var traceRows = [];
  var selectedTrace = null;
  function renderList() {
    listPane.textContent = '';
    var shown = data.traces.filter(function (t) {
      if (!filtering()) { return true; }
      return (byTrace[t.trace_id || ''] || []).some(matches);
    });
    stats.textContent = data.traces.length + ' traces, ' + recs.length + ' records' +
      (filtering() ? ' (' + shown.length + ' traces match)' : '');
    var table = el('table');
    var head = el('tr');
    ['name', 'start', 'duration', 'records', ''].forEach(function (h) { head.appendChild(el('th', null, h)); });
    table.appendChild(head);
    listPane.appendChild(table);
    traceRows = [];
    var more = el('button', 'more');
    var n = 0;
    function page() {
      var end = Math.min(n + PAGE, shown.length);
      for (; n < end; n++) { table.appendChild(traceRow(shown[n])); }
      more.textContent = 'show ' + Math.min(PAGE, shown.length - n) + ' more of ' + (shown.length - n);
      more.style.display = n < shown.length ? '' : 'none';
    }
    more.onclick = page;
    listPane.appendChild(more);
    page();
  }
  function traceRow(t) {
    var tr = el('tr', 'trace');
    var name = el('td', 'name');
    if (t.kept != null) { name.appendChild(keptTag(t.kept)); name.appendChild(document.createTextNode(' ')); }
    name.appendChild(document.createTextNode(t.name));
    name.title = (t.trace_id || 'no trace id') + '\n' + t.name + (t.kept != null ? '\nkept whole: ' + t.kept : '');
    tr.appendChild(name);
    tr.appendChild(el('td', null, t.start ? t.start.replace('T', ' ').replace('Z', '') : ''));
    tr.appendChild(el('td', 'num', fmtMs(t.duration_ms)));
    tr.appendChild(el('td', 'num', t.records));
    tr.appendChild(el('td', t.error ? 'err' : null, t.error ? 'error' : ''));
    if (selectedTrace === t) { tr.classList.add('selected'); }
    tr.onclick = function () {
      traceRows.forEach(function (r) { r.classList.remove('selected'); });
      tr.classList.add('selected');
      selectedTrace = t;
      renderTrace(t);
      // A link to this trace: report.html#trace=ID opens it.
      if (t.trace_id && window.history && history.replaceState) {
        history.replaceState(null, '', '#trace=' + t.trace_id);
      }
    };
    traceRows.push(tr);
    return tr;
  }

  // ---- one trace: its span model ----
  var models = {};
  function model(id) {
    if (models[id]) { return models[id]; }
    var rs = (byTrace[id] || []).slice().sort(function (a, b) { return (a.t - b.t) || (a.i - b.i); });
    var spans = {};
    var roots = [];
    function span(sid) {
      return spans[sid] || (spans[sid] = { sid: sid, name: null, start: null, end: null, parent: null, items: [], t0: NaN, t1: NaN });
    }
    rs.forEach(function (r) {
      var sid = r.m.span_id;
      if (typeof sid !== 'string') { roots.push({ rec: r, t0: r.t }); return; }
      var s = span(sid);
      if (typeof r.m.parent_span_id === 'string' && !s.parent) { s.parent = r.m.parent_span_id; }
      var dot = r.ev.lastIndexOf('.');
      var suffix = dot >= 0 ? r.ev.slice(dot + 1) : '';
      if (suffix === 'start' && !s.start) { s.start = r; s.name = r.ev.slice(0, dot); }
      else if (suffix === 'end' && !s.end) { s.end = r; s.name = s.name || r.ev.slice(0, dot); }
      else { s.items.push({ rec: r, t0: r.t }); }
    });
    var tMax = rs.length ? rs[rs.length - 1].t : NaN;
    var list = [];
    Object.keys(spans).forEach(function (sid) {
      var s = spans[sid];
      var d = s.end && typeof s.end.f.duration_ms === 'number' ? s.end.f.duration_ms : NaN;
      s.t0 = s.start ? s.start.t : (s.end && !isNaN(d) ? s.end.t - d * 1000 : (s.items.length ? s.items[0].t0 : NaN));
      s.t1 = s.end ? s.end.t : tMax;
      s.ms = !isNaN(d) ? d : (s.t1 - s.t0) / 1000;
      s.open = !s.end;
      s.err = !!(s.end && (s.end.lv === 4 || s.end.f.error != null));
      if (s.name === null) { s.name = '(span ' + sid + ')'; }
      list.push(s);
    });
    list.forEach(function (s) {
      var p = s.parent && spans[s.parent];
      if (p && p !== s) { p.items.push({ span: s, t0: s.t0 }); } else { s.orphan = !!s.parent; roots.push({ span: s, t0: s.t0 }); }
    });
    function byTime(a, b) { return (a.t0 - b.t0) || 0; }
    list.forEach(function (s) { s.items.sort(byTime); });
    roots.sort(byTime);
    var t0 = rs.length ? rs[0].t : 0;
    list.forEach(function (s) { if (!isNaN(s.t0) && s.t0 < t0) { t0 = s.t0; } });
    return (models[id] = { roots: roots, t0: t0, t1: tMax, spans: list, count: rs.length });
  }

  function renderTrace(t) {
    var id = t.trace_id || '';
    var m = model(id);
    showRecord(null);
    detail.textContent = '';
    detail.appendChild(el('h2', null, t.name));
    detail.appendChild(el('div', 'hint', (t.trace_id ? 'trace ' + t.trace_id : 'records without a trace id') +
      ' · ' + m.count + ' records · ' + m.spans.length + ' spans' + (t.error ? ' · has errors' : '') +
      (t.kept != null ? ' · kept whole: ' + t.kept : '')));
    detail.appendChild(el('h2', null, 'Tree'));
    var tree = el('div', 'tree');
    detail.appendChild(tree);
    renderItems(tree, m.roots, m, 0);
    if (m.spans.length) {
      detail.appendChild(el('h2', null, 'Timeline'));
      renderTimeline(detail, m);
    }
  }

  // Children are made only when a span is expanded, a page at a time.
  function renderItems(container, items, m, depth) {
    var shown = items.filter(function (it) { return it.span || !filtering() || matches(it.rec); });
    var n = 0;
    var more = el('button', 'more');
    function page() {
      var end = Math.min(n + PAGE, shown.length);
      var frag = document.createDocumentFragment();
      for (; n < end; n++) {
        var it = shown[n];
        frag.appendChild(it.span ? spanNode(it.span, m, depth) : eventRow(it.rec, m));
      }
      container.insertBefore(frag, more);
      more.textContent = 'show ' + Math.min(PAGE, shown.length - n) + ' more of ' + (shown.length - n);
      more.style.display = n < shown.length ? '' : 'none';
    }
    more.onclick = page;
    container.appendChild(more);
    page();
  }
  function offset(r, m) {
    return isNaN(r.t) ? '' : '+' + fmtMs((r.t - m.t0) / 1000);
  }
  function eventRow(r, m) {
    var row = el('div', 'row');
    row.appendChild(el('span', 'toggle', '·'));
    row.appendChild(el('span', 'off', offset(r, m)));
    row.appendChild(el('span', 'lv lv-' + LEVELS[r.lv], LEVELS[r.lv]));
    row.appendChild(el('span', 'ev', r.ev));
    var f = fieldsText(r);
    if (f) { row.appendChild(document.createTextNode(' ')); row.appendChild(el('span', 'fields', f)); }
    row.onclick = function (e) { e.stopPropagation(); showRecord(r, row); };
    return row;
  }
  function spanNode(s, m, depth) {
    var node = el('div', 'node');
    var row = el('div', 'row');
    var toggle = el('span', 'toggle', '▸');
    row.appendChild(toggle);
    var rec = s.end || s.start;
    row.appendChild(el('span', 'off', rec ? offset({ t: s.t0 }, m) : ''));
    var lv = rec ? rec.lv : 2;
    row.appendChild(el('span', 'lv lv-' + LEVELS[lv], LEVELS[lv]));
    row.appendChild(el('span', 'span-name', s.name));
    row.appendChild(el('span', 'dur', ' ' + (s.open ? '' : fmtMs(s.ms))));
    if (s.open) { row.appendChild(el('span', 'tag open', 'no .end: running or lost')); }
    if (s.orphan) { row.appendChild(el('span', 'tag orphan', 'parent ' + s.parent + ' not in this file')); }
    if (s.end && typeof s.end.f[RETENTION] === 'string') { row.appendChild(keptTag(s.end.f[RETENTION])); }
    if (s.err) {
      var msg = s.end.f.error;
      row.appendChild(el('span', 'err', ' ✖ ' + (msg == null ? 'error' : compact(msg))));
    }
    var start = s.start ? fieldsText(s.start) : '';
    if (start) { row.appendChild(document.createTextNode(' ')); row.appendChild(el('span', 'fields', start)); }
    node.appendChild(row);
    var kids = null;
    function setOpen(open) {
      if (open && !kids) {
        kids = el('div', 'kids');
        node.appendChild(kids);
        renderItems(kids, s.items, m, depth + 1);
      }
      if (kids) { kids.style.display = open ? '' : 'none'; }
      toggle.textContent = s.items.length ? (open ? '▾' : '▸') : ' ';
    }
    var isOpen = depth < 3 && s.items.length <= PAGE;
    toggle.onclick = function (e) { e.stopPropagation(); isOpen = !isOpen; setOpen(isOpen); };
    row.onclick = function () { showRecord(rec, row); };
    setOpen(isOpen);
    return node;
  }

  function renderTimeline(parent, m) {
    var box = el('div', 'timeline');
    parent.appendChild(box);
    var total = Math.max(m.t1 - m.t0, 1);
    var order = [];
    (function walk(items, depth) {
      items.forEach(function (it) { if (it.span) { order.push([it.span, depth]); walk(it.span.items, depth + 1); } });
    })(m.roots, 0);
    var n = 0;
    var more = el('button', 'more');
    function page() {
      var end = Math.min(n + PAGE, order.length);
      for (; n < end; n++) {
        var s = order[n][0];
        var line = el('div', 'tl');
        var label = el('div', 'label', '\u00a0'.repeat(order[n][1] * 2) + s.name);
        label.title = s.name + ' ' + fmtMs(s.ms);
        line.appendChild(label);
        var lane = el('div', 'lane');
        var bar = el('div', 'bar' + (s.err ? ' error' : '') + (s.open ? ' open' : ''));
        var left = isNaN(s.t0) ? 0 : (s.t0 - m.t0) / total * 100;
        var width = isNaN(s.t1 - s.t0) ? 0 : (s.t1 - s.t0) / total * 100;
        bar.style.left = Math.max(0, Math.min(100, left)) + '%';
        bar.style.width = Math.max(0, Math.min(100 - left, width)) + '%';
        bar.title = s.name + ': ' + (s.open ? 'no .end' : fmtMs(s.ms));
        lane.appendChild(bar);
        line.appendChild(lane);
        (function (s, line) { line.onclick = function () { showRecord(s.end || s.start, line); }; })(s, line);
        box.insertBefore(line, more);
      }
      more.textContent = 'show ' + Math.min(PAGE, order.length - n) + ' more of ' + (order.length - n);
      more.style.display = n < order.length ? '' : 'none';
    }
    more.onclick = page;
    box.appendChild(more);
    page();
  }

  var timer = null;
  function refilter() {
    minLevel = Number(levelSel.value) || 0;
    query = search.value.trim().toLowerCase();
    renderList();
    if (selectedTrace) { renderTrace(selectedTrace); }
  }
  levelSel.onchange = refilter;
  search.oninput = function () { clearTimeout(timer); timer = setTimeout(refilter, 250); };
  renderList();
  var wanted = /^#trace=([0-9a-fA-F]+)$/.exec(location.hash || '');
  if (wanted) {
    data.traces.forEach(function (t) {
      if (!selectedTrace && t.trace_id === wanted[1].toLowerCase()) { selectedTrace = t; }
    });
    if (selectedTrace) { renderList(); renderTrace(selectedTrace); }
  }
})();
