"""The CSS and JavaScript inlined into ladder SVGs and report pages (no files to ship, works from file://)."""

LADDER_CSS = """
.ladder .bg{fill:#fff}
.ladder .lane rect{fill:#e3edf9;stroke:#5b7db1}
.ladder .lane.dut rect{fill:#fff1cc;stroke:#b7860b}
.ladder .lane.host rect{fill:#f0f0f0;stroke:#9a9a9a}
.ladder .lanename{font-weight:bold;fill:#1b2a3a;font-size:13px}
.ladder .lanesub{font-size:10.5px;fill:#4a5560}
.ladder .life{stroke:#a7b1bb;stroke-dasharray:4 4}
.ladder .t{font-size:10.5px;fill:#5f6b76;font-family:"DejaVu Sans Mono",Menlo,Consolas,monospace}
.ladder .colhead{font-size:10px;fill:#8a939b;letter-spacing:.08em}
.ladder .msg{cursor:pointer;outline:none}
.ladder .hit{fill:rgba(0,0,0,0)}
.ladder .msg:hover .hit,.ladder .msg:focus .hit{fill:#eef4ff}
.ladder .msg.selected .hit{fill:#fff3b8}
.ladder .line{stroke-width:1.7}
.ladder .lbl{font-weight:bold}
.ladder .small{font-size:10.5px;fill:#5f6b76}
.ladder .msg.req .line{stroke:#1f5fa8}.ladder .msg.req .lbl{fill:#1f5fa8}.ladder .ah.req path{fill:#1f5fa8}
.ladder .msg.prov .line{stroke:#8b949c}.ladder .msg.prov .lbl{fill:#66707a}.ladder .ah.prov path{fill:#8b949c}
.ladder .msg.ok .line{stroke:#2e7d32}.ladder .msg.ok .lbl{fill:#2e7d32}.ladder .ah.ok path{fill:#2e7d32}
.ladder .msg.err .line{stroke:#c25e00}.ladder .msg.err .lbl{fill:#b35400}.ladder .ah.err path{fill:#c25e00}
.ladder .msg.bad .line{stroke:#7b1fa2;stroke-dasharray:2 3}.ladder .msg.bad .lbl{fill:#7b1fa2}
.ladder .ah.bad path{fill:#7b1fa2}
.ladder .msg.retx .line{stroke-dasharray:7 4}
.ladder .msg.retx .lbl{font-style:italic}
.ladder .msg.fail .line{stroke:#c62828;stroke-width:2.8}
.ladder .msg.fail .lbl{fill:#c62828}
.ladder .msg.fail .hit{fill:#fdecea}
.ladder .msg.fail.selected .hit{fill:#f9d3cf}
.ladder .ah.fail path{fill:#c62828}
.ladder .step circle{fill:#37474f}
.ladder .step text{fill:#fff;font-size:10px;font-weight:bold}
.ladder .msg.fail .step circle{fill:#c62828}
.ladder .failnote rect{fill:#fdecea;stroke:#c62828;stroke-width:1.5}
.ladder .failtitle{fill:#b71c1c;font-weight:bold}
.ladder .faildetail{fill:#5f2120;font-size:11px}
.ladder .note rect{fill:#eceff1;stroke:#90a4ae}
.ladder .note text{font-size:11px;fill:#37474f}
.ladder .gap{fill:#7d868e;font-size:11px;font-style:italic}
.ladder .natmark path{stroke:#6a1b9a;stroke-width:1.5;stroke-dasharray:2 2}
.ladder .natmark rect{fill:#6a1b9a}
.ladder .natmark text{fill:#fff;font-size:10px;font-weight:bold}
"""

PAGE_CSS = """
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 "DejaVu Sans",system-ui,-apple-system,"Segoe UI",Arial,sans-serif;color:#1d252c;
 background:#f4f6f8}
body.viewer{padding:16px}
h1{font-size:22px;margin:0 0 4px}
h2{font-size:17px;margin:26px 0 10px}
h3{font-size:15px;margin:0}
a{color:#1f5fa8}
code,pre,.mono{font-family:"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:12.5px}
pre{white-space:pre-wrap;word-break:break-word;margin:0}
header.top{background:#1d2b3a;color:#fff;padding:18px 28px}
header.top .sub{color:#c3ceda;font-size:13px}
header.top .sub b{color:#fff}
main{padding:8px 28px 40px;max-width:1500px}
.banner{margin:16px 0 4px;padding:12px 16px;border-radius:6px;font-size:16px;font-weight:bold}
.banner.pass{background:#e3f3e5;color:#1e5e23;border:1px solid #9fd3a6}
.banner.fail{background:#fdecea;color:#8e1c1c;border:1px solid #f0a8a2}
.banner.warn{background:#fff4d6;color:#7a5300;border:1px solid #ecc870}
.chips{display:flex;gap:8px;flex-wrap:wrap;margin:10px 0}
.chip{padding:6px 12px;border-radius:16px;background:#fff;border:1px solid #d5dbe1;font-weight:bold}
.chip span{font-weight:normal;color:#5f6b76;margin-left:4px}
table{border-collapse:collapse;background:#fff;width:100%;border:1px solid #d5dbe1}
th,td{padding:6px 10px;border-bottom:1px solid #e6eaee;text-align:left;vertical-align:top}
th{background:#eef1f4;font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:#45515c}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.rate{display:flex;align-items:center;gap:8px;min-width:170px}
.bar{flex:1;height:9px;background:#f1c9c5;border-radius:5px;overflow:hidden;min-width:80px}
.bar i{display:block;height:100%;background:#43a047}
.bar.none{background:#e3e7eb}
.rate b{min-width:96px;font-variant-numeric:tabular-nums}
.badge{display:inline-block;padding:1px 9px;border-radius:10px;font-size:12px;font-weight:bold;white-space:nowrap;
 color:#fff}
.v-passed{background:#2e7d32}.v-failed{background:#c62828}.v-error{background:#6d1b7b}.v-inconclusive{background:#5c6bc0}
.v-known_failure{background:#e08a00}.v-unexpected_pass{background:#00838f}.v-skipped{background:#8b949c}
.v-warning{background:#b8860b}
.lvl{font-weight:bold;font-size:12px;padding:0 6px;border-radius:3px;border:1px solid}
.lvl-MUST{color:#b71c1c;border-color:#e8a19b}.lvl-SHOULD{color:#8a5a00;border-color:#e6c27a}
.lvl-MAY{color:#455a64;border-color:#b0bec5}
.filters{margin:8px 0;display:flex;gap:6px;flex-wrap:wrap}
.filters button{border:1px solid #c4ccd4;background:#fff;border-radius:14px;padding:4px 12px;cursor:pointer;font:inherit}
.filters button.on{background:#1d2b3a;color:#fff;border-color:#1d2b3a}
tr.test-row{cursor:pointer}
tr.test-row:hover td{background:#f6f9fc}
.hidden{display:none !important}
details.test{background:#fff;border:1px solid #d5dbe1;border-left:6px solid #8b949c;border-radius:6px;margin:12px 0}
details.test.v-passed{border-left-color:#2e7d32}
details.test.v-failed{border-left-color:#c62828}
details.test.v-error{border-left-color:#6d1b7b}
details.test.v-inconclusive{border-left-color:#5c6bc0}
details.test.v-known_failure{border-left-color:#e08a00}
details.test.v-unexpected_pass{border-left-color:#00838f}
details.test.warning{border-left-color:#b8860b}
details.test>summary{padding:10px 14px;cursor:pointer;display:flex;gap:10px;align-items:center;flex-wrap:wrap;
 list-style:none}
details.test>summary::-webkit-details-marker{display:none}
details.test>summary::before{content:"▸";color:#6b7680;width:10px}
details.test[open]>summary::before{content:"▾"}
details.test>summary .tp{font-weight:bold;font-family:"DejaVu Sans Mono",monospace}
details.test>summary .ttl{flex:1;min-width:260px}
.body{padding:4px 16px 16px;border-top:1px solid #e6eaee}
.req{margin:10px 0;color:#33404b}
.req .ref{font-weight:bold}
.req blockquote{margin:6px 0 0;padding:6px 12px;border-left:3px solid #c4ccd4;background:#f7f9fa;color:#3b4752}
.failure{background:#fdecea;border:1px solid #f0a8a2;border-radius:5px;padding:10px 12px;margin:10px 0;color:#5f2120}
.failure h4,.findings h4{margin:0 0 6px;font-size:13px}
.findings{background:#fff8e1;border:1px solid #ecd38a;border-radius:5px;padding:10px 12px;margin:10px 0}
.findings ul{margin:0;padding-left:18px}
.links{margin:8px 0;display:flex;gap:14px;flex-wrap:wrap;font-size:13px}
.steps td.st{white-space:nowrap}
.steps tr.failed td{background:#fdecea}
.st-passed{color:#2e7d32;font-weight:bold}.st-failed{color:#c62828;font-weight:bold}.st-skipped{color:#78828b}
.ladder-box{display:flex;gap:12px;align-items:flex-start;margin:10px 0}
.ladder-scroll{overflow-x:auto;border:1px solid #d5dbe1;border-radius:5px;background:#fff;flex:0 1 auto}
.panel{flex:1 1 360px;min-width:320px;max-width:640px;position:sticky;top:8px;background:#fbfcfd;border:1px solid #d5dbe1;
 border-radius:5px;display:flex;flex-direction:column;max-height:calc(100vh - 16px)}
.panel-head{font-weight:bold;padding:8px 10px;border-bottom:1px solid #e6eaee;background:#eef1f4}
.panel-meta{padding:6px 10px;font-size:12.5px;color:#45515c;border-bottom:1px solid #e6eaee}
.panel-text{padding:8px 10px;overflow:auto;flex:1}
.msgs td{font-size:12.5px}
.msgs tr{cursor:pointer}
.msgs tr:hover td{background:#f6f9fc}
.msgs tr.fail td{background:#fdecea}
.muted{color:#6b7680}
.legend{font-size:12px;color:#45515c;display:flex;gap:14px;flex-wrap:wrap;margin:6px 0}
.legend i{display:inline-block;width:22px;height:0;border-top:2px solid;vertical-align:middle;margin-right:4px}
footer{color:#6b7680;font-size:12px;margin-top:30px}
"""

PAGE_JS = r"""
(function () {
  "use strict";
  function show(box, g) {
    if (!box || !g) { return; }
    box.querySelectorAll(".msg.selected").forEach(function (e) { e.classList.remove("selected"); });
    g.classList.add("selected");
    var d = g.dataset, t = g.querySelector("title");
    var meta = [d.label, (d.from || "") + " \u2192 " + (d.to || ""), d.time, d.transport,
      d.iface ? "on " + d.iface : "", d.step ? "step " + d.step : "",
      d.error ? "unparsable: " + d.error : "", d.rewritten ? "NAT rewrote: " + d.rewritten : ""];
    box.querySelector(".panel-meta").textContent = meta.filter(Boolean).join("  \u00b7  ");
    box.querySelector(".panel-text").textContent = t ? t.textContent : "";
  }
  function select(id) {
    var g = document.getElementById(id);
    if (!g || !g.classList.contains("msg")) { return false; }
    var det = g.closest("details");
    while (det) { det.open = true; det = det.parentElement ? det.parentElement.closest("details") : null; }
    show(g.closest(".ladder-box"), g);
    return g;
  }
  document.querySelectorAll(".ladder-box").forEach(function (box) {
    box.addEventListener("click", function (ev) {
      var g = ev.target.closest ? ev.target.closest(".msg") : null;
      if (g) { show(box, g); try { history.replaceState(null, "", "#" + g.id); } catch (e) { /* file:// */ } }
    });
    box.addEventListener("keydown", function (ev) {
      var g = ev.target.closest ? ev.target.closest(".msg") : null;
      if (g && (ev.key === "Enter" || ev.key === " ")) { ev.preventDefault(); show(box, g); }
    });
    var failing = box.querySelector(".msg.fail");
    if (failing) { show(box, failing); }
  });
  document.querySelectorAll("[data-msg]").forEach(function (row) {
    row.addEventListener("click", function () {
      var g = select(row.getAttribute("data-msg"));
      if (g) { g.scrollIntoView({block: "center"}); }
    });
  });
  document.querySelectorAll("tr.test-row").forEach(function (row) {
    row.addEventListener("click", function () {
      var det = document.getElementById(row.getAttribute("data-target"));
      if (det) { det.open = true; det.scrollIntoView({block: "start"}); }
    });
  });
  var buttons = document.querySelectorAll(".filters button");
  buttons.forEach(function (b) {
    b.addEventListener("click", function () {
      var f = b.getAttribute("data-filter");
      buttons.forEach(function (x) { x.classList.toggle("on", x === b); });
      document.querySelectorAll("[data-verdict]").forEach(function (el) {
        var show = f === "all" || el.getAttribute("data-verdict") === f ||
          (f === "problems" && el.getAttribute("data-problem") === "1");
        el.classList.toggle("hidden", !show);
      });
    });
  });
  if (location.hash.length > 1) {
    var id = decodeURIComponent(location.hash.slice(1));
    var g = select(id);
    if (g) { g.scrollIntoView({block: "center"}); }
    else {
      var det = document.getElementById(id);
      if (det && det.tagName === "DETAILS") { det.open = true; det.scrollIntoView({block: "start"}); }
    }
  }
  document.body.setAttribute("data-ready", "1");
})();
"""
