// vaekit latent explorer: runs the model's decoder in the page (decoder.js).
// The model (decoder config and float32 weights) is the JSON in #vaekit-model.
(function () {
  const model = JSON.parse(document.getElementById("vaekit-model").textContent);
  const errorBox = document.getElementById("error");

  const decoder = vaekitDecoder(model);

  const digitSelect = document.getElementById("digit");
  /** Decodes the code (z1, z2) — with the selected digit for a digit-conditioned
   *  model — to a Float32Array of pixels [c, h, w] in [0, 1]. */
  function vaekitDecode(z1, z2) {
    const input = new Float64Array(decoder.inputDim);
    input[0] = z1;
    input[1] = z2;
    if (model.classes > 0) input[2 + Number(digitSelect.value)] = 1;
    return decoder.decode(input);
  }
  window.vaekitDecode = vaekitDecode;

  // ---- page --------------------------------------------------------------------
  const sliders = [document.getElementById("z1"), document.getElementById("z2")];
  const outputs = [document.getElementById("z1-value"), document.getElementById("z2-value")];
  model.range.forEach(([lo, hi], i) => {
    sliders[i].min = lo.toFixed(2);
    sliders[i].max = hi.toFixed(2);
    sliders[i].step = "0.01";
    sliders[i].value = (Math.round(50 * (lo + hi)) / 100).toFixed(2);
  });
  if (model.classes > 0) {
    document.getElementById("digit-row").hidden = false;
    for (let d = 0; d < model.classes; d++) digitSelect.add(new Option(String(d), String(d)));
  }

  const image = document.getElementById("image");
  const shape = decoder.shape;
  const drawImage = (px) => vaekitDrawPixels(image, shape, px);

  // Scatter: the canvas maps exactly the sliders' box.
  const TAB10 = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
  const scatter = document.getElementById("scatter");
  const sctx = scatter.getContext("2d");
  const M = { left: 44, right: 62, top: 10, bottom: 36 };
  const plotW = scatter.width - M.left - M.right, plotH = scatter.height - M.top - M.bottom;
  const [[x0, x1], [y0, y1]] = model.range;
  const toCanvas = (z1, z2) => [M.left + (z1 - x0) / (x1 - x0) * plotW,
    M.top + (y1 - z2) / (y1 - y0) * plotH];
  const toCode = (px, py) => [x0 + (px - M.left) / plotW * (x1 - x0),
    y1 - (py - M.top) / plotH * (y1 - y0)];
  const background = document.createElement("canvas");
  background.width = scatter.width;
  background.height = scatter.height;
  (function drawBackground() {
    const c = background.getContext("2d");
    c.fillStyle = "#fff";
    c.fillRect(0, 0, background.width, background.height);
    c.save();
    c.beginPath();
    c.rect(M.left, M.top, plotW, plotH);
    c.clip();
    if (model.scatter) {
      const { points, labels } = model.scatter;
      for (let i = 0; i < labels.length; i++) {
        const [px, py] = toCanvas(points[2 * i], points[2 * i + 1]);
        c.fillStyle = TAB10[labels[i] % 10];
        c.globalAlpha = 0.75;
        c.fillRect(px - 1.5, py - 1.5, 3, 3);
      }
    }
    c.restore();
    c.globalAlpha = 1;
    c.strokeStyle = "#333";
    c.strokeRect(M.left + 0.5, M.top + 0.5, plotW, plotH);
    c.fillStyle = "#333";
    c.font = "11px sans-serif";
    c.textAlign = "center";
    for (const t of [x0, (x0 + x1) / 2, x1]) {
      const [px] = toCanvas(t, y0);
      c.fillText(t.toFixed(2), px, M.top + plotH + 14);
    }
    c.fillText("z1", M.left + plotW / 2, M.top + plotH + 30);
    c.textAlign = "right";
    for (const t of [y0, (y0 + y1) / 2, y1]) {
      const [, py] = toCanvas(x0, t);
      c.fillText(t.toFixed(2), M.left - 4, py + 4);
    }
    c.fillText("z2", M.left - 24, M.top + plotH / 2 - 14);
    if (model.scatter) {
      const present = [...new Set(model.scatter.labels)].sort((a, b) => a - b);
      c.textAlign = "left";
      present.forEach((d, row) => {
        const y = M.top + 12 + 18 * row;
        c.fillStyle = TAB10[d % 10];
        c.beginPath();
        c.arc(scatter.width - M.right + 16, y - 4, 5, 0, 2 * Math.PI);
        c.fill();
        c.fillStyle = "#333";
        c.fillText(String(d), scatter.width - M.right + 26, y);
      });
    }
  })();
  function drawScatter(z1, z2) {
    sctx.drawImage(background, 0, 0);
    const [px, py] = toCanvas(z1, z2);
    sctx.strokeStyle = "#000";
    sctx.lineWidth = 1;
    sctx.beginPath();
    sctx.moveTo(px, M.top);
    sctx.lineTo(px, M.top + plotH);
    sctx.moveTo(M.left, py);
    sctx.lineTo(M.left + plotW, py);
    sctx.stroke();
    sctx.lineWidth = 2.5;
    sctx.beginPath();
    sctx.arc(px, py, 7, 0, 2 * Math.PI);
    sctx.stroke();
  }

  function update() {
    const z1 = Number(sliders[0].value), z2 = Number(sliders[1].value);
    outputs[0].textContent = z1.toFixed(2);
    outputs[1].textContent = z2.toFixed(2);
    try {
      const px = vaekitDecode(z1, z2);
      window.vaekitLastPixels = px;
      drawImage(px);
      errorBox.textContent = "";
    } catch (e) {
      errorBox.textContent = "decoder failed: " + (e && e.message ? e.message : e);
    }
    drawScatter(z1, z2);
  }
  for (const s of sliders) s.addEventListener("input", update);
  digitSelect.addEventListener("change", update);
  scatter.addEventListener("click", (ev) => {
    const rect = scatter.getBoundingClientRect();
    const [z1, z2] = toCode((ev.clientX - rect.left) * scatter.width / rect.width,
      (ev.clientY - rect.top) * scatter.height / rect.height);
    sliders[0].value = z1.toFixed(2); // the browser clamps to [min, max] and snaps to the step
    sliders[1].value = z2.toFixed(2);
    sliders[0].dispatchEvent(new Event("input", { bubbles: true }));
  });
  update();

  // ---- self-test: ?test=1[&z1=..&z2=..&digit=..&click=a,b] ---------------------
  const params = new URLSearchParams(window.location.search);
  if (params.get("test") === "1") {
    const result = {};
    try {
      if (params.has("digit") && model.classes > 0) digitSelect.value = params.get("digit");
      sliders[0].value = params.get("z1") ?? "0.5";
      sliders[1].value = params.get("z2") ?? "-0.75";
      sliders[0].dispatchEvent(new Event("input", { bubbles: true }));
      result.z = sliders.map((s) => Number(s.value));
      result.shape = [shape.channels, shape.height, shape.width];
      result.pixels = Array.from(window.vaekitLastPixels);
      result.direct = Array.from(vaekitDecode(result.z[0], result.z[1]));
      if (params.has("click")) {
        const [a, b] = params.get("click").split(",").map(Number);
        const [px, py] = toCanvas(a, b);
        const rect = scatter.getBoundingClientRect();
        scatter.dispatchEvent(new MouseEvent("click", {
          bubbles: true,
          clientX: rect.left + px * rect.width / scatter.width,
          clientY: rect.top + py * rect.height / scatter.height,
        }));
        result.after_click = sliders.map((s) => Number(s.value));
        result.click_pixels = Array.from(window.vaekitLastPixels);
      }
      result.error = errorBox.textContent;
    } catch (e) {
      result.error = String(e && e.stack ? e.stack : e);
    }
    document.getElementById("result").textContent = JSON.stringify(result);
  }
})();
