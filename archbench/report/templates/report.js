(function(){
  try {
    function cellValue(td){
      var v = td.getAttribute('data-v');
      if (v !== null && v !== '') { var f = parseFloat(v); if (!isNaN(f)) return f; }
      return td.textContent.trim().toLowerCase();
    }
    function sortTable(table, col, asc){
      var tbody = table.tBodies[0];
      var rows = Array.prototype.slice.call(tbody.rows);
      rows.sort(function(a, b){
        var x = cellValue(a.cells[col]), y = cellValue(b.cells[col]);
        var bothNum = (typeof x === 'number') && (typeof y === 'number');
        var c = bothNum ? x - y : String(x).localeCompare(String(y));
        return asc ? c : -c;
      });
      rows.forEach(function(r){ tbody.appendChild(r); });
      var ths = table.tHead.rows[0].cells;
      for (var i = 0; i < ths.length; i++) { ths[i].classList.remove('sorted-asc', 'sorted-desc'); }
      ths[col].classList.add(asc ? 'sorted-asc' : 'sorted-desc');
      table.setAttribute('data-sorted-by', String(col) + (asc ? ':asc' : ':desc'));
    }
    var tables = document.querySelectorAll('table.sortable');
    tables.forEach(function(table){
      var ths = table.tHead.rows[0].cells;
      Array.prototype.forEach.call(ths, function(th, col){
        th.addEventListener('click', function(){
          var asc = !th.classList.contains('sorted-asc');
          sortTable(table, col, asc);
        });
      });
      sortTable(table, 0, true);  // by rank: proves the sorting code runs
    });
    document.documentElement.setAttribute('data-archbench-ready', String(tables.length));
  } catch (e) {
    document.documentElement.setAttribute('data-archbench-error', String(e));
  }
})();
