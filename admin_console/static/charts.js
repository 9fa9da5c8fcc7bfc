/* 数据看板: Apache ECharts over the data the page embeds (application/json), refreshed live. */
(function () {
  "use strict";
  var charts = {};
  var tooltip = { trigger: "axis", renderMode: "richText" };

  function options(name, d) {
    var grid = { left: 48, right: 16, top: 36, bottom: 56, containLabel: true };
    if (name === "days") {
      return { aria: { enabled: true }, tooltip: tooltip, legend: { top: 0 }, grid: grid,
        xAxis: { type: "category", data: d.days }, yAxis: { type: "value" },
        series: [{ name: "提交", type: "line", data: d.day_points },
                 { name: "投票", type: "line", data: d.day_votes }] };
    }
    if (name === "categories" || name === "districts") {
      var labels = name === "categories" ? d.categories : d.districts;
      var points = name === "categories" ? d.category_points : d.district_points;
      var votes = name === "categories" ? d.category_votes : d.district_votes;
      return { aria: { enabled: true }, tooltip: tooltip, legend: { top: 0 }, grid: grid,
        xAxis: { type: "category", data: labels, axisLabel: { rotate: 30 } },
        yAxis: [{ type: "value", name: "痛点" }, { type: "value", name: "票数" }],
        series: [{ name: "痛点", type: "bar", data: points },
                 { name: "票数", type: "bar", yAxisIndex: 1, data: votes }] };
    }
    if (name === "audiences") {
      return { aria: { enabled: true }, tooltip: { trigger: "item", renderMode: "richText" },
        legend: { top: 0 },
        series: [{ name: "投票", type: "pie", radius: ["35%", "65%"], data: d.audiences,
                   label: { formatter: "{b}：{c}（{d}%）" } }] };
    }
    if (name === "map") {
      var m = d.map;
      return { aria: { enabled: true }, tooltip: { trigger: "item", renderMode: "richText",
          formatter: function (p) { return p.seriesName + "：" + p.value[2]; } },
        legend: { top: 0 }, grid: { left: 56, right: 24, top: 40, bottom: 40 },
        xAxis: { type: "value", name: "经度", scale: true },
        yAxis: { type: "value", name: "纬度", scale: true },
        series: [
          { name: "场所", type: "scatter", symbolSize: 3, data: m.venues, itemStyle: { color: "#8aa1b8" } },
          { name: "痛点", type: "scatter", symbolSize: 8, data: m.pain_points, itemStyle: { color: "#c0392b" } },
          { name: "区县", type: "scatter", symbolSize: 1, data: m.districts,
            label: { show: true, formatter: function (p) { return p.value[2]; }, color: "#1f2328",
                     fontWeight: "bold" } }
        ] };
    }
    return null;
  }

  function draw(d) {
    var nodes = document.querySelectorAll("[data-chart]");
    Array.prototype.forEach.call(nodes, function (node) {
      var name = node.getAttribute("data-chart");
      var chart = charts[name] || (charts[name] = window.echarts.init(node, null, { renderer: "canvas" }));
      var option = options(name, d);
      if (option) { chart.setOption(option, true); }
    });
    document.documentElement.setAttribute("data-charts-ready", "1");
  }

  function start() {
    var holder = document.getElementById("dashboard");
    var embedded = document.getElementById("dashboard-data");
    if (!holder || !embedded || !window.echarts) { return; }
    draw(JSON.parse(embedded.textContent));
    var seconds = parseInt(holder.getAttribute("data-refresh") || "0", 10);
    if (seconds > 0) {
      window.setInterval(function () {
        fetch(holder.getAttribute("data-source"), { credentials: "same-origin" })
          .then(function (r) { return r.ok ? r.json() : null; })
          .then(function (d) { if (d && d.days) { draw(d); } })
          .catch(function () { /* try again next time */ });
      }, seconds * 1000);
    }
    window.addEventListener("resize", function () {
      Object.keys(charts).forEach(function (k) { charts[k].resize(); });
    });
  }

  /* Generic line chart (parking availability): data in <script type="application/json" data-line>. */
  function lines() {
    var blocks = document.querySelectorAll("script[data-line]");
    Array.prototype.forEach.call(blocks, function (block) {
      var node = document.getElementById(block.getAttribute("data-line"));
      if (!node || !window.echarts) { return; }
      var d = JSON.parse(block.textContent);
      var chart = window.echarts.init(node);
      chart.setOption({ aria: { enabled: true }, tooltip: tooltip, grid: { left: 48, right: 16, top: 36, bottom: 40 },
        xAxis: { type: "category", data: d.labels }, yAxis: { type: "value", name: d.unit || "", max: d.max || null },
        series: [{ name: d.name, type: "line", step: "end", data: d.values, areaStyle: {} }] });
    });
    document.documentElement.setAttribute("data-charts-ready", "1");
  }

  document.addEventListener("DOMContentLoaded", function () { start(); lines(); });
})();
