// vaekit latent explorer: runs the model's decoder in the page.
// The model (decoder config and float32 weights) is the JSON in #vaekit-model.
"use strict";
(function () {
  const model = JSON.parse(document.getElementById("vaekit-model").textContent);
  const errorBox = document.getElementById("error");

  // ---- weights -------------------------------------------------------------
  function base64ToFloat32(b64) {
    const bin = atob(b64);
    const view = new DataView(new ArrayBuffer(bin.length));
    for (let i = 0; i < bin.length; i++) view.setUint8(i, bin.charCodeAt(i));
    const out = new Float32Array(bin.length / 4);
    for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(4 * i, true); // little-endian
    return out;
  }
  const weights = {};
  for (const [name, t] of Object.entries(model.weights)) {
    weights[name] = { shape: t.shape, data: base64ToFloat32(t.data) };
  }
  function param(name, shape) {
    const t = weights[name];
    if (!t) throw new Error("missing tensor " + name);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new Error(name + ": shape [" + t.shape + "], expected [" + shape + "]");
    }
    return t.data;
  }

  // ---- layers (activations are Float64Array, NCHW without the batch) -------
  function activation(a) {
    if (a === "identity") return (x) => x;
    if (a === "relu") return (x) => (x > 0 ? x : 0);
    if (a === "sigmoid") return (x) => 1 / (1 + Math.exp(-x));
    if (a === "tanh") return Math.tanh;
    if (a && typeof a === "object" && "leaky_relu" in a) {
      const s = a.leaky_relu;
      return s <= 1 ? (x) => Math.max(x, s * x) : (x) => Math.min(x, s * x);
    }
    throw new Error("unknown activation " + JSON.stringify(a));
  }
  function applyInPlace(xs, f) {
    for (let i = 0; i < xs.length; i++) xs[i] = f(xs[i]);
    return xs;
  }
  // y = W x + b with W [out, in] (PyTorch layout).
  function linear(prefix, x, inDim, outDim) {
    const w = param(prefix + ".weight", [outDim, inDim]);
    const b = param(prefix + ".bias", [outDim]);
    const y = new Float64Array(outDim);
    for (let o = 0; o < outDim; o++) {
      let s = b[o];
      const row = o * inDim;
      for (let i = 0; i < inDim; i++) s += w[row + i] * x[i];
      y[o] = s;
    }
    return y;
  }
  // Cross-correlation, weight [out, in, k, k], zero padding.
  function conv2d(prefix, x, outC, k, stride, pad) {
    const w = param(prefix + ".weight", [outC, x.c, k, k]);
    const b = param(prefix + ".bias", [outC]);
    const ho = Math.floor((x.h + 2 * pad - k) / stride) + 1;
    const wo = Math.floor((x.w + 2 * pad - k) / stride) + 1;
    const y = new Float64Array(outC * ho * wo);
    for (let o = 0; o < outC; o++) {
      for (let oy = 0; oy < ho; oy++) {
        for (let ox = 0; ox < wo; ox++) {
          let s = b[o];
          for (let i = 0; i < x.c; i++) {
            for (let ky = 0; ky < k; ky++) {
              const iy = oy * stride - pad + ky;
              if (iy < 0 || iy >= x.h) continue;
              for (let kx = 0; kx < k; kx++) {
                const ix = ox * stride - pad + kx;
                if (ix < 0 || ix >= x.w) continue;
                s += w[((o * x.c + i) * k + ky) * k + kx] * x.data[(i * x.h + iy) * x.w + ix];
              }
            }
          }
          y[(o * ho + oy) * wo + ox] = s;
        }
      }
    }
    return { c: outC, h: ho, w: wo, data: y };
  }
  // Transposed convolution, weight [in, out, k, k] (PyTorch's ConvTranspose2d).
  function convTranspose2d(prefix, x, outC, k, stride, pad, outPad) {
    const w = param(prefix + ".weight", [x.c, outC, k, k]);
    const b = param(prefix + ".bias", [outC]);
    const ho = (x.h - 1) * stride - 2 * pad + k + outPad;
    const wo = (x.w - 1) * stride - 2 * pad + k + outPad;
    const y = new Float64Array(outC * ho * wo);
    for (let o = 0; o < outC; o++) y.fill(b[o], o * ho * wo, (o + 1) * ho * wo);
    for (let i = 0; i < x.c; i++) {
      for (let iy = 0; iy < x.h; iy++) {
        for (let ix = 0; ix < x.w; ix++) {
          const v = x.data[(i * x.h + iy) * x.w + ix];
          if (v === 0) continue;
          for (let o = 0; o < outC; o++) {
            for (let ky = 0; ky < k; ky++) {
              const oy = iy * stride - pad + ky;
              if (oy < 0 || oy >= ho) continue;
              for (let kx = 0; kx < k; kx++) {
                const ox = ix * stride - pad + kx;
                if (ox < 0 || ox >= wo) continue;
                y[(o * ho + oy) * wo + ox] += v * w[((i * outC + o) * k + ky) * k + kx];
              }
            }
          }
        }
      }
    }
    return { c: outC, h: ho, w: wo, data: y };
  }
  function upsampleNearest(x, s) {
    const ho = x.h * s, wo = x.w * s;
    const y = new Float64Array(x.c * ho * wo);
    for (let c = 0; c < x.c; c++)
      for (let oy = 0; oy < ho; oy++)
        for (let ox = 0; ox < wo; ox++)
          y[(c * ho + oy) * wo + ox] = x.data[(c * x.h + Math.floor(oy / s)) * x.w + Math.floor(ox / s)];
    return { c: x.c, h: ho, w: wo, data: y };
  }
  // Batch norm in evaluation mode: running statistics, eps = 1e-5.
  function batchNorm(prefix, x) {
    const g = param(prefix + ".weight", [x.c]);
    const b = param(prefix + ".bias", [x.c]);
    const m = param(prefix + ".running_mean", [x.c]);
    const v = param(prefix + ".running_var", [x.c]);
    const n = x.h * x.w;
    for (let c = 0; c < x.c; c++) {
      const scale = g[c] / Math.sqrt(v[c] + 1e-5);
      for (let j = c * n; j < (c + 1) * n; j++) x.data[j] = (x.data[j] - m[c]) * scale + b[c];
    }
    return x;
  }

  // ---- decoders --------------------------------------------------------------
  const dec = model.decoder;
  const sigmoid = activation("sigmoid");
  function denseDecoder(input) {
    let h = input, width = dec.input_dim;
    const act = activation(dec.activation);
    dec.hidden.forEach((units, i) => {
      h = applyInPlace(linear("decoder.hidden." + i, h, width, units), act);
      width = units;
    });
    const o = dec.output;
    const out = linear("decoder.out", h, width, o.channels * o.height * o.width);
    if (dec.output_kind === "probabilities") applyInPlace(out, sigmoid);
    return out;
  }
  function convDecoder(input) {
    const s = dec.start;
    const h0 = applyInPlace(
      linear("decoder.fc", input, dec.input_dim, s.channels * s.height * s.width),
      activation(dec.fc_activation));
    let x = { c: s.channels, h: s.height, w: s.width, data: h0 };
    dec.blocks.forEach((b, i) => {
      const prefix = "decoder.blocks." + i;
      const up = b.upsampling;
      if (up === "conv") {
        x = conv2d(prefix + ".conv", x, b.out_channels, b.kernel, b.stride, b.padding);
      } else if (up && up.nearest_conv) {
        x = upsampleNearest(x, up.nearest_conv.scale);
        x = conv2d(prefix + ".conv", x, b.out_channels, b.kernel, b.stride, b.padding);
      } else if (up && up.transposed) {
        x = convTranspose2d(prefix + ".conv", x, b.out_channels, b.kernel, b.stride, b.padding,
          up.transposed.output_padding);
      } else {
        throw new Error("unknown up-sampling " + JSON.stringify(up));
      }
      if (b.norm === "batch") x = batchNorm(prefix + ".bn", x);
      applyInPlace(x.data, activation(b.activation));
    });
    if (dec.output_kind === "probabilities") applyInPlace(x.data, sigmoid);
    return x.data;
  }
  // Decoder output to pixels in [0, 1] (vaekit's OutputKind::to_pixels).
  function toPixels(out) {
    const px = new Float32Array(out.length);
    for (let i = 0; i < out.length; i++) {
      const v = out[i];
      px[i] = dec.output_kind === "logits" ? sigmoid(v)
        : dec.output_kind === "linear" ? Math.min(1, Math.max(0, v)) : v;
    }
    return px;
  }

  const digitSelect = document.getElementById("digit");
  /** Decodes the code (z1, z2) — with the selected digit for a digit-conditioned
   *  model — to a Float32Array of pixels [c, h, w] in [0, 1]. */
  function vaekitDecode(z1, z2) {
    const input = new Float64Array(dec.input_dim);
    input[0] = z1;
    input[1] = z2;
    if (model.classes > 0) input[2 + Number(digitSelect.value)] = 1;
    return toPixels(dec.type === "conv" ? convDecoder(input) : denseDecoder(input));
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
  const imageCtx = image.getContext("2d");
  const shape = dec.output;
  const small = document.createElement("canvas");
  small.width = shape.width;
  small.height = shape.height;
  function drawImage(px) {
    const { channels: c, height: h, width: w } = shape;
    const ctx = small.getContext("2d");
    const img = ctx.createImageData(w, h);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const p = y * w + x;
        for (let k = 0; k < 3; k++) {
          const v = px[(c === 3 ? k : 0) * h * w + p];
          img.data[4 * p + k] = Math.round(Math.min(1, Math.max(0, v)) * 255);
        }
        img.data[4 * p + 3] = 255;
      }
    }
    ctx.putImageData(img, 0, 0);
    imageCtx.imageSmoothingEnabled = false;
    imageCtx.drawImage(small, 0, 0, image.width, image.height);
  }

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
