// vaekit code explorer: the codes of a VQ-VAE or a Gumbel-softmax VAE as
// cells; a click changes one, and the decoder (decoder.js) runs again.
// The model (decoder config, float32 weights, codes) is the JSON in #vaekit-model.
(function () {
  const model = JSON.parse(document.getElementById("vaekit-model").textContent);
  const errorBox = document.getElementById("error");
  const decoder = vaekitDecoder(model);
  const space = model.codes;
  const K = space.codes, cells = model.cells;
  const [rows, cols] = space.grid;
  const codebook = space.kind === "codebook" ? vaekitFloat32(space.codebook) : null;

  /** The decoder's input of `codes` (one per cell): each cell's code vector
   *  in a map [D, h, w] flattened (VqVae::codes_of), or the variables'
   *  one-hot vectors [N, K] flattened (GumbelVae::encode). */
  function decoderInput(codes) {
    if (codes.length !== cells) throw new Error(codes.length + " codes for " + cells + " cells");
    const input = new Float64Array(decoder.inputDim);
    codes.forEach((k, cell) => {
      if (!(Number.isInteger(k) && k >= 0 && k < K)) throw new Error("code " + k + " out of range 0.." + K);
      if (codebook) {
        const D = space.code_dim;
        for (let d = 0; d < D; d++) input[d * cells + cell] = codebook[k * D + d];
      } else {
        input[cell * K + k] = 1;
      }
    });
    return input;
  }
  /** Decodes codes (one per cell, row-major) to a Float32Array of pixels
   *  [c, h, w] in [0, 1]. */
  function vaekitDecodeCodes(codes) {
    return decoder.decode(decoderInput(codes));
  }
  window.vaekitDecodeCodes = vaekitDecodeCodes;

  // ---- page --------------------------------------------------------------------
  // A colour per code: hues a golden angle apart, light enough for black text.
  const colour = (k) => "hsl(" + ((k * 137.508) % 360).toFixed(1) + ", 70%, " + (62 + 14 * (k % 2)) + "%)";
  let codes = model.start.slice();
  let chosen = 0;

  const image = document.getElementById("image");
  const grid = document.getElementById("codes");
  const gctx = grid.getContext("2d");
  const cell = Math.min(48, Math.floor(336 / Math.max(rows, cols)));
  grid.width = cols * cell + 1;
  grid.height = rows * cell + 1;
  document.getElementById("codes-title").textContent = space.kind === "codebook"
    ? "Codes (" + rows + "×" + cols + " grid of " + K + ")"
    : "Variables (" + cells + " of " + K + " classes)";
  function drawGrid() {
    gctx.fillStyle = "#fff";
    gctx.fillRect(0, 0, grid.width, grid.height);
    gctx.font = Math.max(9, Math.floor(cell / 2.6)) + "px sans-serif";
    gctx.textAlign = "center";
    gctx.textBaseline = "middle";
    codes.forEach((k, i) => {
      const x = (i % cols) * cell, y = Math.floor(i / cols) * cell;
      gctx.fillStyle = colour(k);
      gctx.fillRect(x, y, cell, cell);
      gctx.strokeStyle = "#fff";
      gctx.strokeRect(x + 0.5, y + 0.5, cell, cell);
      gctx.fillStyle = "#000";
      gctx.fillText(String(k), x + cell / 2, y + cell / 2 + 1);
    });
  }

  const palette = document.getElementById("palette");
  const pctx = palette.getContext("2d");
  const swatch = K > 128 ? 12 : 20, perRow = 16;
  palette.width = Math.min(K, perRow) * swatch;
  palette.height = Math.ceil(K / perRow) * swatch;
  const codeInput = document.getElementById("code");
  codeInput.min = "0";
  codeInput.max = String(K - 1);
  function drawPalette() {
    pctx.clearRect(0, 0, palette.width, palette.height);
    pctx.font = "9px sans-serif";
    pctx.textAlign = "center";
    pctx.textBaseline = "middle";
    for (let k = 0; k < K; k++) {
      const x = (k % perRow) * swatch, y = Math.floor(k / perRow) * swatch;
      pctx.fillStyle = colour(k);
      pctx.fillRect(x, y, swatch, swatch);
      if (swatch >= 20) {
        pctx.fillStyle = "#000";
        pctx.fillText(String(k), x + swatch / 2, y + swatch / 2 + 1);
      }
    }
    const x = (chosen % perRow) * swatch, y = Math.floor(chosen / perRow) * swatch;
    pctx.strokeStyle = "#000";
    pctx.lineWidth = 2;
    pctx.strokeRect(x + 1, y + 1, swatch - 2, swatch - 2);
  }
  function choose(k) {
    chosen = Math.min(K - 1, Math.max(0, Math.round(Number(k)) || 0));
    codeInput.value = String(chosen);
    document.getElementById("swatch").style.background = colour(chosen);
    drawPalette();
  }

  function update() {
    try {
      const px = vaekitDecodeCodes(codes);
      window.vaekitLastPixels = px;
      vaekitDrawPixels(image, decoder.shape, px);
      errorBox.textContent = "";
    } catch (e) {
      errorBox.textContent = "decoder failed: " + (e && e.message ? e.message : e);
    }
    drawGrid();
  }
  /** The cell under a mouse event on `canvas` with cells of `size` pixels in
   *  rows of `across`, or -1. */
  function cellAt(ev, canvas, size, across, count) {
    const rect = canvas.getBoundingClientRect();
    const x = Math.floor((ev.clientX - rect.left) * canvas.width / rect.width / size);
    const y = Math.floor((ev.clientY - rect.top) * canvas.height / rect.height / size);
    const i = y * across + x;
    return x >= 0 && x < across && y >= 0 && i < count ? i : -1;
  }
  grid.addEventListener("click", (ev) => {
    const i = cellAt(ev, grid, cell, cols, cells);
    if (i < 0) return;
    if (ev.shiftKey) {
      choose(codes[i]);
      return;
    }
    if (codes[i] === chosen) choose((chosen + 1) % K); // a second click steps on
    codes[i] = chosen;
    update();
  });
  palette.addEventListener("click", (ev) => {
    const k = cellAt(ev, palette, swatch, perRow, K);
    if (k >= 0) choose(k);
  });
  codeInput.addEventListener("change", () => choose(codeInput.value));
  document.getElementById("reset").addEventListener("click", () => {
    codes = model.start.slice();
    update();
  });
  choose(0);
  update();

  // ---- self-test: ?test=1[&codes=a,b,..][&pick=k&click=i] ----------------------
  const params = new URLSearchParams(window.location.search);
  if (params.get("test") === "1") {
    const result = {};
    try {
      if (params.has("codes")) {
        const given = params.get("codes").split(",").map(Number);
        if (given.length !== cells) throw new Error(given.length + " codes for " + cells + " cells");
        codes = given;
        update();
      }
      result.grid = [rows, cols];
      result.cells = cells;
      result.codes = codes.slice();
      result.shape = [decoder.shape.channels, decoder.shape.height, decoder.shape.width];
      result.pixels = Array.from(window.vaekitLastPixels);
      result.direct = Array.from(vaekitDecodeCodes(codes));
      if (params.has("click")) {
        if (params.has("pick")) {
          codeInput.value = params.get("pick");
          codeInput.dispatchEvent(new Event("change", { bubbles: true }));
        }
        const i = Number(params.get("click"));
        const rect = grid.getBoundingClientRect();
        const px = ((i % cols) + 0.5) * cell, py = (Math.floor(i / cols) + 0.5) * cell;
        grid.dispatchEvent(new MouseEvent("click", {
          bubbles: true,
          clientX: rect.left + px * rect.width / grid.width,
          clientY: rect.top + py * rect.height / grid.height,
        }));
        result.after_click = codes.slice();
        result.click_pixels = Array.from(window.vaekitLastPixels);
      }
      result.error = errorBox.textContent;
    } catch (e) {
      result.error = String(e && e.stack ? e.stack : e);
    }
    document.getElementById("result").textContent = JSON.stringify(result);
  }
})();
