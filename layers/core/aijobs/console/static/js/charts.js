// Charts of days (uPlot, vendored: window.uPlot), each with the table of the points it draws beside it: for the
// keyboard and screen readers, and what the browser tests compare with the API's answer.

import { h } from "./ui.js";

const COLORS = ["#0b5cad", "#1e6b34", "#7a3ea1", "#b35c00", "#00707a", "#5b6673"];

export function dayStart(day) {
  return Date.parse(`${day}T00:00:00Z`) / 1000;
}

const isPower = (value) => Math.abs(Math.log10(value) - Math.round(Math.log10(value))) < 1e-9;

function dayOf(seconds) {
  return new Date(seconds * 1000).toISOString().slice(0, 10);
}

// id: names the figure and its table; days: ["YYYY-MM-DD"]; series: [{label, values, color?, dash?, show?}];
// format: a value for people; log: a logarithmic y axis (zeros are not drawn on it, the table has them).
export function dayChart(container, { id, title, days, series, format = String, log = false }) {
  const plot = h("div", { class: "plot", id: `${id}-plot`, role: "img",
                          "aria-label": `${title}: chart; its data is in the table below` });
  const rows = days.map((day, index) => h("tr", {}, h("th", { scope: "row" }, day),
    series.map((s) => h("td", { class: "num", dataset: { series: s.label, value: s.values[index] } },
      format(s.values[index])))));
  const data = h("table", { id: `${id}-table`, class: "chart-data" },
    h("caption", { class: "muted" }, `${title}, by UTC day`),
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Day"),
      series.map((s) => h("th", { scope: "col", class: "num" }, s.label)))),
    h("tbody", {}, rows));
  const figure = h("figure", { class: "chart", id },
    h("figcaption", {}, title), plot, h("details", {}, h("summary", {}, `Data of "${title}"`), data));
  container.append(figure);

  const xs = days.map(dayStart);
  const options = {
    width: Math.max(320, Math.min(container.clientWidth || 800, 1100)),
    height: 240,
    tzDate: (seconds) => window.uPlot.tzDate(new Date(seconds * 1000), "Etc/UTC"),
    scales: { x: { time: true }, y: log ? { distr: 3, log: 10 } : { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] } },
    series: [
      { label: "Day", value: (u, v) => (v === null ? "—" : dayOf(v)) },
      ...series.map((s, index) => ({
        label: s.label, stroke: s.color || COLORS[index % COLORS.length], width: 2, dash: s.dash,
        show: s.show !== false, points: { show: !s.dash, size: 6 },
        value: (u, v) => (v === null || v === undefined ? "—" : format(v)),
      })),
    ],
    axes: [
      { splits: () => xs, values: (u, ticks) => ticks.map((t) => dayOf(t).slice(5)) },
      // a log axis ticks 1 to 9 of each power of ten: only the powers are named
      { size: 80, values: (u, ticks) => ticks.map((t) => (!log || isPower(t) ? format(t) : "")) },
    ],
  };
  const plotted = series.map((s) => s.values.map((v) => (log && !(v > 0) ? null : v)));
  return new window.uPlot(options, [xs, ...plotted], plot);
}
