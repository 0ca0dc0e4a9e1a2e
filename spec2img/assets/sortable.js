/* Sortable tables (one home: spec2img's audit page and classify's report both load this file).
 * Every table.sortable sorts on a header click: <th data-col="k" data-num="1"> sorts column k by the
 * cells' data-v numbers (blanks last), other headers by text; a second click reverses. */
(function () {
  'use strict';
  Array.prototype.forEach.call(document.querySelectorAll('table.sortable'), function (table) {
    var ths = table.querySelectorAll('th');
    Array.prototype.forEach.call(ths, function (th) {
      th.addEventListener('click', function () {
        var col = +th.dataset.col, isNum = th.dataset.num === '1';
        var asc = th.dataset.dir !== 'asc';
        Array.prototype.forEach.call(ths, function (t) { delete t.dataset.dir; });
        th.dataset.dir = asc ? 'asc' : 'desc';
        var tbody = table.tBodies[0], rows = Array.prototype.slice.call(tbody.rows);
        rows.sort(function (a, b) {
          var x = a.cells[col], y = b.cells[col], c;
          if (isNum) {
            var u = x.dataset.v === '' ? NaN : +x.dataset.v, v = y.dataset.v === '' ? NaN : +y.dataset.v;
            if (isNaN(u) || isNaN(v)) return isNaN(u) - isNaN(v);  // blanks last
            c = u - v;
          } else {
            c = x.textContent.localeCompare(y.textContent);
          }
          return asc ? c : -c;
        });
        rows.forEach(function (r) { tbody.appendChild(r); });
      });
    });
  });
})();
