// scratchformer's page script (sent in the page's <head> by blocks.launch_kwargs). Two jobs:
//
// 1. Links (window.sfLinks): the URL's query carries the open tab's settings. links.py wires each
//    tab's controls to write(); the "Copy link" buttons to copy(). Nothing is written before the page
//    has read its own link (start → the server applies it → opened), so a link is never overwritten
//    by the page's default views arriving.
// 2. Export: every plotly figure's toolbar gets "download as PNG" (2× scale), SVG, and the numbers it
//    draws as CSV and JSON, under a file name that says what the figure is (layout.meta.export, set
//    by the app; else the figure's title). The numbers are read from the figure itself (gd._fullData),
//    so a download holds exactly what is drawn.
(function () {
  "use strict";

  // ------------------------------------------------------------------------------------ links
  const links = {
    initialQuery: window.location.search,   // read before anything can rewrite the URL
    tabs: [],
    current: null,
    ready: false,

    url(spec, values) {
      const params = new URLSearchParams();
      params.set("tab", spec.tab);
      spec.names.forEach((name, i) => {
        let v = values[i];
        if (v === null || v === undefined || (typeof v === "number" && !Number.isFinite(v))) return;
        if (spec.kinds[i] === "bool") v = v ? "1" : "0";
        else if (Array.isArray(v)) v = v.join(",");
        params.set(name, String(v));
      });
      const u = new URL(window.location.href);
      u.search = params.toString();
      return u.toString();
    },

    write(spec, values, selecting) {
      if (selecting) this.current = spec.tab;
      if (!this.ready || this.current !== spec.tab) return [];
      window.history.replaceState(null, "", this.url(spec, values));
      return [];
    },

    copy(spec, values) {
      const url = this.url(spec, values);
      this.current = spec.tab;
      window.history.replaceState(null, "", url);
      if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(url).catch(() => {});
      return url;
    },

    start(tabs) {
      this.tabs = tabs;
      this.current = tabs[0];
      const button = document.getElementById("sf-apply-link");
      if (this.initialQuery && this.initialQuery.length > 1 && button) button.click();
      else this.ready = true;
    },

    opened() {
      const tab = new URLSearchParams(this.initialQuery).get("tab");
      this.current = this.tabs.includes(tab) ? tab : this.tabs[0];
      this.ready = true;
    },
  };
  window.sfLinks = links;

  // ----------------------------------------------------------------------------------- export
  function exportName(gd) {
    const layout = gd.layout || {};
    if (layout.meta && layout.meta.export) return String(layout.meta.export);
    const title = layout.title && (layout.title.text !== undefined ? layout.title.text : layout.title);
    const slug = String(title || "").toLowerCase().replace(/<[^>]*>/g, "").replace(/[^a-z0-9]+/g, "_")
      .replace(/^_+|_+$/g, "").slice(0, 60);
    return slug || "scratchformer_figure";
  }

  function plain(v) {
    if (ArrayBuffer.isView(v)) return Array.from(v, plain);
    if (Array.isArray(v)) return v.map(plain);
    if (typeof v === "number") return Number.isFinite(v) ? v : null;
    return v;
  }

  function axisTitle(axis) {
    if (!axis || !axis.title) return "";
    return String(axis.title.text !== undefined ? axis.title.text : axis.title);
  }

  // The numbers a figure draws: each trace's x, y, z and text as plotly holds them after drawing.
  function figureData(gd) {
    const layout = gd.layout || {};
    const title = layout.title && (layout.title.text !== undefined ? layout.title.text : layout.title);
    const traces = (gd._fullData || []).filter((t) => t.visible !== false).map((t, i) => {
      const out = { name: t.name || `trace ${i + 1}`, type: t.type };
      for (const key of ["x", "y", "z", "text", "customdata"]) {
        if (t[key] !== undefined && t[key] !== null && t[key] !== "") out[key] = plain(t[key]);
      }
      if (t.orientation) out.orientation = t.orientation;
      return out;
    });
    return { figure: exportName(gd), title: String(title || ""), x_axis: axisTitle(layout.xaxis),
             y_axis: axisTitle(layout.yaxis), traces };
  }

  function csvField(v) {
    if (v === null || v === undefined) return "";
    const s = String(v);
    return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  }

  // One row per drawn value: a heatmap cell (x = column label, y = row label, z = value) or a point /
  // bar (x, y); with its text and hover data (customdata) when the figure has them.
  function figureCsv(data) {
    const rows = [["trace", "type", "x", "y", "z", "text", "customdata"]];
    const cell = (v, r, c) => (Array.isArray(v) ? (Array.isArray(v[r]) ? v[r][c] : "") : "");
    const item = (v, j) => (Array.isArray(v) ? v[j] : (v === undefined ? "" : v));
    const scalar = (v) => (v !== null && typeof v === "object" ? JSON.stringify(v) : v);
    for (const t of data.traces) {
      if (Array.isArray(t.z) && Array.isArray(t.z[0])) {
        t.z.forEach((row, r) => row.forEach((value, c) => {
          rows.push([t.name, t.type, t.x ? t.x[c] : c, t.y ? t.y[r] : r, value, cell(t.text, r, c),
                     scalar(cell(t.customdata, r, c))]);
        }));
      } else {
        const n = Math.max(Array.isArray(t.x) ? t.x.length : 0, Array.isArray(t.y) ? t.y.length : 0);
        for (let j = 0; j < n; j++) {
          rows.push([t.name, t.type, item(t.x, j), item(t.y, j), "", item(t.text, j), scalar(item(t.customdata, j))]);
        }
      }
    }
    return rows.map((r) => r.map(csvField).join(",")).join("\n") + "\n";
  }

  function save(text, type, filename) {
    const a = document.createElement("a");
    a.href = URL.createObjectURL(new Blob([text], { type }));
    a.download = filename;
    document.body.appendChild(a);
    a.click();
    setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
  }

  const DATA_ICON = { width: 1000, height: 1000,
    path: "M150 50h500l200 200v700h-700zM200 100v800h600v-600h-200v-200zM300 450h400v60h-400zM300 600h400v60h-400zM300 750h400v60h-400z" };

  let buttons = null;   // made once: the same objects on every redraw, so plotly keeps its toolbar

  function exportConfig(Plotly, layout, config) {
    buttons = buttons || [
      { name: "sf-svg", title: "Download plot as SVG", icon: Plotly.Icons["camera-retro"],
        click: (gd) => Plotly.downloadImage(gd, { format: "svg", filename: exportName(gd) }) },
      { name: "sf-csv", title: "Download the numbers as CSV", icon: DATA_ICON,
        click: (gd) => save(figureCsv(figureData(gd)), "text/csv", exportName(gd) + ".csv") },
      { name: "sf-json", title: "Download the numbers as JSON", icon: Plotly.Icons.disk,
        click: (gd) => save(JSON.stringify(figureData(gd), null, 1), "application/json", exportName(gd) + ".json") },
    ];
    return Object.assign({}, config || {}, {
      displaylogo: false,
      toImageButtonOptions: { format: "png", scale: 2, filename: exportName({ layout: layout || {} }) },
      modeBarButtonsToAdd: buttons,
    });
  }

  function patch(Plotly) {
    if (!Plotly || Plotly.__sfExport) return;
    Plotly.__sfExport = true;
    for (const fn of ["react", "newPlot"]) {
      const original = Plotly[fn];
      Plotly[fn] = function (gd, data, layout, config) {
        if (Array.isArray(data)) config = exportConfig(Plotly, layout, config);
        return original.call(this, gd, data, layout, config);
      };
    }
  }
  window.sfFigureData = figureData;   // for tests: what the CSV / JSON buttons save
  window.sfFigureCsv = figureCsv;

  // Gradio loads plotly.js (4.6 MB) only when the first plot arrives, and parsing it holds the page
  // for about a second on a small machine. Load it now instead, while the server computes the page's
  // default views: the same file Gradio imports (blocks.py finds its name), so Gradio reuses it.
  if (window.sfPlotlyChunk) {
    const start = () => import(new URL(window.sfPlotlyChunk, document.baseURI).href).catch(() => {});
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
    else start();
  }

  // Gradio loads plotly.js on the first plot and sets window.Plotly: patch it the moment it appears.
  if (window.Plotly) patch(window.Plotly);
  else {
    let plotly;
    Object.defineProperty(window, "Plotly", {
      configurable: true, enumerable: true,
      get() { return plotly; },
      set(value) { plotly = value; patch(value); },
    });
  }
})();
