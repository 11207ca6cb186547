//! Conditioning: what a VAE's decoder sees besides the code `z`.
//!
//! A [`Vae`](super::Vae) takes a [`Conditioner`] as its fourth part. The
//! default, [`Unconditioned`], adds nothing; [`ClassConditioning`] appends a
//! class vector, `[z | class vector]`, taken from the label (one-hot) or
//! predicted from the image by a classifier head (its softmax), which turns
//! the VAE into the digit-conditioned VAE of the tutorial: one `z` renders
//! every digit in one style.

use candle_core::{DType, Device, Module, Result, Tensor};
use serde::{Deserialize, Serialize};

use super::trainable::{Per, Term};
use crate::data::Batch;
use crate::losses::{cross_entropy, Reduction};
use crate::{Error, Result as VResult};

/// What a conditioned model is told besides the codes, for a batch of rows:
/// the typed input of [`Model::decode`](super::Model::decode),
/// [`Model::reconstruct`](super::Model::reconstruct) and the evaluation
/// functions. An unconditioned model ignores it.
#[derive(Debug, Clone, Copy, Default)]
pub enum Condition<'a> {
    /// Nothing: for an unconditioned model, or one that predicts its
    /// condition from the images it reconstructs.
    #[default]
    None,
    /// One class label per row, `[n]` (any integer dtype).
    Labels(&'a Tensor),
    /// The same class for every row.
    Class(u32),
}

impl<'a> Condition<'a> {
    /// The labels of `batch`, or [`Condition::None`] for an unlabelled one.
    pub fn of(batch: &'a Batch) -> Self {
        batch
            .labels
            .as_ref()
            .map_or(Condition::None, Condition::Labels)
    }
}

/// Where a class-conditioned decoder's class vector comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Conditioning {
    /// A classifier predicts the class from the image; the decoder sees its
    /// softmax probabilities, and the loss adds `class_weight · cross-entropy`
    /// (the tutorial's design: no label is needed to encode).
    Predicted,
    /// The label is given: the decoder sees its one-hot vector (the classic
    /// conditional VAE, conditioning the decoder). No classifier is built.
    Given,
}

/// The vectors a [`Conditioner`] appends to the codes of a batch, and the
/// classifier's logits where it predicted them.
#[derive(Debug, Clone)]
pub struct ConditionVectors {
    /// `[n, width]`.
    pub vectors: Tensor,
    /// The classifier's logits `[n, classes]`, for a predicted condition.
    pub logits: Option<Tensor>,
}

/// The part of a [`Vae`](super::Vae) that gives its decoder a condition
/// beside `z`: the decoder takes `latent + width()` values.
///
/// Implement it for a conditioning of your own; [`Unconditioned`] and
/// [`ClassConditioning`] are vaekit's.
pub trait Conditioner: Send + Sync + std::fmt::Debug {
    /// Values appended to `z` (0: none).
    fn width(&self) -> usize;

    /// The number of classes, for a class conditioning; `None` by default.
    fn classes(&self) -> Option<usize> {
        None
    }

    /// Where the condition comes from, for a class conditioning; `None` by
    /// default.
    fn source(&self) -> Option<Conditioning> {
        None
    }

    /// Whether training needs a label per image (`false` by default).
    fn needs_labels(&self) -> bool {
        false
    }

    /// The vectors for `rows` rows: from `images` (`[rows, c, h, w]`, when the
    /// rows are images) where the conditioner predicts them, otherwise from
    /// `condition`; `None` for a conditioner of width 0.
    ///
    /// # Errors
    ///
    /// When neither gives the condition, or a label is not one of the classes.
    fn vectors(
        &self,
        images: Option<&Tensor>,
        condition: Condition<'_>,
        rows: usize,
        dtype: DType,
        device: &Device,
    ) -> Result<Option<ConditionVectors>>;

    /// A term this conditioner adds to the training loss, with its weight in
    /// the total (the classifier's cross-entropy); `None` by default.
    fn loss_term(
        &self,
        vectors: &ConditionVectors,
        labels: Option<&Tensor>,
    ) -> Result<Option<(Term, f64)>> {
        let _ = (vectors, labels);
        Ok(None)
    }

    /// Metrics reported in evaluation (a classifier's `accuracy`); none by
    /// default.
    fn metrics(&self, vectors: &ConditionVectors, labels: Option<&Tensor>) -> Result<Vec<Term>> {
        let _ = (vectors, labels);
        Ok(Vec::new())
    }
}

impl<C: Conditioner + ?Sized> Conditioner for Box<C> {
    fn width(&self) -> usize {
        (**self).width()
    }
    fn classes(&self) -> Option<usize> {
        (**self).classes()
    }
    fn source(&self) -> Option<Conditioning> {
        (**self).source()
    }
    fn needs_labels(&self) -> bool {
        (**self).needs_labels()
    }
    fn vectors(
        &self,
        images: Option<&Tensor>,
        condition: Condition<'_>,
        rows: usize,
        dtype: DType,
        device: &Device,
    ) -> Result<Option<ConditionVectors>> {
        (**self).vectors(images, condition, rows, dtype, device)
    }
    fn loss_term(
        &self,
        vectors: &ConditionVectors,
        labels: Option<&Tensor>,
    ) -> Result<Option<(Term, f64)>> {
        (**self).loss_term(vectors, labels)
    }
    fn metrics(&self, vectors: &ConditionVectors, labels: Option<&Tensor>) -> Result<Vec<Term>> {
        (**self).metrics(vectors, labels)
    }
}

/// No condition: the decoder sees `z` alone. The default conditioning of a
/// [`Vae`](super::Vae).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unconditioned;

impl Conditioner for Unconditioned {
    fn width(&self) -> usize {
        0
    }
    fn vectors(
        &self,
        _images: Option<&Tensor>,
        _condition: Condition<'_>,
        _rows: usize,
        _dtype: DType,
        _device: &Device,
    ) -> Result<Option<ConditionVectors>> {
        Ok(None)
    }
}

/// A class vector after `z`: the label's one-hot vector
/// ([`given`](Self::given)), or the softmax of a classifier over the
/// flattened image ([`predicted`](Self::predicted)), whose cross-entropy
/// joins the loss with weight `class_weight`.
///
/// `C` is the classifier: any candle [`Module`] from flattened images
/// `[b, c·h·w]` to logits `[b, classes]`, such as vaekit's
/// [`Mlp`](crate::nets::Mlp).
#[derive(Debug, Clone)]
pub struct ClassConditioning<C = crate::nets::Mlp> {
    classes: usize,
    classifier: Option<C>,
    class_weight: f64,
}

impl<C> ClassConditioning<C> {
    /// The label's one-hot vector, over `classes` classes.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for no class, or more than vaekit's widest layer.
    pub fn given(classes: usize) -> VResult<Self> {
        check_classes(classes)?;
        Ok(Self {
            classes,
            classifier: None,
            class_weight: 0.0,
        })
    }

    /// The softmax of `classifier` over `classes` classes; its cross-entropy
    /// against the labels is weighted `class_weight` in the loss.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for no class, more than vaekit's widest layer, or a
    /// weight that is negative or not finite.
    pub fn predicted(classes: usize, classifier: C, class_weight: f64) -> VResult<Self> {
        check_classes(classes)?;
        if !(class_weight.is_finite() && class_weight >= 0.0) {
            return Err(Error::config(
                "conditioning.class_weight",
                format!("{class_weight} must be finite and ≥ 0"),
            ));
        }
        Ok(Self {
            classes,
            classifier: Some(classifier),
            class_weight,
        })
    }

    /// The classifier, for a predicted conditioning.
    pub fn classifier(&self) -> Option<&C> {
        self.classifier.as_ref()
    }

    /// The weight of the classifier's cross-entropy in the loss.
    pub fn class_weight(&self) -> f64 {
        self.class_weight
    }
}

fn check_classes(classes: usize) -> VResult<()> {
    if classes == 0 {
        return Err(Error::config("conditioning.classes", "must be positive"));
    }
    if classes > crate::nets::MAX_WIDTH {
        return Err(Error::config(
            "conditioning.classes",
            format!(
                "{classes} is more than the largest width vaekit accepts, {}",
                crate::nets::MAX_WIDTH
            ),
        ));
    }
    Ok(())
}

/// The one-hot vector of `class` among `classes`, as a decoder takes it
/// after `z` (for [`manifold`](crate::pictures::manifold) and
/// [`interpolation_strip`](crate::pictures::interpolation_strip)).
///
/// # Errors
///
/// [`Error::Config`] if `class` is not below `classes`.
pub fn class_vector(class: u32, classes: usize) -> VResult<Vec<f32>> {
    if class as usize >= classes {
        return Err(Error::config(
            "class",
            format!("{class} is not one of the model's {classes} classes"),
        ));
    }
    Ok((0..classes)
        .map(|k| if k == class as usize { 1.0 } else { 0.0 })
        .collect())
}

/// Checks that every label `[n]` is below `classes` (one small transfer from
/// the device).
pub(crate) fn check_labels(labels: &Tensor, classes: usize) -> Result<()> {
    if labels.dim(0)? == 0 {
        return Ok(());
    }
    let max = labels.to_dtype(DType::U32)?.max(0)?.to_scalar::<u32>()?;
    if max as usize >= classes {
        candle_core::bail!(
            "label {max} is not one of the model's {classes} classes (0 to {})",
            classes - 1
        );
    }
    Ok(())
}

/// One-hot vectors `[n, classes]` in `dtype` for `labels` `[n]` (any integer
/// dtype).
///
/// # Errors
///
/// If a label is not one of the classes.
pub fn one_hot(labels: &Tensor, classes: usize, dtype: DType) -> Result<Tensor> {
    check_labels(labels, classes)?;
    let n = labels.dim(0)?;
    let labels = labels.to_dtype(DType::U32)?;
    let ids = Tensor::arange(0u32, classes as u32, labels.device())?.unsqueeze(0)?; // [1, k]
    labels.reshape((n, 1))?.broadcast_eq(&ids)?.to_dtype(dtype) // [n, k]
}

impl<C: Module + Send + Sync + std::fmt::Debug> Conditioner for ClassConditioning<C> {
    fn width(&self) -> usize {
        self.classes
    }

    fn classes(&self) -> Option<usize> {
        Some(self.classes)
    }

    fn source(&self) -> Option<Conditioning> {
        Some(match self.classifier {
            Some(_) => Conditioning::Predicted,
            None => Conditioning::Given,
        })
    }

    /// Always: the labels condition the decoder, or train the classifier.
    fn needs_labels(&self) -> bool {
        true
    }

    fn vectors(
        &self,
        images: Option<&Tensor>,
        condition: Condition<'_>,
        rows: usize,
        dtype: DType,
        device: &Device,
    ) -> Result<Option<ConditionVectors>> {
        if let (Some(classifier), Some(images)) = (&self.classifier, images) {
            let logits = classifier.forward(&images.flatten_from(1)?)?; // [b, k]
                                                                        // softmax, not softmax_last_dim: the latter has no backward pass.
            let probs = candle_nn::ops::softmax(&logits, 1)?;
            return Ok(Some(ConditionVectors {
                vectors: probs,
                logits: Some(logits),
            }));
        }
        let vectors = match condition {
            Condition::Labels(labels) => {
                if labels.dim(0)? != rows {
                    candle_core::bail!("{} labels for {rows} rows", labels.dim(0)?);
                }
                one_hot(labels, self.classes, dtype)?
            }
            Condition::Class(class) => {
                let v = class_vector(class, self.classes)
                    .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
                Tensor::from_vec(v, (1, self.classes), device)?
                    .to_dtype(dtype)?
                    .repeat((rows, 1))? // [rows, k]
            }
            Condition::None => candle_core::bail!(
                "this model's decoder is conditioned on a class: give the labels \
                 (Condition::Labels) or one class for every row (Condition::Class)"
            ),
        };
        Ok(Some(ConditionVectors {
            vectors,
            logits: None,
        }))
    }

    /// With a classifier, `classification`: its mean cross-entropy per image
    /// against the labels, weighted `class_weight` in the total.
    fn loss_term(
        &self,
        vectors: &ConditionVectors,
        labels: Option<&Tensor>,
    ) -> Result<Option<(Term, f64)>> {
        let Some(logits) = &vectors.logits else {
            return Ok(None);
        };
        let labels = labels.ok_or_else(|| {
            candle_core::Error::Msg("the classifier trains on labels: this batch has none".into())
        })?;
        check_labels(labels, self.classes)?;
        let ce = cross_entropy(logits, labels, Reduction::Mean)?;
        Ok(Some((
            Term::new("classification", ce, Per::Image),
            self.class_weight,
        )))
    }

    /// With a classifier, `accuracy`: the share of images whose most likely
    /// class is their label.
    fn metrics(&self, vectors: &ConditionVectors, labels: Option<&Tensor>) -> Result<Vec<Term>> {
        let (Some(logits), Some(labels)) = (&vectors.logits, labels) else {
            return Ok(Vec::new());
        };
        let hits = logits
            .argmax(1)? // [b]
            .eq(&labels.to_dtype(DType::U32)?)?
            .to_dtype(DType::F32)?
            .mean_all()?;
        Ok(vec![Term::new("accuracy", hits, Per::Image)])
    }
}
