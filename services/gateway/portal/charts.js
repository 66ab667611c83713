/* Inline SVG charts drawn by hand (no library): a line chart for trends and a horizontal
   bar chart for breakdowns. Every text goes in through textContent (never markup). */
(function () {
  "use strict";

  const NS = "http://www.w3.org/2000/svg";

  function s(tag, attrs, text) {
    const el = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== null && v !== undefined) el.setAttribute(k, String(v));
    }
    if (text !== undefined && text !== null) el.textContent = String(text);
    return el;
  }

  function niceMax(value) {
    if (!(value > 0)) return 1;
    const exp = Math.pow(10, Math.floor(Math.log10(value)));
    for (const step of [1, 2, 2.5, 5, 10]) {
      if (step * exp >= value) return step * exp;
    }
    return 10 * exp;
  }

  function fmt(value) {
    if (value === null || value === undefined) return "—";
    return Number.isInteger(value) ? String(value) : value.toFixed(2);
  }

  /* points: [{label, values: {key: number|null}}]; series: [{key, label, cls}].
     Gaps (null) break the line. Returns an <svg>. */
  function lineChart({ points, series, title, yMax, width = 640, height = 240 }) {
    const pad = { l: 44, r: 12, t: 16, b: 42 };
    const w = width - pad.l - pad.r;
    const h = height - pad.t - pad.b;
    const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart line-chart",
                           role: "img", "aria-label": title || "" });
    if (title) svg.append(s("title", {}, title));
    let max = yMax;
    if (max === undefined) {
      max = 0;
      for (const p of points) for (const se of series) {
        const v = p.values[se.key];
        if (typeof v === "number" && v > max) max = v;
      }
      max = niceMax(max);
    }
    const x = (i) => pad.l + (points.length <= 1 ? w / 2 : (i * w) / (points.length - 1));
    const y = (v) => pad.t + h - (v / max) * h;
    const grid = s("g", { class: "grid" });
    for (let k = 0; k <= 4; k++) {
      const value = (max * k) / 4;
      grid.append(s("line", { x1: pad.l, x2: pad.l + w, y1: y(value), y2: y(value) }));
      grid.append(s("text", { x: pad.l - 6, y: y(value) + 4, "text-anchor": "end", class: "tick" }, fmt(value)));
    }
    svg.append(grid);
    const every = Math.max(1, Math.ceil(points.length / 8));
    const lastTick = points.length - 1 - ((points.length - 1) % every);
    points.forEach((p, i) => {
      // every `every`-th label, and the last one when it does not crowd the one before
      if (i % every === 0 || (i === points.length - 1 && i - lastTick >= every / 2)) {
        svg.append(s("text", { x: x(i), y: pad.t + h + 16, "text-anchor": "middle", class: "tick" }, p.label));
      }
    });
    series.forEach((se) => {
      const g = s("g", { class: "series " + (se.cls || ""), "data-series": se.key });
      let path = "";
      let pen = false;
      points.forEach((p, i) => {
        const v = p.values[se.key];
        if (typeof v !== "number") { pen = false; return; }
        path += (pen ? "L" : "M") + x(i).toFixed(1) + " " + y(v).toFixed(1) + " ";
        pen = true;
        const dot = s("circle", { cx: x(i), cy: y(v), r: 3 });
        dot.append(s("title", {}, `${se.label} · ${p.label}: ${fmt(v)}`));
        g.append(dot);
      });
      if (path) g.prepend(s("path", { d: path.trim(), fill: "none" }));
      svg.append(g);
    });
    const legend = s("g", { class: "legend" });
    let lx = pad.l;
    series.forEach((se) => {
      const item = s("g", { class: "series " + (se.cls || "") });
      item.append(s("rect", { x: lx, y: height - 14, width: 10, height: 10 }));
      item.append(s("text", { x: lx + 14, y: height - 5, class: "legend-text" }, se.label));
      legend.append(item);
      lx += 28 + Array.from(se.label).reduce((w, ch) => w + (ch.charCodeAt(0) > 0x2e80 ? 11 : 6), 0);
    });
    svg.append(legend);
    return svg;
  }

  /* items: [{label, value}] drawn as horizontal bars. */
  function barChart({ items, title, width = 420, cls = "" }) {
    const row = 24;
    const labelW = 120;
    const height = Math.max(1, items.length) * row + 12;
    const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart bar-chart " + cls,
                           role: "img", "aria-label": title || "" });
    if (title) svg.append(s("title", {}, title));
    const max = niceMax(Math.max(0, ...items.map((i) => i.value || 0)));
    const w = width - labelW - 50;
    items.forEach((item, i) => {
      const y0 = 6 + i * row;
      const g = s("g", { class: "bar" });
      g.append(s("text", { x: labelW - 6, y: y0 + 15, "text-anchor": "end", class: "tick" }, item.label));
      const len = Math.max(0, ((item.value || 0) / max) * w);
      const rect = s("rect", { x: labelW, y: y0 + 3, width: len.toFixed(1), height: row - 8, rx: 2 });
      rect.append(s("title", {}, `${item.label}: ${fmt(item.value)}`));
      g.append(rect);
      g.append(s("text", { x: labelW + len + 6, y: y0 + 15, class: "value" }, fmt(item.value)));
      svg.append(g);
    });
    return svg;
  }

  window.HCRM_CHARTS = { lineChart, barChart };
})();
