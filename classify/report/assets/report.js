/* classify report: sortable tables, confusion-matrix clips, top losses, t-SNE scatter.
   Vanilla JS, no dependencies, no network: all data comes from the JSON in #report-data. */
(function () {
  'use strict';
  var D = JSON.parse(document.getElementById('report-data').textContent);
  var C = D.classes, I = D.items, SVGNS = 'http://www.w3.org/2000/svg';

  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return {'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'}[c];
    });
  }
  function trueIdx(r) { var y = I.y[r]; return Array.isArray(y) ? y : [y]; }
  function trueNames(r) { return trueIdx(r).map(function (i) { return C[i]; }).join('; '); }
  function num(x, d) { return x === null || x === undefined ? '–' : Number(x).toFixed(d); }
  function baseName(p) { var k = p.lastIndexOf('/'); return k < 0 ? p : p.slice(k + 1); }
  function audioSrc(r) {
    var a = I.audio[r], w = I.win[r];
    if (!a) return null;
    return w ? a + '#t=' + w[0] + ',' + w[1] : a;
  }
  function plural(n, word, many) { return n + ' ' + (n === 1 ? word : (many || word + 's')); }
  /* up to 20 classes: Tableau 20 (distinct at a glance); more: hues spread by the golden angle with
     three lightness and two saturation levels, so neighbours in class order never look alike */
  var T20 = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22',
             '#17becf', '#aec7e8', '#ffbb78', '#98df8a', '#ff9896', '#c5b0d5', '#c49c94', '#f7b6d2', '#c7c7c7',
             '#dbdb8d', '#9edae5'];
  function colour(i) {
    if (C.length <= 10) return T20[i];
    if (C.length <= 20) return T20[(i % 2) * 10 + (i >> 1)];
    var h = (i * 137.508) % 360, l = [38, 52, 66][i % 3], s = [80, 55][Math.floor(i / 3) % 2];
    return 'hsl(' + h.toFixed(1) + ',' + s + '%,' + l + '%)';
  }
  function wrong(r) {
    if (I.pl) {  // multi-label: wrong when the labels scored >= 0.5 differ from the true set
      var t = trueIdx(r), p = I.pl[r];
      return t.length !== p.length || t.some(function (i) { return p.indexOf(i) < 0; });
    }
    return trueIdx(r).indexOf(I.p[r]) < 0;
  }

  /* ------------------------------------------------------------------ item cards */
  function card(r) {
    var w = I.win[r], th = I.thumb[r], au = audioSrc(r);
    var html = '<div class="card' + (wrong(r) ? ' wrong' : '') + '" data-r="' + r + '">';
    html += th ? '<img src="' + th + '" loading="lazy" alt="spectrogram of ' + esc(I.src[r]) + '">'
               : '<div class="nothumb">no spectrogram thumbnail</div>';
    html += '<div class="file" title="' + esc(I.src[r]) + '">' + esc(baseName(I.src[r])) + '</div>';
    html += '<div>true: <b>' + esc(trueNames(r)) + '</b></div>';
    html += I.pl ? '<div>pred ≥ 0.5: <b>' + esc(I.pl[r].map(function (i) { return C[i]; }).join('; ') || 'none') +
                   '</b> (top ' + esc(C[I.p[r]]) + ', p=' + num(I.pp[r], 2) + ')</div>'
                 : '<div>pred: <b>' + esc(C[I.p[r]]) + '</b> (p=' + num(I.pp[r], 2) + ')</div>';
    html += '<div class="small">p(true)=' + num(I.pt[r], 3) + ' · loss=' + num(I.loss[r], 3) +
            (w ? ' · ' + num(w[0], 1) + '–' + num(w[1], 1) + ' s' : '') + '</div>';
    html += au ? '<audio controls preload="metadata" src="' + au + '"></audio>'
               : '<div class="noaudio">audio not in report</div>';
    return html + '</div>';
  }
  function suspectCard(s) {
    var r = s.r, th = I.thumb[r], au = I.audio[r];
    var html = '<div class="card suspect" data-r="' + r + '">';
    html += th ? '<img src="' + th + '" loading="lazy" alt="spectrogram of ' + esc(I.src[r]) + '">'
               : '<div class="nothumb">no spectrogram thumbnail</div>';
    html += '<div class="file" title="' + esc(I.src[r]) + '">' + esc(baseName(I.src[r])) + '</div>';
    html += '<div>given: <b>' + esc(C[s.g]) + '</b>' + (s.v === 0 ? ' <span class="tag">unverified</span>' : '') + '</div>';
    html += '<div>suggested: <b class="sugg">' + esc(C[s.s]) + '</b> <span class="small">margin ' + num(s.score, 2) + '</span></div>';
    html += '<div class="probs">' + s.top.map(function (t) {
      var w = Math.max(0, Math.min(100, 100 * t[1]));
      return '<div class="pb' + (t[0] === s.g ? ' given' : t[0] === s.s ? ' sugg' : '') + '"><span style="width:' +
             w.toFixed(1) + '%"></span><em>' + esc(C[t[0]]) + '</em><b>' + num(t[1], 2) + '</b></div>';
    }).join('') + '</div>';
    html += au ? '<audio controls preload="metadata" src="' + au + '"></audio>'
               : '<div class="noaudio">audio not in report</div>';
    return html + '</div>';
  }
  function renderCards(el, rows) { el.innerHTML = rows.map(card).join(''); }

  /* ------------------------------------------------------------------ drawer */
  var drawer = document.getElementById('drawer');
  function openDrawer(title, rows, extra) {
    document.getElementById('drawer-title').textContent = title;
    var body = document.getElementById('drawer-body');
    renderCards(body, rows);
    if (extra) body.insertAdjacentHTML('afterbegin', '<p class="hint">' + esc(extra) + '</p>');
    drawer.hidden = false;
    body.scrollTop = 0;
  }
  document.getElementById('drawer-close').addEventListener('click', function () {
    drawer.hidden = true;
    Array.prototype.forEach.call(drawer.querySelectorAll('audio'), function (a) { a.pause(); });
  });
  function showCell(i, j) {
    var rows = (D.cells && D.cells[i + ',' + j]) || [];
    var count = D.cm ? D.cm[i][j] : rows.length;
    var more = count > rows.length ? 'showing the ' + rows.length + ' with the highest loss of ' + count : '';
    openDrawer('true ' + C[i] + ' → predicted ' + C[j] + ' (' + plural(count, 'clip') + ')', rows, more);
  }

  /* sortable tables: assets/sortable.js (spec2img's, shared with the audit page) */
  Array.prototype.forEach.call(document.querySelectorAll('tr.pair'), function (tr) {
    tr.addEventListener('click', function () { showCell(+tr.dataset.i, +tr.dataset.j); });
  });
  function showClassErrors(i) {  // every kept misclassified clip of true class i, highest loss first
    var rows = [], count = 0;
    for (var j = 0; j < C.length; j++) {
      if (j === i || !D.cm) continue;
      count += D.cm[i][j];
      rows = rows.concat((D.cells && D.cells[i + ',' + j]) || []);
    }
    rows.sort(function (a, b) { return I.loss[b] - I.loss[a]; });
    openDrawer('true ' + C[i] + ': misclassified (' + plural(count, 'clip') + ')', rows,
               rows.length < count ? 'showing ' + rows.length + ' of ' + count + ' (the highest-loss clips of each cell)' :
               rows.length ? '' : 'no misclassified clips');
  }
  Array.prototype.forEach.call(document.querySelectorAll('tr.cls'), function (tr) {
    tr.addEventListener('click', function () { showClassErrors(+tr.dataset.i); });
  });

  /* ------------------------------------------------------------------ tooltip */
  var tip = document.getElementById('tooltip');
  function showTip(html, ev) {
    tip.innerHTML = html;
    tip.hidden = false;
    var x = ev.clientX + 14, y = ev.clientY + 14;
    if (x + tip.offsetWidth > window.innerWidth) x = ev.clientX - tip.offsetWidth - 10;
    if (y + tip.offsetHeight > window.innerHeight) y = ev.clientY - tip.offsetHeight - 10;
    tip.style.left = x + 'px';
    tip.style.top = y + 'px';
  }
  function hideTip() { tip.hidden = true; }

  /* ------------------------------------------------------------------ confusion matrix */
  function el(name, attrs, parent) {
    var e = document.createElementNS(SVGNS, name);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }
  function drawConfusion() {
    var svg = document.getElementById('cm');
    if (!svg || !D.cm) return;
    var n = C.length, cs = Math.max(10, Math.min(30, Math.floor(760 / n)));
    var font = Math.max(8, Math.min(12, cs - 2));
    var longest = C.reduce(function (m, c) { return Math.max(m, c.length); }, 1);
    var margin = Math.min(220, Math.round(longest * font * 0.6) + 10);
    var size = margin + n * cs + 10;
    svg.setAttribute('width', size);
    svg.setAttribute('height', size);
    svg.setAttribute('viewBox', '0 0 ' + size + ' ' + size);
    var g = el('g', {transform: 'translate(' + margin + ',' + margin + ')'}, svg);
    var totals = D.cm.map(function (row) { return row.reduce(function (a, b) { return a + b; }, 0); });
    for (var i = 0; i < n; i++) {
      el('text', {x: -4, y: i * cs + cs / 2, 'font-size': font, 'text-anchor': 'end',
                  'dominant-baseline': 'middle', 'class': 'cm-label'}, g).textContent = C[i];
      var t = el('text', {'font-size': font, 'text-anchor': 'start', 'dominant-baseline': 'middle',
                          'class': 'cm-label', transform: 'translate(' + (i * cs + cs / 2) + ',-4) rotate(-90)'}, g);
      t.textContent = C[i];
      for (var j = 0; j < n; j++) {
        var c = D.cm[i][j], v = totals[i] ? c / totals[i] : 0;
        var fill = c === 0 ? '#fff' : i === j ? 'rgba(37,99,177,' + (0.12 + 0.88 * v).toFixed(3) + ')'
                                              : 'rgba(200,40,40,' + (0.15 + 0.85 * Math.sqrt(v)).toFixed(3) + ')';
        var rect = el('rect', {x: j * cs, y: i * cs, width: cs - 1, height: cs - 1, fill: fill,
                               'class': 'cm-cell' + (c ? ' has' : ''), 'data-i': i, 'data-j': j}, g);
        if (c && cs >= 18) {
          el('text', {x: j * cs + cs / 2 - 0.5, y: i * cs + cs / 2, 'font-size': font - 1, 'text-anchor': 'middle',
                      'dominant-baseline': 'middle', 'class': 'cm-count' + (v > 0.5 ? ' light' : '')}, g).textContent = c;
        }
        void rect;
      }
    }
    svg.addEventListener('click', function (ev) {
      var t = ev.target;
      if (t.classList && t.classList.contains('has')) showCell(+t.dataset.i, +t.dataset.j);
    });
    svg.addEventListener('mousemove', function (ev) {
      var t = ev.target;
      if (!t.classList || !t.classList.contains('cm-cell')) { hideTip(); return; }
      var i = +t.dataset.i, j = +t.dataset.j, c = D.cm[i][j];
      showTip('true <b>' + esc(C[i]) + '</b><br>pred <b>' + esc(C[j]) + '</b><br>' + plural(c, 'clip') + ' (' +
              (totals[i] ? (100 * c / totals[i]).toFixed(1) : '0') + '% of ' + esc(C[i]) + ')', ev);
    });
    svg.addEventListener('mouseleave', hideTip);
  }

  /* ------------------------------------------------------------------ t-SNE */
  function drawTsne() {
    var svg = document.getElementById('tsne-svg');
    if (!svg || !D.tsne) return;
    var views = Object.keys(D.tsne);
    if (!views.length) return;
    var select = document.getElementById('tsne-view'), n = I.src.length, pts = [];
    var g = el('g', {}, svg);
    for (var r = 0; r < n; r++) {
      var c = colour(trueIdx(r)[0]), bad = wrong(r);
      pts.push(el('circle', {r: n > 2000 ? 5 : 7, 'class': 'pt' + (bad ? ' bad' : ''), 'data-r': r,
                             fill: bad ? '#fff' : c, stroke: c}, g));
    }
    function place(view) {
      var xy = D.tsne[view];
      for (var r = 0; r < n; r++) { pts[r].setAttribute('cx', xy[0][r]); pts[r].setAttribute('cy', 1000 - xy[1][r]); }
    }
    place(select ? select.value : views[0]);
    if (select) select.addEventListener('change', function () { place(select.value); });
    svg.addEventListener('mousemove', function (ev) {
      var t = ev.target;
      if (!t.classList || !t.classList.contains('pt')) { hideTip(); return; }
      var r = +t.dataset.r;
      showTip(esc(I.src[r]) + '<br>true <b>' + esc(trueNames(r)) + '</b><br>pred <b>' + esc(C[I.p[r]]) +
              '</b> (p=' + num(I.pp[r], 2) + ')' + (I.audio[r] ? '' : '<br><i>no audio in report</i>'), ev);
    });
    svg.addEventListener('mouseleave', hideTip);
    svg.addEventListener('click', function (ev) {
      var t = ev.target;
      if (!t.classList || !t.classList.contains('pt')) return;
      var r = +t.dataset.r, info = document.getElementById('tsne-info');
      Array.prototype.forEach.call(svg.querySelectorAll('.pt.sel'), function (p) { p.classList.remove('sel'); });
      t.classList.add('sel');
      renderCards(info, [r]);
      var au = info.querySelector('audio');
      if (au) {
        var p = au.play();
        if (p && p.catch) p.catch(function () { /* autoplay refused: the player is shown */ });
      }
    });
    var legend = document.getElementById('tsne-legend');
    var present = {};
    for (var k = 0; k < n; k++) trueIdx(k).forEach(function (i) { present[i] = true; });
    legend.innerHTML = C.map(function (name, i) {
      return present[i] ? '<span class="lg" data-i="' + i + '"><i style="background:' + colour(i) + '"></i>' +
                          esc(name) + '</span>' : '';
    }).join('');
    var search = document.getElementById('tsne-search'), found = document.getElementById('tsne-found');
    var pairsBox = document.getElementById('tsne-pairs');
    function highlight(classes) {  // classes: list of class indices; [] clears
      var on = classes.length > 0;
      Array.prototype.forEach.call(legend.querySelectorAll('.lg'), function (x) {
        x.classList.toggle('on', classes.indexOf(+x.dataset.i) >= 0);
      });
      svg.classList.toggle('focus', on);
      pts.forEach(function (p, r) {
        p.classList.toggle('hi', on && trueIdx(r).some(function (i) { return classes.indexOf(i) >= 0; }));
      });
      showPairs(classes.length === 1 ? classes[0] : -1);
    }
    tsneHighlight = highlight;
    function showPairs(i) {  // the chosen class's most-confused partners, each a link to its clips
      if (!pairsBox) return;
      if (i < 0 || !D.cm) { pairsBox.innerHTML = ''; return; }
      var links = [];
      for (var j = 0; j < C.length; j++) {
        if (j === i) continue;
        if (D.cm[i][j]) links.push([D.cm[i][j], i, j]);
        if (D.cm[j][i]) links.push([D.cm[j][i], j, i]);
      }
      links.sort(function (a, b) { return b[0] - a[0]; });
      pairsBox.innerHTML = links.length ? '<b>Confused with ' + esc(C[i]) + ':</b> ' + links.slice(0, 8).map(function (l) {
        return '<a href="#" class="pairlink" data-i="' + l[1] + '" data-j="' + l[2] + '">' + esc(C[l[1]]) + ' → ' +
               esc(C[l[2]]) + ' (' + l[0] + ')</a>';
      }).join(' · ') : '<span class="hint">' + esc(C[i]) + ': no confusions</span>';
    }
    if (pairsBox) pairsBox.addEventListener('click', function (ev) {
      var a = ev.target.closest('.pairlink');
      if (!a) return;
      ev.preventDefault();
      var i = +a.dataset.i, j = +a.dataset.j;
      highlight([i, j]);
      showCell(i, j);
    });
    legend.addEventListener('click', function (ev) {
      var t = ev.target.closest('.lg');
      if (!t) return;
      var i = +t.dataset.i, was = t.classList.contains('on') && legend.querySelectorAll('.lg.on').length === 1;
      if (search) search.value = '';
      if (found) found.textContent = '';
      highlight(was ? [] : [i]);
    });
    if (search) search.addEventListener('input', function () {
      var q = search.value.trim().toLowerCase(), hits = [];
      if (q) C.forEach(function (name, i) { if (present[i] && name.toLowerCase().indexOf(q) >= 0) hits.push(i); });
      Array.prototype.forEach.call(legend.querySelectorAll('.lg'), function (x) {
        x.classList.toggle('dim', !!q && hits.indexOf(+x.dataset.i) < 0);
      });
      found.textContent = q ? plural(hits.length, 'class', 'classes') : '';
      highlight(hits);
    });
  }
  var tsneHighlight = null;
  Array.prototype.forEach.call(document.querySelectorAll('tr.pair'), function (tr) {
    var cell = tr.cells[tr.cells.length - 1];
    cell.insertAdjacentHTML('beforeend', ' <a href="#tsne" class="to-tsne" title="show both classes in the t-SNE">t-SNE</a>');
  });
  document.addEventListener('click', function (ev) {
    var a = ev.target.closest && ev.target.closest('a.to-tsne');
    if (!a || !tsneHighlight) return;
    ev.stopPropagation();
    var tr = a.closest('tr');
    tsneHighlight([+tr.dataset.i, +tr.dataset.j]);
  }, true);

  /* ------------------------------------------------------------------ go */
  var top = document.getElementById('top-losses');
  if (top) renderCards(top, D.top || []);
  var sus = document.getElementById('suspect-cards');
  if (sus) sus.innerHTML = (D.suspects || []).map(suspectCard).join('');
  drawConfusion();
  drawTsne();
  document.documentElement.classList.add('ready');
})();
