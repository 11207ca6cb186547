// vaekit's decoders in JavaScript, shared by the pages that run one: the
// weights (float32, base64) and the forward pass of the dense, conv and
// residual decoders in evaluation mode, matching vaekit's layers.
"use strict";

/** The little-endian float32 values of a base64 string. */
function vaekitFloat32(b64) {
  const bin = atob(b64);
  const view = new DataView(new ArrayBuffer(bin.length));
  for (let i = 0; i < bin.length; i++) view.setUint8(i, bin.charCodeAt(i));
  const out = new Float32Array(bin.length / 4);
  for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(4 * i, true);
  return out;
}

/** The decoder of `model` (`model.decoder`, its config, and `model.weights`,
 *  its tensors under `decoder.`): `{ config, shape, inputDim, decode(input) }`,
 *  where `decode` maps a Float64Array of `inputDim` values to the pixels
 *  [c, h, w] in [0, 1] as a Float32Array. */
function vaekitDecoder(model) {
  const weights = {};
  for (const [name, t] of Object.entries(model.weights)) {
    weights[name] = { shape: t.shape, data: vaekitFloat32(t.data) };
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
  const relu = activation("relu");
  // vaekit's residual stack: x + conv1×1(ReLU(conv3×3(ReLU(x)))) per block
  // (`residual.{j}.conv1|conv2`), then a ReLU.
  function residualStack(x, stack) {
    for (let j = 0; j < stack.blocks; j++) {
      const prefix = "decoder.residual." + j;
      const a = { c: x.c, h: x.h, w: x.w, data: applyInPlace(Float64Array.from(x.data), relu) };
      const r = conv2d(prefix + ".conv1", a, stack.hidden, 3, 1, 1);
      applyInPlace(r.data, relu);
      const r2 = conv2d(prefix + ".conv2", r, x.c, 1, 1, 0);
      for (let i = 0; i < x.data.length; i++) x.data[i] += r2.data[i];
    }
    applyInPlace(x.data, relu);
    return x;
  }
  // The up blocks of a conv or residual decoder: (up-sampling and) a
  // (transposed) convolution, batch norm, activation.
  function upBlocks(x, blocks) {
    blocks.forEach((b, i) => {
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
    return linear("decoder.out", h, width, o.channels * o.height * o.width);
  }
  function convDecoder(input) {
    const s = dec.start;
    const h0 = applyInPlace(
      linear("decoder.fc", input, dec.input_dim, s.channels * s.height * s.width),
      activation(dec.fc_activation));
    return upBlocks({ c: s.channels, h: s.height, w: s.width, data: h0 }, dec.blocks).data;
  }
  // The input is the code map [D, h, w], flattened.
  function residualDecoder(input) {
    const s = dec.start;
    const map = { c: s.channels, h: s.height, w: s.width, data: Float64Array.from(input) };
    const x = residualStack(conv2d("decoder.input", map, dec.channels, 3, 1, 1), dec.residual);
    return upBlocks(x, dec.blocks).data;
  }
  const forward = { dense: denseDecoder, conv: convDecoder, residual: residualDecoder }[dec.type];
  if (!forward) throw new Error("unknown decoder type " + JSON.stringify(dec.type));
  const inputDim = dec.type === "residual"
    ? dec.start.channels * dec.start.height * dec.start.width : dec.input_dim;
  // Decoder output to pixels in [0, 1]: the final sigmoid of a decoder of
  // probabilities, then vaekit's OutputKind::to_pixels.
  function toPixels(out) {
    const px = new Float32Array(out.length);
    for (let i = 0; i < out.length; i++) {
      const v = out[i];
      px[i] = dec.output_kind === "probabilities" || dec.output_kind === "logits" ? sigmoid(v)
        : Math.min(1, Math.max(0, v));
    }
    return px;
  }
  return {
    config: dec,
    shape: dec.output,
    inputDim,
    decode(input) {
      if (input.length !== inputDim) {
        throw new Error("the decoder takes " + inputDim + " values, got " + input.length);
      }
      return toPixels(forward(input));
    },
  };
}

/** Draws pixels [c, h, w] in [0, 1] of `shape` on `canvas`, scaled up without
 *  smoothing (grey for one channel, RGB for three). */
function vaekitDrawPixels(canvas, shape, px) {
  const { channels: c, height: h, width: w } = shape;
  const small = document.createElement("canvas");
  small.width = w;
  small.height = h;
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
  const out = canvas.getContext("2d");
  out.imageSmoothingEnabled = false;
  out.drawImage(small, 0, 0, canvas.width, canvas.height);
}
