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

CI does not run this script; it exists to produce the PyTorch figures for
docs/performance.md. Run it on an otherwise idle machine.

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


def read_idx(images_file, labels_file):
    """Images [n, 1, 28, 28] float32 scaled v / 255 and labels [n] int64 of a gzip'ed IDX pair."""
    with gzip.open(MNIST_DIR / images_file, "rb") as f:
        magic, n, rows, cols = struct.unpack(">IIII", f.read(16))
        assert magic == 0x00000803, hex(magic)
        pixels = f.read(n * rows * cols)
    with gzip.open(MNIST_DIR / labels_file, "rb") as f:
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
}


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
    args = parser.parse_args()

    if args.workload == "all":
        # One process per workload, so memory and start-up are measured alone.
        for name in WORKLOADS:
            flags = ["--device", args.device, "--steps", str(args.steps), "--warmup", str(args.warmup),
                     "--threads", str(args.threads)]
            status = subprocess.run([sys.executable, __file__, "--workload", name, *flags]).returncode
            if status != 0:
                sys.exit(f"error: workload `{name}` failed with exit status {status}")
        return

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    print(json.dumps(run(args.workload, args), sort_keys=True, separators=(",", ":")), flush=True)


if __name__ == "__main__":
    main()
