() => {
  const problems = [];
  const rgb = (text) => (text.match(/[\d.]+/g) || []).map(Number);
  const luminance = ([r, g, b]) => {
    const lin = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
  };
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0)) { return c.slice(0, 3); }
    }
    return [255, 255, 255];
  };
  if (!document.documentElement.lang) { problems.push("no lang"); }
  if (document.querySelectorAll("h1").length !== 1) { problems.push("not one h1"); }
  let level = 0;
  for (const h of document.querySelectorAll("h1, h2, h3, h4")) {
    const n = Number(h.tagName[1]);
    if (n > level + 1) { problems.push("heading jumps to " + h.tagName + ": " + h.textContent); }
    level = n;
  }
  for (const el of document.querySelectorAll("input:not([type=hidden]), select, textarea")) {
    if (!(el.labels && el.labels.length) && !el.getAttribute("aria-label")) {
      problems.push("unlabelled control " + (el.id || el.name));
    }
  }
  for (const el of document.querySelectorAll("button, a[href]")) {
    if (!el.textContent.trim() && !el.getAttribute("aria-label")) { problems.push("nameless " + el.outerHTML.slice(0, 80)); }
  }
  for (const t of document.querySelectorAll("table")) {
    if (!t.querySelector("th")) { problems.push("table without headers"); }
  }
  for (const svg of document.querySelectorAll("svg")) {
    if (svg.getAttribute("role") !== "img" || !svg.querySelector("title")) { problems.push("svg without a name"); }
  }
  for (const el of document.querySelectorAll("body *:not(svg):not(svg *)")) {
    const own = Array.from(el.childNodes).some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own || el.getClientRects().length === 0) { continue; }
    const fg = luminance(rgb(getComputedStyle(el).color)), bg = luminance(background(el));
    const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
    if (ratio < 4.5) { problems.push("contrast " + ratio.toFixed(2) + " for " + el.tagName + ": " + el.textContent.trim().slice(0, 40)); }
  }
  return problems;
}
