//! The VQ-VAE (van den Oord et al. 2017): an encoder giving a map of vectors,
//! each replaced by its nearest code of a learned codebook, and a decoder of
//! the codes; samples come from a prior over the grid of code indices,
//! fitted after training.

use candle_core::{Device, Result, Tensor};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::autoencoder::AeLoss;
use super::parts::{check_same_shape, non_empty};
use super::trainable::{LossTerms, Per, StepContext, Term, Trainable};
use crate::data::{Batch, ImageSource, LastBatch, Shuffle};
use crate::latent::{CodePrior, CodebookUpdate, IndependentCodePrior, Quantized, VectorQuantizer};
use crate::losses::Reduction;
use crate::nets::{Decoder, Encoder, OutputKind};
use crate::params::ParamStore;
use crate::{Error, Result as VResult};

/// The loss of a [`VqVae`]:
///
/// ```text
/// loss = reconstruction(x̂, x) + codebook + β · commitment
/// codebook   = reduce((e − sg(z))²)     (by gradient only: an EMA codebook learns without it)
/// commitment = reduce((z − sg(e))²)
/// ```
///
/// `z` is the encoder's vectors, `e` their nearest codes, `sg` stops the
/// gradient; the decoder sees `z + sg(e − z)`, so the reconstruction's
/// gradient reaches the encoder straight through the quantiser. All three are
/// reduced alike: [`Reduction::Mean`] is the mean over pixels and over the
/// code map's values (the reference implementations' `F.mse_loss`),
/// [`Reduction::BatchMean`] the sums per image averaged over the batch (the
/// paper's `‖·‖²`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct VqLossConfig {
    /// The reconstruction loss: squared error (of a linear decoder's values
    /// as they are, of the pixels of a decoder of logits or probabilities),
    /// or binary cross-entropy on a decoder's logits or probabilities.
    pub reconstruction: AeLoss,
    /// How every term is reduced over the batch.
    pub reduction: Reduction,
    /// The weight β of the commitment loss.
    pub commitment: f64,
}

impl Default for VqLossConfig {
    /// Squared error, mean over values, β = 0.25 (the paper's).
    fn default() -> Self {
        Self {
            reconstruction: AeLoss::Mse,
            reduction: Reduction::Mean,
            commitment: 0.25,
        }
    }
}

crate::setters::with_setters!(VqLossConfig {
    with_reconstruction(reconstruction: AeLoss),
    with_reduction(reduction: Reduction),
    with_commitment(commitment: f64),
});

impl VqLossConfig {
    /// Checks that the loss fits a decoder of `kind`; errors name fields under
    /// `field`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for BCE on a linear decoder, a reduction that does
    /// not give a scalar, or a commitment weight that is negative or not
    /// finite.
    pub fn validate(&self, field: &str, kind: OutputKind) -> VResult<()> {
        self.reconstruction.check(
            &format!("{field}.reconstruction"),
            &format!("{field}.reduction"),
            self.reduction,
            kind,
        )?;
        if !(self.commitment >= 0.0 && self.commitment.is_finite()) {
            return Err(Error::config(
                format!("{field}.commitment"),
                format!("{} must be finite and at least 0", self.commitment),
            ));
        }
        Ok(())
    }
}

/// What a VQ-VAE's forward pass returns.
#[derive(Debug, Clone)]
pub struct VqVaeOutput {
    /// The encoder's output `[batch, D · h · w]` (the map of vectors, flattened).
    pub z: Tensor,
    /// The quantisation of the `batch · h · w` vectors, in the order batch,
    /// row, column.
    pub quantized: Quantized,
    /// What the decoder saw: the codes with the straight-through gradient,
    /// `[batch, D · h · w]`.
    pub codes: Tensor,
    /// The decoder's output `[batch, c, H, W]` (see [`Decoder::output_kind`]).
    pub decoded: Tensor,
}

/// A VQ-VAE: `x → z = encoder(x)`, a map of `h × w` vectors of width `D`;
/// each vector → its nearest code `e_k` of the [`VectorQuantizer`]; the codes
/// → `decoder` → `x̂`. Its loss is [`VqLossConfig`]'s.
///
/// Its latent, as [`encode`](Self::encode) and [`decode_pixels`](Self::decode_pixels)
/// see it, is the map of codes flattened in NCHW order, `[b, D · h · w]`;
/// [`encode_indices`](Self::encode_indices) and
/// [`decode_indices`](Self::decode_indices) work with the grid of code
/// indices `[b, h, w]` instead. Samples come from a prior over that grid: the
/// model's own [`IndependentCodePrior`] (buffer `prior.fixed_log_probs`,
/// uniform until [`fit_prior`](Self::fit_prior)), or any [`CodePrior`]
/// through [`sample_with`](Self::sample_with).
///
/// A VQ-VAE defines no likelihood `p(x)` (its posterior is a point and its
/// training prior uniform), so it has no importance-sampled NLL and no
/// [`LatentModel`](super::LatentModel); it reports the reconstruction
/// error, the codebook's perplexity and the share of codes used instead.
#[derive(Debug, Clone)]
pub struct VqVae<E, D> {
    params: ParamStore,
    encoder: E,
    decoder: D,
    quantizer: VectorQuantizer,
    prior: IndependentCodePrior,
    grid: (usize, usize),
    loss: VqLossConfig,
}

impl<E: Encoder, D: Decoder> VqVae<E, D> {
    /// Assembles a VQ-VAE from parts whose tensors live in `params` (build
    /// them from `params.var_builder(seed)`: the encoder under `encoder`, the
    /// decoder under `decoder`, the quantiser under `quantizer`, the prior
    /// under `prior`).
    ///
    /// The encoder gives the map of vectors: an encoder with an
    /// [`output_map`](Encoder::output_map) (the
    /// [`ResidualEncoder`](crate::nets::ResidualEncoder)) gives `[D, h, w]`,
    /// any other a row of `output_dim / D` vectors (`h = 1`).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the field at fault: `quantizer.code_dim` when
    /// the encoder's output channels are not `D` (or its width not a multiple
    /// of `D`); `decoder.input_dim` when the decoder does not take the
    /// encoder's output width; `decoder.output` when the image shapes differ;
    /// `prior` when its grid or code count differs; `loss.*` for a loss that
    /// does not fit the decoder.
    pub fn new(
        params: &ParamStore,
        encoder: E,
        decoder: D,
        quantizer: VectorQuantizer,
        prior: IndependentCodePrior,
        loss: VqLossConfig,
    ) -> VResult<Self> {
        let out = encoder.output_dim();
        let grid = code_grid(&encoder, quantizer.code_dim())?;
        if decoder.input_dim() != out {
            return Err(Error::config(
                "decoder.input_dim",
                format!(
                    "{} must equal the encoder's output width {out} (the code map, flattened)",
                    decoder.input_dim()
                ),
            ));
        }
        check_same_shape(encoder.input_shape(), decoder.output_shape())?;
        if prior.grid() != grid || prior.codes() != quantizer.codes() {
            return Err(Error::config(
                "prior",
                format!(
                    "a prior over {:?} grids of {} codes does not fit {grid:?} grids of {} codes",
                    prior.grid(),
                    prior.codes(),
                    quantizer.codes()
                ),
            ));
        }
        loss.validate("loss", decoder.output_kind())?;
        Ok(Self {
            params: params.clone(),
            encoder,
            decoder,
            quantizer,
            prior,
            grid,
            loss,
        })
    }

    /// The encoder.
    pub fn encoder(&self) -> &E {
        &self.encoder
    }

    /// The decoder.
    pub fn decoder(&self) -> &D {
        &self.decoder
    }

    /// The vector quantiser.
    pub fn quantizer(&self) -> &VectorQuantizer {
        &self.quantizer
    }

    /// The model's own prior over code grids.
    pub fn prior(&self) -> &IndependentCodePrior {
        &self.prior
    }

    /// The loss settings.
    pub fn loss_config(&self) -> &VqLossConfig {
        &self.loss
    }

    /// The grid of code vectors per image, `(h, w)`.
    pub fn grid(&self) -> (usize, usize) {
        self.grid
    }

    /// Width of the latent, `D · h · w`.
    pub fn latent_dim(&self) -> usize {
        self.encoder.output_dim()
    }

    /// The device of the parameters.
    pub fn device(&self) -> &Device {
        self.params.device()
    }

    /// `[b, D·h·w]` (NCHW) → `[b·h·w, D]`, a vector per row.
    fn to_vectors(&self, z: &Tensor) -> Result<Tensor> {
        let b = z.dim(0)?;
        let d = self.quantizer.code_dim();
        let hw = self.grid.0 * self.grid.1;
        z.reshape((b, d, hw))? // [b, D, hw]
            .transpose(1, 2)? // [b, hw, D]
            .reshape((b * hw, d)) // [b·hw, D]
    }

    /// `[b·h·w, D]` → `[b, D·h·w]` (NCHW).
    fn to_map(&self, v: &Tensor, b: usize) -> Result<Tensor> {
        let d = self.quantizer.code_dim();
        let hw = self.grid.0 * self.grid.1;
        v.reshape((b, hw, d))? // [b, hw, D]
            .transpose(1, 2)? // [b, D, hw]
            .reshape((b, d * hw)) // [b, D·hw]
    }

    /// Encodes, quantises and decodes `xs`; in training mode (`train`) the
    /// quantiser updates its EMA statistics and restarts dead codes, drawing
    /// from `rng`.
    ///
    /// # Errors
    ///
    /// When `xs` is empty or not of the encoder's shape.
    pub fn forward_t(
        &self,
        xs: &Tensor,
        train: bool,
        rng: &mut dyn RngCore,
    ) -> Result<VqVaeOutput> {
        non_empty(xs)?;
        let b = xs.dim(0)?;
        let z = self.encoder.forward_t(xs, train)?; // [b, D·h·w]
        let quantized = self.quantizer.quantize(&self.to_vectors(&z)?, train, rng)?; // [b·h·w, D]
        let codes = self.to_map(&quantized.quantized, b)?; // [b, D·h·w]
        let decoded = self.decoder.forward_t(&codes, train)?; // [b, c, H, W]
        Ok(VqVaeOutput {
            z,
            quantized,
            codes,
            decoded,
        })
    }

    /// The loss of `out` against the targets `xs`, as its terms:
    /// `reconstruction`, `codebook` (gradient-learned codebooks only),
    /// `commitment` (unweighted), and the batch's `perplexity` and
    /// `codes_used` (the share of the codebook chosen), which are not part of
    /// the total.
    ///
    /// # Errors
    ///
    /// When the shapes do not match.
    pub fn loss_terms(&self, out: &VqVaeOutput, xs: &Tensor) -> Result<LossTerms> {
        let reduction = self.loss.reduction;
        let per = Per::from(reduction);
        let reconstruction = self.loss.reconstruction.apply(
            &out.decoded,
            xs,
            self.decoder.output_kind(),
            reduction,
        )?;
        let b = xs.dim(0)?;
        let per_image = |t: &Tensor| reduction.apply(&t.reshape((b, ()))?);
        let commitment = per_image(&out.quantized.commitment_error)?;
        let mut total = (&reconstruction + commitment.affine(self.loss.commitment, 0.0)?)?;
        let mut terms = vec![Term::new("reconstruction", reconstruction, per)];
        if matches!(self.quantizer.config().update, CodebookUpdate::Gradient) {
            let codebook = per_image(&out.quantized.codebook_error)?;
            total = (total + &codebook)?;
            terms.push(Term::new("codebook", codebook, per));
        }
        let dtype = total.dtype();
        terms.push(Term::new("commitment", commitment, per));
        terms.push(Term::new(
            "perplexity",
            out.quantized.perplexity()?.to_dtype(dtype)?,
            Per::Image,
        ));
        terms.push(Term::new(
            "codes_used",
            out.quantized.codes_used()?.to_dtype(dtype)?,
            Per::Image,
        ));
        Ok(LossTerms { total, per, terms })
    }

    /// The code indices `[b, h, w]` (`u32`) of `xs` (evaluation mode).
    ///
    /// # Errors
    ///
    /// When `xs` is empty or not of the encoder's shape.
    pub fn encode_indices(&self, xs: &Tensor) -> Result<Tensor> {
        non_empty(xs)?;
        let (h, w) = self.grid;
        super::chunks::by_rows(xs, None, |xs, _| {
            let z = self.encoder.forward_t(xs, false)?;
            let b = xs.dim(0)?;
            self.quantizer
                .nearest(&self.to_vectors(&z)?)?
                .reshape((b, h, w))
        })
    }

    /// The quantised codes `[b, D·h·w]` of `xs` (evaluation mode): the
    /// latent [`decode_pixels`](Self::decode_pixels) takes.
    ///
    /// # Errors
    ///
    /// When `xs` is empty or not of the encoder's shape.
    pub fn encode(&self, xs: &Tensor) -> Result<Tensor> {
        let indices = self.encode_indices(xs)?;
        self.codes_of(&indices)
    }

    /// The code map `[b, D·h·w]` of code indices `[b, h, w]`.
    ///
    /// # Errors
    ///
    /// When `indices` is not `[b, h, w]` of the model's grid or an index is
    /// out of range.
    pub fn codes_of(&self, indices: &Tensor) -> Result<Tensor> {
        let (h, w) = self.grid;
        let b = match indices.dims() {
            [b, a, c] if (*a, *c) == (h, w) => *b,
            dims => candle_core::bail!("VQ-VAE: expected code indices [b, {h}, {w}], got {dims:?}"),
        };
        let v = self.quantizer.lookup(&indices.flatten_all()?)?; // [b·h·w, D]
        self.to_map(&v, b)
    }

    /// Decodes code maps `[n, D·h·w]` to pixels in `[0, 1]` (evaluation mode).
    /// Any vectors decode; the quantiser's codes are what the decoder learned.
    ///
    /// # Errors
    ///
    /// When `z` is not `[n, D·h·w]`.
    pub fn decode_pixels(&self, z: &Tensor) -> Result<Tensor> {
        super::chunks::by_rows(z, None, |z, _| {
            let out = self.decoder.forward_t(z, false)?;
            self.decoder.output_kind().to_pixels(&out)
        })
    }

    /// Decodes grids of code indices `[n, h, w]` to pixels in `[0, 1]`.
    ///
    /// # Errors
    ///
    /// As [`codes_of`](Self::codes_of).
    pub fn decode_indices(&self, indices: &Tensor) -> Result<Tensor> {
        self.decode_pixels(&self.codes_of(indices)?)
    }

    /// Reconstructions of `xs` as pixels in `[0, 1]` (evaluation mode, through
    /// the nearest codes).
    ///
    /// # Errors
    ///
    /// When `xs` is empty or not of the encoder's shape.
    pub fn reconstruct(&self, xs: &Tensor) -> Result<Tensor> {
        non_empty(xs)?;
        super::chunks::by_rows(xs, None, |xs, _| self.decode_pixels(&self.encode(xs)?))
    }

    /// `n` grids drawn from `prior` and decoded to pixels.
    ///
    /// # Errors
    ///
    /// When the prior's grid or code count is not the model's.
    pub fn sample_with(
        &self,
        prior: &dyn CodePrior,
        n: usize,
        rng: &mut dyn RngCore,
    ) -> Result<Tensor> {
        if prior.grid() != self.grid || prior.codes() != self.quantizer.codes() {
            candle_core::bail!(
                "VQ-VAE: a prior over {:?} grids of {} codes does not fit this model's {:?} grids of {} codes",
                prior.grid(),
                prior.codes(),
                self.grid,
                self.quantizer.codes()
            );
        }
        let indices = prior.sample_codes(n, rng, self.device())?;
        self.decode_indices(&indices)
    }

    /// `n` grids drawn from the model's own prior, decoded to pixels.
    ///
    /// # Errors
    ///
    /// A candle error from the decoder.
    pub fn sample(&self, n: usize, rng: &mut dyn RngCore) -> Result<Tensor> {
        self.sample_with(&self.prior, n, rng)
    }

    /// The code grids `[n, h, w]` of every image of `data` (evaluation mode,
    /// in dataset order), in batches of `batch_size`: what a prior over the
    /// codes is fitted or trained on.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a batch size of 0; data and candle errors.
    pub fn encode_dataset(&self, data: &dyn ImageSource, batch_size: usize) -> VResult<Tensor> {
        if batch_size == 0 {
            return Err(Error::config("batch_size", "must be positive"));
        }
        let mut parts = Vec::new();
        for batch in data.batches(batch_size, Shuffle::None, LastBatch::Keep, self.device())? {
            parts.push(self.encode_indices(&batch?.images)?);
        }
        if parts.is_empty() {
            return Err(Error::config("data", "holds no image"));
        }
        Ok(Tensor::cat(&parts, 0)?)
    }

    /// Fits the model's [`IndependentCodePrior`] to the codes of `data`
    /// (see [`IndependentCodePrior::fit`]; add-one smoothing), so that
    /// [`sample`](Self::sample) draws from it. The prior is a buffer: a model
    /// saved afterwards keeps it.
    ///
    /// # Errors
    ///
    /// As [`encode_dataset`](Self::encode_dataset).
    pub fn fit_prior(&self, data: &dyn ImageSource, batch_size: usize) -> VResult<()> {
        let codes = self.encode_dataset(data, batch_size)?;
        Ok(self.prior.fit(&codes, 1.0)?)
    }
}

/// The grid `(h, w)` of code vectors of width `d` that `encoder` gives: its
/// [`output_map`](Encoder::output_map)'s, or a row of `output_dim / d`.
///
/// # Errors
///
/// [`Error::Config`] naming `quantizer.code_dim` when the map's channels are
/// not `d`, or the output width is not a multiple of it.
pub(crate) fn code_grid(encoder: &dyn Encoder, d: usize) -> VResult<(usize, usize)> {
    let out = encoder.output_dim();
    match encoder.output_map() {
        Some(m) if m.channels == d => Ok((m.height, m.width)),
        Some(m) => Err(Error::config(
            "quantizer.code_dim",
            format!(
                "{d} must equal the encoder's output channels {} (its output map is {m})",
                m.channels
            ),
        )),
        None if d > 0 && out > 0 && out.is_multiple_of(d) => Ok((1, out / d)),
        None => Err(Error::config(
            "quantizer.code_dim",
            format!(
                "{d} does not divide the encoder's output width {out}: the encoder must give whole code vectors"
            ),
        )),
    }
}

impl<E: Encoder, D: Decoder> Trainable for VqVae<E, D> {
    fn params(&self) -> &ParamStore {
        &self.params
    }

    /// `{"reconstruction": …, "reduction": …, "commitment": …}`, as in the
    /// model config.
    fn loss_settings(&self) -> Option<String> {
        serde_json::to_string(&self.loss).ok()
    }

    /// In training mode, the quantiser's EMA statistics and usage change, and
    /// dead codes restart from the batch's encoder outputs drawn from `rng`.
    fn batch_loss(
        &self,
        batch: &Batch,
        rng: &mut dyn RngCore,
        ctx: &StepContext,
    ) -> Result<LossTerms> {
        let out = self.forward_t(&batch.images, ctx.mode.is_train(), rng)?;
        self.loss_terms(&out, batch.targets())
    }
}
