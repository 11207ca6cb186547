#!/usr/bin/env python3
"""PyTorch reference for vaekit's `bench` example (examples/bench.rs).

Measures the same five tutorial workloads as `cargo run --release --example bench`
-- the same architectures, batch sizes, optimizers, learning rates, losses and
binarisation as vaekit's presets (src/models/presets.rs) and their training settings
(TrainConfig::for_preset in src/train/config.rs) -- on the same bundled MNIST digits
(data/mnist-10k: 8,000 training and 2,000 test images), and prints one JSON object per
line in the same format (keys sorted, as serde_json writes them), so docs/performance.md
can compare throughput and memory on one machine:

  workload, device, batch, params  as in the Rust bench
  train_images_per_s   steady state over --steps training steps after --warmup steps;
                       a step is forward, loss, zero_grad, backward, optimizer step and
                       loss.item(), on batches built as tensors before timing
  infer_images_per_s   encode + decode (reconstruct) of the 2,000 test images at batch
                       1,000 in eval mode under torch.no_grad(): the median of 5 timed
                       passes after one warm-up pass
  first_step_ms        from the first line of this script to the end of the first
                       training step, `import torch` included (the interpreter's own
                       start-up before that line is not counted, as the Rust bench
                       counts from the start of main)
  peak_rss_mib         the process's peak resident memory (VmHWM, /proc/self/status)
  import_rss_mib       its resident memory right after `import torch` (VmRSS): the
                       libraries' share of peak_rss_mib, which depends on the torch
                       build (a CUDA wheel maps far more than a CPU-only one)
  threads, steps       torch.get_num_threads() and --steps
  framework, torch     "pytorch" and torch.__version__
  gpu_peak_mib         with --device cuda only: torch.cuda.max_memory_allocated()

`--workload all` runs each workload in its own process, so memory and start-up are
measured alone.

Run it with a Python whose environment has `pip install torch numpy`
(numpy only keeps torch from warning at import):

    python scripts/bench_pytorch.py --workload all --steps 40 --warmup 5 --threads 2
    python scripts/bench_pytorch.py --workload conv-ae --device cuda

Two more workloads, `vq-vae` and `gumbel-vae`, are the presets `vq_vae_digits` and
`gumbel_vae_digits` (the `vq_vae` example's default model and its run file
examples/runs/gumbel_vae_digits.json): `--workload vq-vae` measures them as above, but
`--workload all` runs the five the Rust bench knows. For docs/results.md they also
train like vaekit's Trainer:

    python scripts/bench_pytorch.py --workload vq-vae --train-epochs 5 --threads 2 --out DIR
    python scripts/bench_pytorch.py --workload gumbel-vae --train-epochs 2 --data FOLDER --out DIR
    python scripts/bench_pytorch.py --workload gumbel-vae --vaekit-checkpoint out/model.safetensors

`--train-epochs N` trains for N epochs on `--data` (a folder of the four MNIST-format
IDX files, raw or .gz; the bundled digits by default) and prints one JSON line per
epoch: the training loss, the test figures (loss; `reconstruction_mse`, the squared
error per pixel of the reconstructions; perplexity and the share of codes used for the
VQ-VAE, each test batch's weighted by its size as vaekit's trainer does; BCE and KL for
the Gumbel-softmax VAE, whose loss is the single-sample -ELBO), the training seconds
and training images per second (the epoch's training loop only). `--out` gets
samples.png (64 samples: the VQ-VAE's independent per-position code prior with
Laplace smoothing, as vaekit's IndependentCodePrior::fit(codes, 1.0); the uniform
categorical prior of the Gumbel-softmax VAE) and reconstructions.png, written with
zlib (no PIL). `--vaekit-checkpoint FILE` computes the same test figures for a vaekit
model.safetensors of that preset, loaded into these modules.

CI does not run this script; it exists to produce the PyTorch figures for
docs/performance.md and docs/results.md. Run it on an otherwise idle machine.

The models are replicated from tests/fixtures/make_fixtures.py rather than imported:
that script sets global torch state on import (one thread, deterministic algorithms),
needs safetensors, and builds its models inside functions that also run a fixed
4-image forward pass.
"""

import time

STARTED = time.perf_counter()  # before `import torch`, so first_step_ms includes it

import argparse
import gzip
import json
import math
import struct
import subprocess
import sys
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F


def memory_mib(field):
    """A memory figure of this process from /proc/self/status (VmHWM, VmRSS), in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


MNIST_DIR = Path(__file__).resolve().parents[1] / "data" / "mnist-10k"
LOG_2PI = math.log(2.0 * math.pi)
INFER_BATCH = 1000
INFER_PASSES = 5  # timed inference passes; the median is reported
IMPORT_RSS_MIB = memory_mib("VmRSS")


# --------------------------------------------------------------------------- data


def open_idx(folder, name):
    """An IDX file of `folder` by its gzip'ed name, or the same name without `.gz`."""
    path = Path(folder) / name
    if path.exists():
        return gzip.open(path, "rb")
    return open(path.with_suffix(""), "rb")


def read_idx(images_file, labels_file, folder=MNIST_DIR):
    """Images [n, 1, 28, 28] float32 scaled v / 255 and labels [n] int64 of an IDX pair
    in `folder` (the bundled digits by default), gzip'ed or raw."""
    with open_idx(folder, images_file) as f:
        magic, n, rows, cols = struct.unpack(">IIII", f.read(16))
        assert magic == 0x00000803, hex(magic)
        pixels = f.read(n * rows * cols)
    with open_idx(folder, labels_file) as f:
        magic, n_labels = struct.unpack(">II", f.read(8))
        assert magic == 0x00000801 and n_labels == n, (hex(magic), n_labels, n)
        labels = f.read(n)
    images = torch.frombuffer(bytearray(pixels), dtype=torch.uint8).reshape(n, 1, rows, cols)
    labels = torch.frombuffer(bytearray(labels), dtype=torch.uint8).to(torch.int64)
    return images.to(torch.float32) / 255.0, labels


def batches(images, labels, size, device, generator=None):
    """Tensors on `device`: shuffled with `generator` and the remainder dropped, or in
    order with a final partial batch kept (generator None), as vaekit's LastBatch does."""
    n = images.shape[0]
    if generator is None:
        order, stop = torch.arange(n), n
    else:
        order, stop = torch.randperm(n, generator=generator), n - n % size
    return [
        (images[idx].to(device).contiguous(), labels[idx].to(device).contiguous())
        for idx in (order[i : i + size] for i in range(0, stop, size))
    ]


# --------------------------------------------------------------------------- losses


def kl_standard_normal(mean, logvar):
    """KL(N(mean, exp(logvar)) || N(0, I)) per example, [batch]."""
    return (-0.5 * (1.0 + logvar - mean**2 - torch.exp(logvar))).sum(dim=1)


def log_normal_pdf(z, mean, logvar):
    """log N(z; mean, exp(logvar)) per example, [batch]."""
    return (-0.5 * ((z - mean) ** 2 * torch.exp(-logvar) + logvar + LOG_2PI)).sum(dim=1)


def log_standard_normal(z):
    """log N(z; 0, I) per example, [batch]."""
    return -0.5 * (z**2).sum(dim=1) - 0.5 * LOG_2PI * z.shape[1]


def log_variance_posterior(params):
    """Mean and log-variance from encoder output [mean | logvar]; vaekit clamps the
    log-variance to [-30, 20] (PosteriorParam::LogVariance)."""
    mean, logvar = params.chunk(2, dim=1)
    return mean, logvar.clamp(-30.0, 20.0)


def reparameterise(mean, logvar):
    return mean + torch.randn_like(mean) * torch.exp(0.5 * logvar)


# --------------------------------------------------------------------------- models
#
# Each model has loss(x, labels) -> scalar training loss and reconstruct(x, labels) ->
# pixels in [0, 1] through the posterior mean, as vaekit's Model::loss and
# Model::reconstruct. Layer shapes follow src/models/presets.rs.


def glorot_init(model):
    """Keras/TensorFlow defaults (vaekit's InitScheme::GlorotUniform): Glorot-uniform
    weights, zero biases. Batch-norm layers keep their defaults."""
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
    return model


class CvaeTf(nn.Module):
    """TensorFlow CVAE tutorial: conv VAE, latent 2, logits, single-sample Monte Carlo
    ELBO averaged over the batch; Glorot init."""

    latent = 2

    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 32, 3, stride=2), nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2), nn.ReLU(),
            nn.Flatten(), nn.Linear(64 * 6 * 6, 2 * self.latent),
        )
        self.decoder = nn.Sequential(
            nn.Linear(self.latent, 32 * 7 * 7), nn.ReLU(), nn.Unflatten(1, (32, 7, 7)),
            nn.ConvTranspose2d(32, 64, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
            nn.ConvTranspose2d(64, 32, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
            nn.ConvTranspose2d(32, 1, 3, stride=1, padding=1),
        )
        glorot_init(self)

    def loss(self, x, labels):
        mean, logvar = log_variance_posterior(self.encoder(x))
        z = reparameterise(mean, logvar)
        logits = self.decoder(z)
        reconstruction = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(dim=(1, 2, 3))
        kl = log_normal_pdf(z, mean, logvar) - log_standard_normal(z)
        return reconstruction.mean() + kl.mean()

    def reconstruct(self, x, labels):
        mean, _ = log_variance_posterior(self.encoder(x))
        return torch.sigmoid(self.decoder(mean))


class ConvVaeBn(nn.Module):
    """PyTorch conv VAE with batch norm: latent 32, sigmoid output, BCE + analytic KL
    summed over the batch; PyTorch's default init."""

    latent = 32

    def __init__(self):
        super().__init__()

        def block(c_in, c_out, k, s, p):
            return [nn.Conv2d(c_in, c_out, k, s, p), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2)]

        self.encoder = nn.Sequential(
            *block(1, 64, 4, 2, 1), *block(64, 128, 4, 2, 1), *block(128, 128, 3, 1, 1),
            nn.Flatten(), nn.Linear(128 * 7 * 7, 2 * self.latent),
        )
        self.decoder = nn.Sequential(
            nn.Linear(self.latent, 128 * 7 * 7), nn.Unflatten(1, (128, 7, 7)),
            nn.ConvTranspose2d(128, 64, 4, 2, 1), nn.ReLU(),
            nn.ConvTranspose2d(64, 1, 4, 2, 1), nn.Sigmoid(),
        )

    def loss(self, x, labels):
        mean, logvar = log_variance_posterior(self.encoder(x))
        decoded = self.decoder(reparameterise(mean, logvar))
        reconstruction = F.binary_cross_entropy(decoded, x, reduction="sum")
        return reconstruction + kl_standard_normal(mean, logvar).sum()

    def reconstruct(self, x, labels):
        mean, _ = log_variance_posterior(self.encoder(x))
        return self.decoder(mean)


class DenseVae(nn.Module):
    """TF1 dense VAE: 784-256-2, linear output, 0.5 * sum (x_hat - x)^2 + analytic KL
    averaged over the batch; Glorot init."""

    latent = 2

    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 2 * self.latent)
        )
        self.decoder = nn.Sequential(
            nn.Linear(self.latent, 256), nn.ReLU(), nn.Linear(256, 784), nn.Unflatten(1, (1, 28, 28))
        )
        glorot_init(self)

    def loss(self, x, labels):
        mean, logvar = log_variance_posterior(self.encoder(x))
        decoded = self.decoder(reparameterise(mean, logvar))
        reconstruction = 0.5 * ((decoded - x) ** 2).sum(dim=(1, 2, 3))
        return reconstruction.mean() + kl_standard_normal(mean, logvar).mean()

    def reconstruct(self, x, labels):
        mean, _ = log_variance_posterior(self.encoder(x))
        return self.decoder(mean).clamp(0.0, 1.0)


class DigitCvae(nn.Module):
    """Digit-conditioned VAE with a classifier (vaekit's Conditioning::Predicted): dense
    128-unit sigmoid layers, z 10, variance 1e-5 + exp(.), decoder input [z | softmax of
    the classifier], Gaussian likelihood sigma 0.5 + analytic KL averaged over the batch
    + 10 * cross-entropy; Glorot init."""

    latent, classes, hidden = 10, 10, 128
    sigma, class_weight = 0.5, 10.0

    def __init__(self):
        super().__init__()
        h = self.hidden
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(784, h), nn.Sigmoid(), nn.Linear(h, 2 * self.latent))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(784, h), nn.Sigmoid(), nn.Linear(h, self.classes))
        self.decoder = nn.Sequential(
            nn.Linear(self.latent + self.classes, h), nn.Sigmoid(),
            nn.Linear(h, 784), nn.Sigmoid(), nn.Unflatten(1, (1, 28, 28)),
        )
        glorot_init(self)

    def posterior(self, x):
        mean, raw = self.encoder(x).chunk(2, dim=1)
        return mean, torch.log(1e-5 + torch.exp(raw))

    def decode(self, z, class_logits):
        return self.decoder(torch.cat([z, torch.softmax(class_logits, dim=1)], dim=1))

    def loss(self, x, labels):
        mean, logvar = self.posterior(x)
        class_logits = self.classifier(x)
        decoded = self.decode(reparameterise(mean, logvar), class_logits)
        # -log N(x; decoded, sigma^2), written out (torch.distributions would add
        # argument validation that vaekit does not do).
        nll = 0.5 * ((x - decoded) / self.sigma) ** 2 + math.log(self.sigma) + 0.5 * LOG_2PI
        reconstruction = nll.sum(dim=(1, 2, 3)).mean()
        kl = kl_standard_normal(mean, logvar).mean()
        return reconstruction + kl + self.class_weight * F.cross_entropy(class_logits, labels)

    def reconstruct(self, x, labels):
        mean, _ = self.posterior(x)
        return self.decode(mean, self.classifier(x))


class ConvAe(nn.Module):
    """Keras conv autoencoder: 8-filter convs, code 10, nearest up-sampling decoder,
    sigmoid output, MSE (mean over pixels); Glorot init."""

    latent = 10

    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 8, 3, 2, 1), nn.ReLU(),
            nn.Conv2d(8, 8, 3, 1, 1), nn.ReLU(),
            nn.Conv2d(8, 8, 3, 2, 1), nn.ReLU(),
            nn.Conv2d(8, 8, 3, 1, 1), nn.ReLU(),
            nn.Flatten(), nn.Linear(8 * 7 * 7, self.latent),
        )
        self.decoder = nn.Sequential(
            nn.Linear(self.latent, 64 * 7 * 7), nn.ReLU(), nn.Unflatten(1, (64, 7, 7)),
            nn.Conv2d(64, 64, 3, 1, 1), nn.ReLU(),
            nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(64, 32, 3, 1, 1), nn.ReLU(),
            nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(32, 1, 3, 1, 1), nn.Sigmoid(),
        )
        glorot_init(self)

    def loss(self, x, labels):
        return F.mse_loss(self.decoder(self.encoder(x)), x)

    def reconstruct(self, x, labels):
        return self.decoder(self.encoder(x))


class VqResidual(nn.Module):
    """vaekit's residual block (src/nets/residual.rs): x + conv1x1(ReLU(conv3x3(ReLU(x))))."""

    def __init__(self, channels, hidden):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, hidden, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x):
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class VqVae(nn.Module):
    """vaekit's `vq_vae_digits` preset (src/models/presets.rs, src/models/vq_vae.rs,
    src/latent/vq.rs): residual encoder 1 -> 32 -> 64 (4x4 stride-2 convs, ReLU), a 3x3
    conv (no activation), two residual blocks of 32 hidden channels, ReLU, 1x1 conv to
    D = 16 on a 7x7 grid; 128 codes learned by exponential moving averages (decay 0.99,
    epsilon 1e-5) with restarts of dead codes (usage average decay 0.99, threshold 1);
    decoder 3x3 conv 16 -> 64, two residual blocks, ReLU, transposed 4x4 stride-2 convs
    64 -> 32 (ReLU) -> 1 (linear); loss MSE(x_hat, x) + 0.25 * mean((z - sg(e))^2), both
    means over values; PyTorch's default init, as vaekit's InitScheme::PyTorch. The batch's
    perplexity and codes used are kept in `self.last` for the evaluation."""

    codes, code_dim, hidden, residual_hidden = 128, 16, 64, 32
    beta, decay, epsilon = 0.25, 0.99, 1e-5
    restart_threshold, restart_decay = 1.0, 0.99

    def __init__(self):
        super().__init__()
        h, r, d, k = self.hidden, self.residual_hidden, self.code_dim, self.codes
        self.encoder = nn.Sequential(
            nn.Conv2d(1, h // 2, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(h // 2, h, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(h, h, 3, 1, 1),
            VqResidual(h, r), VqResidual(h, r), nn.ReLU(),
            nn.Conv2d(h, d, 1),
        )
        self.decoder = nn.Sequential(
            nn.Conv2d(d, h, 3, 1, 1),
            VqResidual(h, r), VqResidual(h, r), nn.ReLU(),
            nn.ConvTranspose2d(h, h // 2, 4, 2, 1), nn.ReLU(),
            nn.ConvTranspose2d(h // 2, 1, 4, 2, 1),
        )
        bound = 1.0 / k  # U(-1/K, 1/K), as vaekit's (restarts replace it on the first step)
        self.register_buffer("codebook", torch.empty(k, d).uniform_(-bound, bound))
        self.register_buffer("cluster_size", torch.zeros(k))
        self.register_buffer("embed_sum", torch.zeros(k, d))
        self.register_buffer("usage", torch.zeros(k))
        self.generator = torch.Generator().manual_seed(0)  # the restarts' draws
        self.last = {}

    def nearest(self, flat):
        e = self.codebook
        dist = (flat * flat).sum(1, keepdim=True) - 2.0 * flat @ e.t() + (e * e).sum(1)
        return dist.argmin(1)

    def quantize(self, x):
        z = self.encoder(x)  # [b, D, h, w]
        b, d, h, w = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(-1, d)  # [b*h*w, D], a vector per row
        idx = self.nearest(flat.detach())
        e = self.codebook[idx]
        commitment = F.mse_loss(flat, e)  # the codebook is a buffer: no gradient
        q = (flat + (e - flat).detach()).reshape(b, h, w, d).permute(0, 3, 1, 2)
        counts = torch.bincount(idx, minlength=self.codes).to(flat.dtype)
        p = counts / counts.sum().clamp(min=1.0)
        self.last = {
            "perplexity": torch.exp(-(p * torch.log(p + 1e-10)).sum()).item(),
            "codes_used": (counts > 0).to(flat.dtype).mean().item(),
        }
        if self.training:
            self.update(flat.detach(), idx, counts)
        return q, commitment, idx

    @torch.no_grad()
    def update(self, z, idx, counts):
        """vaekit's VectorQuantizer::update: EMA codebook, then usage and restarts."""
        k, g, eps = self.codes, self.decay, self.epsilon
        sums = torch.zeros_like(self.embed_sum).index_add_(0, idx, z)
        self.cluster_size.mul_(g).add_(counts, alpha=1 - g)
        self.embed_sum.mul_(g).add_(sums, alpha=1 - g)
        total = self.cluster_size.sum()
        smoothed = (self.cluster_size + eps) / (total + k * eps) * total
        self.codebook.copy_(self.embed_sum / smoothed[:, None])
        self.usage.mul_(self.restart_decay).add_(counts, alpha=1 - self.restart_decay)
        dead = (self.usage < self.restart_threshold).nonzero().flatten()
        if dead.numel():
            drawn = z[torch.randint(0, z.shape[0], (dead.numel(),), generator=self.generator)]
            self.codebook[dead] = drawn
            self.embed_sum[dead] = drawn
            self.cluster_size[dead] = 1.0
            self.usage[dead] = self.restart_threshold

    def loss(self, x, labels):
        q, commitment, _ = self.quantize(x)
        return F.mse_loss(self.decoder(q), x) + self.beta * commitment

    def reconstruct(self, x, labels):
        return self.decoder(self.quantize(x)[0])

    @torch.no_grad()
    def test_metrics(self, x):
        """Sums over the batch of the test terms vaekit reports (its trainer weights every
        batch's mean by its size; perplexity and codes used are the batch's)."""
        q, commitment, _ = self.quantize(x)
        mse = F.mse_loss(self.decoder(q), x)
        n = x.shape[0]
        return {"loss": n * (mse + self.beta * commitment).item(), "reconstruction_mse": n * mse.item(),
                "perplexity": n * self.last["perplexity"], "codes_used": n * self.last["codes_used"]}

    @torch.no_grad()
    def fit_prior(self, train_images):
        """vaekit's IndependentCodePrior::fit(codes, 1.0): per grid position, the code
        counts of the training images plus 1, normalised."""
        counts = torch.ones(7 * 7, self.codes)
        for i in range(0, train_images.shape[0], 1000):
            _, _, idx = self.quantize(train_images[i : i + 1000])
            counts.scatter_add_(1, idx.reshape(-1, 49).t().contiguous(),
                                torch.ones(49, idx.numel() // 49))
        self.prior = counts / counts.sum(1, keepdim=True)

    @torch.no_grad()
    def sample(self, n, generator):
        idx = torch.multinomial(self.prior, n, replacement=True, generator=generator).t()  # [n, 49]
        q = self.codebook[idx].reshape(n, 7, 7, self.code_dim).permute(0, 3, 1, 2)
        return self.decoder(q).clamp(0.0, 1.0)


class GumbelVae(nn.Module):
    """vaekit's `gumbel_vae_digits` preset (src/models/gumbel_vae.rs,
    src/latent/categorical.rs): dense encoder 784 -> 512 -> 256 -> 300 logits (ReLU),
    30 categorical variables of 10 classes, the relaxed Gumbel-softmax sample at
    tau = max(0.5, exp(-1e-4 * step)) (step: training steps done before this one) in
    training, a one-hot sample of the posterior (Gumbel-max) in evaluation; decoder 300
    -> 256 -> 512 -> 784 Bernoulli logits (ReLU); BCE on the grey levels + the exact
    KL to the uniform categorical, summed per image and averaged over the batch; PyTorch's
    default init."""

    variables, classes = 30, 10
    tau0, rate, floor = 1.0, 1e-4, 0.5

    def __init__(self):
        super().__init__()
        width = self.variables * self.classes
        self.encoder = nn.Sequential(
            nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, width)
        )
        self.decoder = nn.Sequential(
            nn.Linear(width, 256), nn.ReLU(), nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 784),
            nn.Unflatten(1, (1, 28, 28)),
        )
        self.step = 0

    def terms(self, x):
        logits = self.encoder(x).reshape(-1, self.variables, self.classes)
        if self.training:
            tau = max(self.floor, self.tau0 * math.exp(-self.rate * self.step))
            self.step += 1
            z = F.gumbel_softmax(logits, tau=tau, hard=False, dim=-1)
        else:
            g = -torch.log(-torch.log(torch.rand_like(logits).clamp(1e-12, 1.0 - 1e-7)))
            z = F.one_hot((logits + g).argmax(-1), self.classes).to(logits.dtype)
        out = self.decoder(z.flatten(1))
        reconstruction = F.binary_cross_entropy_with_logits(out, x, reduction="none").sum(dim=(1, 2, 3))
        log_q = F.log_softmax(logits, dim=-1)
        kl = (log_q.exp() * (log_q + math.log(self.classes))).sum(dim=(1, 2))
        return reconstruction, kl, logits

    def loss(self, x, labels):
        reconstruction, kl, _ = self.terms(x)
        return (reconstruction + kl).mean()

    def reconstruct(self, x, labels):
        """Through the most probable classes, as vaekit's GumbelVae::reconstruct."""
        logits = self.encoder(x).reshape(-1, self.variables, self.classes)
        z = F.one_hot(logits.argmax(-1), self.classes).to(logits.dtype)
        return torch.sigmoid(self.decoder(z.flatten(1)))

    @torch.no_grad()
    def test_metrics(self, x):
        reconstruction, kl, _ = self.terms(x)
        mse = F.mse_loss(self.reconstruct(x, None), x, reduction="sum").item() / x[0].numel()
        return {"loss": (reconstruction + kl).sum().item(), "reconstruction": reconstruction.sum().item(),
                "kl": kl.sum().item(), "reconstruction_mse": mse}

    def fit_prior(self, train_images):
        pass  # the prior is the uniform categorical

    @torch.no_grad()
    def sample(self, n, generator):
        idx = torch.randint(0, self.classes, (n, self.variables), generator=generator)
        z = F.one_hot(idx, self.classes).to(torch.float32)
        return torch.sigmoid(self.decoder(z.flatten(1)))


def adam(lr):
    return lambda params: torch.optim.Adam(params, lr=lr)


def rmsprop(lr):
    return lambda params: torch.optim.RMSprop(params, lr=lr)


# name: (model, batch size, optimizer, static binarisation of the training images), from
# TrainConfig::for_preset. vaekit's Adam and RMSprop defaults are PyTorch's.
WORKLOADS = {
    "dense-vae": (DenseVae, 128, adam(1e-3), False),
    "cvae-tf": (CvaeTf, 32, adam(1e-4), True),
    "conv-vae-bn": (ConvVaeBn, 64, adam(1e-3), False),
    "digit-cvae": (DigitCvae, 100, adam(1e-3), False),
    "conv-ae": (ConvAe, 64, rmsprop(3e-4), False),
    "vq-vae": (VqVae, 64, adam(1e-3), False),
    "gumbel-vae": (GumbelVae, 100, adam(1e-3), False),
}
# `--workload all`: the five the Rust bench (examples/bench.rs) also measures.
BENCH_WORKLOADS = ["dense-vae", "cvae-tf", "conv-vae-bn", "digit-cvae", "conv-ae"]


# --------------------------------------------------------------------------- bench


def run(name, args):
    make_model, batch_size, make_optimizer, binarize = WORKLOADS[name]
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    sync = (lambda: torch.cuda.synchronize(device)) if cuda else (lambda: None)
    torch.manual_seed(0)

    train_images, train_labels = read_idx("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")
    test_images, test_labels = read_idx("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
    model = make_model().to(device).train()
    optimizer = make_optimizer(model.parameters())
    if binarize:  # the training images only, as the Rust bench does
        train_images = (train_images > 0.5).to(torch.float32)
    train = batches(train_images, train_labels, batch_size, device, torch.Generator().manual_seed(0))

    def step(i):
        x, y = train[i % len(train)]
        loss = model.loss(x, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        loss.item()  # read the loss back, as a training loop does (waits for the GPU)

    step(0)
    sync()
    first_step_ms = (time.perf_counter() - STARTED) * 1e3
    for i in range(1, args.warmup):
        step(i)
    sync()
    t = time.perf_counter()
    for i in range(args.steps):
        step(args.warmup + i)
    sync()
    train_images_per_s = args.steps * batch_size / (time.perf_counter() - t)

    test = batches(test_images, test_labels, INFER_BATCH, device)
    model.eval()

    @torch.no_grad()
    def infer():
        for x, y in test:
            model.reconstruct(x, y)

    infer()  # warm-up
    seconds = []
    for _ in range(INFER_PASSES):
        sync()
        t = time.perf_counter()
        infer()
        sync()
        seconds.append(time.perf_counter() - t)
    infer_images_per_s = test_images.shape[0] / sorted(seconds)[INFER_PASSES // 2]

    result = {
        "workload": name,
        "device": f"cuda:{device.index or 0}" if cuda else "cpu",
        "batch": batch_size,
        "params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "train_images_per_s": float(round(train_images_per_s)),
        "infer_images_per_s": float(round(infer_images_per_s)),
        "first_step_ms": round(first_step_ms, 1),
        "peak_rss_mib": round(memory_mib("VmHWM"), 1),
        "threads": torch.get_num_threads(),
        "steps": args.steps,
        "framework": "pytorch",
        "torch": torch.__version__,
        "import_rss_mib": round(IMPORT_RSS_MIB, 1),
    }
    if cuda:
        result["gpu_peak_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return result


# --------------------------------------------------------------------------- training runs
#
# `--train-epochs N` trains a workload for N epochs on an IDX folder (`--data`, the
# bundled digits by default) the way vaekit's Trainer does -- the training images
# reshuffled every epoch with the last partial batch kept, then the test images in
# order at batch 1,000 in eval mode, each batch's means weighted by its size -- and
# prints one JSON line per epoch; `--out` gets samples.png and reconstructions.png.


def write_png(path, pixels, columns=8, scale=2, padding=2, background=255):
    """A grey PNG of images [n, 1, h, w] in [0, 1] on a grid (vaekit's GridStyle of its
    examples: scale 2, padding 2, white background), with zlib only (no PIL)."""
    import zlib

    n, _, h, w = pixels.shape
    rows = (n + columns - 1) // columns
    cell_h, cell_w = h * scale + padding, w * scale + padding
    grid = torch.full((rows * cell_h + padding, columns * cell_w + padding), background, dtype=torch.uint8)
    big = (pixels[:, 0].clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)
    big = big.repeat_interleave(scale, 1).repeat_interleave(scale, 2)
    for i in range(n):
        r, c = divmod(i, columns)
        y, x = padding + r * cell_h, padding + c * cell_w
        grid[y : y + h * scale, x : x + w * scale] = big[i]
    height, width = grid.shape
    raw = b"".join(b"\x00" + bytes(grid[y].tolist()) for y in range(height))

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    Path(path).write_bytes(png)


def train_epochs(name, args):
    make_model, batch_size, make_optimizer, binarize = WORKLOADS[name]
    if not hasattr(make_model, "test_metrics"):
        sys.exit(f"error: --train-epochs supports vq-vae and gumbel-vae, not `{name}`")
    torch.manual_seed(args.seed)
    folder = args.data or MNIST_DIR
    train_images, train_labels = read_idx("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", folder)
    test_images, test_labels = read_idx("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", folder)
    model = make_model()
    optimizer = make_optimizer(model.parameters())
    shuffle = torch.Generator().manual_seed(args.seed)
    n = train_images.shape[0]
    print(json.dumps({"workload": name, "params": sum(p.numel() for p in model.parameters()),
                      "train": n, "test": test_images.shape[0], "threads": torch.get_num_threads(),
                      "torch": torch.__version__}), flush=True)
    for epoch in range(1, args.train_epochs + 1):
        started = time.perf_counter()
        model.train()
        order = torch.randperm(n, generator=shuffle)
        total, seen = 0.0, 0
        for i in range(0, n, batch_size):  # the last partial batch kept
            idx = order[i : i + batch_size]
            x, y = train_images[idx], train_labels[idx]
            loss = model.loss(x, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * x.shape[0]
            seen += x.shape[0]
        train_seconds = time.perf_counter() - started
        model.eval()
        sums = {}
        for i in range(0, test_images.shape[0], INFER_BATCH):
            for k, v in model.test_metrics(test_images[i : i + INFER_BATCH]).items():
                sums[k] = sums.get(k, 0.0) + v
        test = {k: round(v / test_images.shape[0], 6) for k, v in sums.items()}
        print(json.dumps({"epoch": epoch, "train_loss": round(total / seen, 6), "test": test,
                          "train_seconds": round(train_seconds, 2),
                          "seconds": round(time.perf_counter() - started, 2),
                          "train_images_per_s": round(seen / train_seconds, 1)}), flush=True)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        model.eval()
        with torch.no_grad():
            model.fit_prior(train_images)
            write_png(out / "samples.png", model.sample(64, torch.Generator().manual_seed(args.seed)))
            originals = test_images[:16]
            recon = model.reconstruct(originals, None).clamp(0.0, 1.0)
            write_png(out / "reconstructions.png", torch.cat([originals, recon]), columns=16)
        print(json.dumps({"pictures": str(out)}), flush=True)


def load_vaekit(model, path):
    """Copies a vaekit `model.safetensors` of the vq_vae_digits or gumbel_vae_digits
    preset into `model`, by the order of the layers: vaekit's names (encoder.blocks.i,
    encoder.residual.j, encoder.out, decoder.input, ...; encoder.hidden.i, encoder.out,
    decoder.hidden.i, decoder.out for the dense nets) in the order the PyTorch modules
    are built. Weight layouts are
    PyTorch's in both ([out, in] linear, [out, in, k, k] conv, [in, out, k, k]
    transposed conv)."""
    from safetensors.torch import load_file

    tensors = load_file(path)
    if isinstance(model, VqVae):
        order = [
            "encoder.blocks.0.conv", "encoder.blocks.1.conv", "encoder.blocks.2.conv",
            "encoder.residual.0.conv1", "encoder.residual.0.conv2",
            "encoder.residual.1.conv1", "encoder.residual.1.conv2", "encoder.out",
            "decoder.input", "decoder.residual.0.conv1", "decoder.residual.0.conv2",
            "decoder.residual.1.conv1", "decoder.residual.1.conv2",
            "decoder.blocks.0.conv", "decoder.blocks.1.conv",
        ]
        names = [f"{n}.{p}" for n in order for p in ("weight", "bias")]
        with torch.no_grad():
            model.codebook.copy_(tensors["quantizer.ema_codebook"])
    else:
        order = [f"{part}.{layer}" for part in ("encoder", "decoder") for layer in ("hidden.0", "hidden.1", "out")]
        names = [f"{n}.{p}" for n in order for p in ("weight", "bias")]
    params = list(model.parameters())
    assert len(names) == len(params), (len(names), len(params), sorted(tensors))
    with torch.no_grad():
        for name, p in zip(names, params):
            t = tensors[name]
            assert t.shape == p.shape, (name, tuple(t.shape), tuple(p.shape))
            p.copy_(t)


def evaluate_vaekit(name, args):
    """`--vaekit-checkpoint FILE`: the test figures of `--train-epochs` for a vaekit
    checkpoint, computed here (for the Gumbel-softmax VAE, whose vaekit run reports BCE
    and KL but not the reconstruction's squared error)."""
    make_model = WORKLOADS[name][0]
    torch.manual_seed(args.seed)
    folder = args.data or MNIST_DIR
    test_images, _ = read_idx("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", folder)
    model = make_model().eval()
    load_vaekit(model, args.vaekit_checkpoint)
    sums = {}
    for i in range(0, test_images.shape[0], INFER_BATCH):
        for k, v in model.test_metrics(test_images[i : i + INFER_BATCH]).items():
            sums[k] = sums.get(k, 0.0) + v
    test = {k: round(v / test_images.shape[0], 6) for k, v in sums.items()}
    print(json.dumps({"checkpoint": str(args.vaekit_checkpoint), "test": test}), flush=True)


def positive_int(text):
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"`{text}` is not a positive whole number")
    return value


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", default="all", choices=["all", *WORKLOADS])
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]")
    parser.add_argument("--steps", type=positive_int, default=40)
    parser.add_argument("--warmup", type=positive_int, default=5)
    parser.add_argument("--threads", type=positive_int, default=2)
    parser.add_argument("--train-epochs", type=positive_int, default=None,
                        help="train vq-vae or gumbel-vae for N epochs and print test figures per epoch")
    parser.add_argument("--data", default=None, help="with --train-epochs: a folder of the four IDX files")
    parser.add_argument("--out", default=None, help="with --train-epochs: where samples.png goes")
    parser.add_argument("--seed", type=int, default=0, help="with --train-epochs: the seed")
    parser.add_argument("--vaekit-checkpoint", default=None,
                        help="instead of training: the test figures of a vaekit model.safetensors of --workload")
    args = parser.parse_args()
    if args.train_epochs is not None and args.workload == "all":
        parser.error("--train-epochs needs one --workload (vq-vae or gumbel-vae)")

    if args.workload == "all":
        # One process per workload, so memory and start-up are measured alone.
        for name in BENCH_WORKLOADS:
            flags = ["--device", args.device, "--steps", str(args.steps), "--warmup", str(args.warmup),
                     "--threads", str(args.threads)]
            status = subprocess.run([sys.executable, __file__, "--workload", name, *flags]).returncode
            if status != 0:
                sys.exit(f"error: workload `{name}` failed with exit status {status}")
        return

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    if args.vaekit_checkpoint is not None:
        evaluate_vaekit(args.workload, args)
        return
    if args.train_epochs is not None:
        train_epochs(args.workload, args)
        return
    print(json.dumps(run(args.workload, args), sort_keys=True, separators=(",", ":")), flush=True)


if __name__ == "__main__":
    main()
