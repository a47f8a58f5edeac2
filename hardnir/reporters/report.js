"use strict";
// Sortable and filterable tables, filterable finding lists, details opened for printing. No network, no library.
(function () {
  function cellValue(row, index) {
    var cell = row.cells[index];
    if (!cell) { return ""; }
    return cell.hasAttribute("data-sort") ? cell.getAttribute("data-sort") : cell.textContent.trim();
  }
  function compare(a, b) {
    var x = parseFloat(a), y = parseFloat(b);
    var numeric = a !== "" && b !== "" && !isNaN(x) && !isNaN(y) && isFinite(a) && isFinite(b);
    if (numeric) { return x - y; }
    return a.localeCompare(b, undefined, {numeric: true});
  }
  function sortTable(table, index, direction) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (r1, r2) {
      var result = compare(cellValue(r1, index), cellValue(r2, index));
      return direction === "descending" ? -result : result;
    });
    rows.forEach(function (row) { body.appendChild(row); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
      if (i === index) { th.setAttribute("aria-sort", direction); } else { th.removeAttribute("aria-sort"); }
    });
  }
  function filterItems(items, query) {
    var needle = query.trim().toLowerCase();
    var shown = 0;
    items.forEach(function (item) {
      var match = needle === "" || item.textContent.toLowerCase().indexOf(needle) !== -1;
      item.hidden = !match;
      if (match) { shown += 1; }
    });
    return shown;
  }
  function itemsFor(target) {
    if (target.tagName === "TABLE") { return Array.prototype.slice.call(target.tBodies[0].rows); }
    return Array.prototype.slice.call(target.querySelectorAll("[data-item]"));
  }
  function applyFilter(input) {
    var target = document.getElementById(input.getAttribute("data-filter-for"));
    if (!target) { return; }
    var shown = filterItems(itemsFor(target), input.value);
    target.setAttribute("data-shown", String(shown));
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, index) {
      th.addEventListener("click", function () {
        var next = th.getAttribute("aria-sort") === "ascending" ? "descending" : "ascending";
        sortTable(table, index, next);
      });
    });
  });
  document.querySelectorAll("input.filter").forEach(function (input) {
    input.addEventListener("input", function () { applyFilter(input); });
  });
  // Deep links: #q=TEXT filters every list; #sort=TABLE_ID:COLUMN:ascending|descending sorts a table.
  var params = new URLSearchParams(window.location.hash.replace(/^#/, ""));
  if (params.has("q")) {
    document.querySelectorAll("input.filter").forEach(function (input) {
      input.value = params.get("q");
      applyFilter(input);
    });
  }
  if (params.has("sort")) {
    var parts = params.get("sort").split(":");
    var table = document.getElementById(parts[0]);
    if (table && table.classList.contains("sortable")) {
      sortTable(table, parseInt(parts[1], 10) || 0, parts[2] === "descending" ? "descending" : "ascending");
    }
  }
  window.addEventListener("beforeprint", function () {
    document.querySelectorAll("details").forEach(function (d) { d.setAttribute("data-was-open", d.open); d.open = true; });
  });
  window.addEventListener("afterprint", function () {
    document.querySelectorAll("details").forEach(function (d) { d.open = d.getAttribute("data-was-open") === "true"; });
  });
  document.body.setAttribute("data-ready", "true");
}());
