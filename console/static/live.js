// The live view: fetch /live/data every data-refresh-s seconds and feed the charts (no page reload).
(() => {
  const refreshMs = 1000 * Number(document.getElementById("live-script").dataset.refreshS || 10);
  const charts = {};

  function chart(id, type, stacked) {
    if (!charts[id]) {
      charts[id] = new Chart(document.getElementById(id), {
        type,
        data: { labels: [], datasets: [] },
        options: { animation: false, responsive: true,
                   scales: stacked ? { x: { stacked: true }, y: { stacked: true, max: 1 } } : {} },
      });
    }
    return charts[id];
  }

  function feed(c, labels, datasets) {
    c.data.labels = labels;
    c.data.datasets = datasets;
    c.update();
  }

  function shareDatasets(rows) {
    const minutes = [...new Set(rows.map((r) => r.minute))];
    const totals = {};
    for (const r of rows) totals[r.source + "\u0000" + r.minute] = (totals[r.source + "\u0000" + r.minute] || 0) + r.n;
    const keys = [...new Set(rows.map((r) => (r.source || "(none)") + " · " + r.label))];
    const datasets = keys.map((key) => ({ label: key, data: minutes.map(() => 0), stack: key.split(" · ")[0] }));
    for (const r of rows) {
      const d = datasets[keys.indexOf((r.source || "(none)") + " · " + r.label)];
      d.data[minutes.indexOf(r.minute)] = r.n / totals[r.source + "\u0000" + r.minute];
    }
    return [minutes, datasets];
  }

  async function refresh() {
    try {
      const response = await fetch("/live/data", { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (response.status === 401) { window.location = "/login"; return; }
      if (!response.ok) throw new Error(String(response.status));
      const d = await response.json();
      feed(chart("chart-rate", "line"), d.per_minute.map((m) => m.minute), [{ label: "messages", data: d.per_minute.map((m) => m.n) }]);
      feed(chart("chart-share", "bar", true), ...shareDatasets(d.label_share));
      feed(chart("chart-confidence", "bar"), d.confidence.map((b) => b.lower.toFixed(1)), [{ label: "predictions", data: d.confidence.map((b) => b.n) }]);
      feed(chart("chart-dead", "bar"), d.dead_letters.map((k) => k.kind), [{ label: "dead letters", data: d.dead_letters.map((k) => k.n) }]);
      document.getElementById("serving").textContent = d.serving.map((s) => `${s.kind || "(none)"} (${s.n})`).join(", ") || "no predictions";
      document.getElementById("active-version").textContent = d.active_version || "none";
      document.getElementById("consumer-lag").textContent = d.consumer_lag === null ? "not reachable" : String(d.consumer_lag);
      document.getElementById("updated").textContent = new Date().toLocaleTimeString();
    } catch (e) {
      document.getElementById("updated").textContent = "refresh failed (" + e.message + "), retrying";
    }
  }

  refresh();
  setInterval(refresh, refreshMs);
})();
