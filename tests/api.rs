//! Building configs from outside vaekit: every `#[non_exhaustive]` config is
//! made from its `Default` or `new` constructor and changed through its
//! `with_<field>` setters; each setter sets its own field and nothing else,
//! each constructor gives the defaults its documentation states, and models
//! built from the constructors pass their checks.

use candle_core::{DType, Device, Tensor};
use vaekit::data::{Augmentation, DataLimits, LastBatch, MAX_DATASET_BYTES};
use vaekit::eval::ImportanceSampling;
use vaekit::latent::{MixtureConfig, PosteriorParam, PriorConfig, VampConfig};
use vaekit::losses::Reduction;
use vaekit::models::{
    AeLoss, AeLossConfig, AutoencoderConfig, ClassConditioning, Conditioner, Conditioning,
    ConditioningConfig, DecoderConfig, EncoderConfig, KlEstimator, Likelihood, Model, ModelConfig,
    ModelLimits, Objective, Preset, VaeConfig, VaeLossConfig, MAX_PARAMETERS,
};
use vaekit::nets::Mlp;
use vaekit::nets::{
    Activation, Conv2dConfig, ConvBlockConfig, ConvDecoderConfig, ConvEncoderConfig,
    ConvTranspose2dConfig, DenseDecoderConfig, DenseEncoderConfig, ImageShape, MlpConfig, Norm,
    OutputKind, UpBlockConfig, Upsampling,
};
use vaekit::params::InitScheme;
use vaekit::params::ParamStore;
use vaekit::train::{
    AdamParams, AdamWParams, BetaSchedule, Binarization, Corruption, EarlyStopping,
    OptimizerConfig, Progress, RmspropParams, RunConfig, SgdParams, TrainConfig,
};
use vaekit::Error;

#[test]
fn training_settings_are_built_through_setters() {
    let stop = EarlyStopping::new(4);
    assert_eq!((stop.patience, stop.min_delta), (4, 0.0));
    let stop = stop.with_patience(7).with_min_delta(0.25);
    assert_eq!((stop.patience, stop.min_delta), (7, 0.25));

    let sgd = OptimizerConfig::Sgd(SgdParams::default().with_lr(0.5));
    let schedule = BetaSchedule::Constant { beta: 0.5 };
    let corruption = Corruption::Masking { p: 0.3 };
    let augmentation = Augmentation::default().with_crop_padding(2);
    let c = TrainConfig::default()
        .with_epochs(3)
        .with_batch_size(17)
        .with_seed(99)
        .with_optimizer(sgd.clone())
        .with_binarization(Binarization::Dynamic)
        .with_last_batch(LastBatch::Drop)
        .with_early_stopping(Some(stop))
        .with_eval_batch_size(33)
        .with_progress(Progress::Hidden)
        .with_beta_schedule(Some(schedule))
        .with_corruption(Some(corruption))
        .with_augmentation(augmentation);
    assert_eq!((c.epochs, c.batch_size, c.seed), (3, 17, 99));
    assert_eq!(c.optimizer, sgd);
    assert_eq!(c.binarization, Binarization::Dynamic);
    assert_eq!(c.last_batch, LastBatch::Drop);
    assert_eq!(c.early_stopping, Some(stop));
    assert_eq!(c.eval_batch_size, 33);
    assert_eq!(c.progress, Progress::Hidden);
    assert_eq!(c.beta_schedule, Some(schedule));
    assert_eq!(c.corruption, Some(corruption));
    assert_eq!(c.augmentation, augmentation);
    c.validate().expect("every value set is valid");

    // A setter on a preset's settings changes that field alone.
    let preset = TrainConfig::for_preset(Preset::ConvAe);
    let mut by_hand = preset.clone();
    by_hand.epochs = 2;
    assert_eq!(preset.clone().with_epochs(2), by_hand);

    let model = Preset::DenseVae.config();
    let run = RunConfig::new(model.clone());
    assert_eq!((&run.model, &run.train), (&model, &TrainConfig::default()));
    let run = run
        .with_model(Preset::ConvAe.config())
        .with_train(preset.clone());
    assert_eq!(run, RunConfig::for_preset(Preset::ConvAe));
    run.check().expect("a preset's run is valid");
}

#[test]
fn optimizer_hyper_parameters_are_built_through_setters() {
    let adam = AdamParams::default()
        .with_lr(0.1)
        .with_beta1(0.8)
        .with_beta2(0.9)
        .with_eps(1e-6)
        .with_weight_decay(0.01);
    assert_eq!(
        (adam.lr, adam.beta1, adam.beta2, adam.eps, adam.weight_decay),
        (0.1, 0.8, 0.9, 1e-6, 0.01)
    );
    let adamw = AdamWParams::default()
        .with_lr(0.2)
        .with_beta1(0.7)
        .with_beta2(0.95)
        .with_eps(1e-7)
        .with_weight_decay(0.05);
    assert_eq!(
        (
            adamw.lr,
            adamw.beta1,
            adamw.beta2,
            adamw.eps,
            adamw.weight_decay
        ),
        (0.2, 0.7, 0.95, 1e-7, 0.05)
    );
    let sgd = SgdParams::default()
        .with_lr(0.3)
        .with_momentum(0.9)
        .with_dampening(0.0)
        .with_weight_decay(0.02)
        .with_nesterov(true);
    assert_eq!(
        (sgd.lr, sgd.momentum, sgd.dampening, sgd.weight_decay),
        (0.3, 0.9, 0.0, 0.02)
    );
    assert!(sgd.nesterov);
    assert_eq!(SgdParams::default().with_dampening(0.4).dampening, 0.4);
    let rmsprop = RmspropParams::default()
        .with_lr(0.4)
        .with_alpha(0.9)
        .with_eps(1e-5)
        .with_weight_decay(0.03)
        .with_momentum(0.5)
        .with_centered(true);
    assert_eq!(
        (
            rmsprop.lr,
            rmsprop.alpha,
            rmsprop.eps,
            rmsprop.weight_decay,
            rmsprop.momentum
        ),
        (0.4, 0.9, 1e-5, 0.03, 0.5)
    );
    assert!(rmsprop.centered);
    for config in [
        OptimizerConfig::Adam(adam),
        OptimizerConfig::AdamW(adamw),
        OptimizerConfig::Sgd(sgd),
        OptimizerConfig::Rmsprop(rmsprop),
    ] {
        config.validate().expect("every value set is valid");
    }
}

#[test]
fn losses_are_built_through_setters() {
    let vae = VaeLossConfig::default()
        .with_likelihood(Likelihood::Gaussian { sigma: 0.5 })
        .with_kl(KlEstimator::SingleSample)
        .with_beta(4.0)
        .with_reduction(Reduction::Sum)
        .with_objective(Objective::Iwae { samples: 5 })
        .with_free_bits(Some(0.5));
    assert_eq!(vae.likelihood, Likelihood::Gaussian { sigma: 0.5 });
    assert_eq!(vae.kl, KlEstimator::SingleSample);
    assert_eq!(vae.beta, 4.0);
    assert_eq!(vae.reduction, Reduction::Sum);
    assert_eq!(vae.objective, Objective::Iwae { samples: 5 });
    assert_eq!(vae.free_bits, Some(0.5));

    let ae = AeLossConfig::default()
        .with_loss(AeLoss::Bce)
        .with_reduction(Reduction::Sum);
    assert_eq!((ae.loss, ae.reduction), (AeLoss::Bce, Reduction::Sum));
}

/// Every field of an MLP layout.
fn mlp_fields(c: &MlpConfig) -> (usize, &[usize], usize, Activation, Activation, InitScheme) {
    (
        c.in_dim,
        &c.hidden,
        c.out_dim,
        c.activation,
        c.out_activation,
        c.init,
    )
}

/// Every field of an encoder block.
fn block_fields(c: &ConvBlockConfig) -> (usize, usize, usize, usize, Norm, Activation) {
    (
        c.out_channels,
        c.kernel,
        c.stride,
        c.padding,
        c.norm,
        c.activation,
    )
}

/// Every field of a decoder block.
fn up_fields(c: &UpBlockConfig) -> (Upsampling, usize, usize, usize, usize, Norm, Activation) {
    (
        c.upsampling,
        c.out_channels,
        c.kernel,
        c.stride,
        c.padding,
        c.norm,
        c.activation,
    )
}

#[test]
fn network_layouts_are_built_through_constructors_and_setters() {
    use Activation::{Identity, LeakyRelu, Relu, Sigmoid, Tanh};
    use InitScheme::{GlorotUniform, PyTorch};

    let mlp = MlpConfig::new(784, &[128, 64], 10);
    assert_eq!(
        mlp_fields(&mlp),
        (784, &[128, 64][..], 10, Relu, Identity, PyTorch)
    );
    let mlp = mlp
        .with_in_dim(12)
        .with_hidden(vec![5])
        .with_out_dim(3)
        .with_activation(Tanh)
        .with_out_activation(Sigmoid)
        .with_init(GlorotUniform);
    assert_eq!(
        mlp_fields(&mlp),
        (12, &[5][..], 3, Tanh, Sigmoid, GlorotUniform)
    );

    let block = ConvBlockConfig::new(32, 3, 2, 1);
    assert_eq!(block_fields(&block), (32, 3, 2, 1, Norm::None, Relu));
    let block = block
        .with_out_channels(8)
        .with_kernel(5)
        .with_stride(1)
        .with_padding(2)
        .with_norm(Norm::Batch)
        .with_activation(LeakyRelu(0.2));
    assert_eq!(
        block_fields(&block),
        (8, 5, 1, 2, Norm::Batch, LeakyRelu(0.2))
    );

    let up = UpBlockConfig::new(Upsampling::Conv, 16, 3, 1, 1);
    assert_eq!(
        up_fields(&up),
        (Upsampling::Conv, 16, 3, 1, 1, Norm::None, Relu)
    );
    let grow = Upsampling::Transposed { output_padding: 1 };
    let up = up
        .with_upsampling(grow)
        .with_out_channels(4)
        .with_kernel(4)
        .with_stride(2)
        .with_padding(0)
        .with_norm(Norm::Batch)
        .with_activation(Identity);
    assert_eq!(up_fields(&up), (grow, 4, 4, 2, 0, Norm::Batch, Identity));

    let shape = ImageShape::new(3, 8, 8);
    let encoder = ConvEncoderConfig::new(ImageShape::MNIST, vec![block.clone()], 6);
    let fields = |c: &ConvEncoderConfig| (c.input, c.blocks.clone(), c.output_dim, c.init);
    assert_eq!(
        fields(&encoder),
        (ImageShape::MNIST, vec![block], 6, PyTorch)
    );
    let encoder = encoder
        .with_input(shape)
        .with_blocks(vec![])
        .with_output_dim(2)
        .with_init(GlorotUniform);
    assert_eq!(fields(&encoder), (shape, vec![], 2, GlorotUniform));

    let start = ImageShape::new(4, 7, 7);
    let decoder = ConvDecoderConfig::new(2, start, vec![up.clone()], ImageShape::MNIST);
    let fields = |c: &ConvDecoderConfig| {
        let layout = (c.input_dim, c.start, c.blocks.clone(), c.output);
        (layout, c.fc_activation, c.output_kind, c.init)
    };
    let layout = (2, start, vec![up], ImageShape::MNIST);
    assert_eq!(
        fields(&decoder),
        (layout, Relu, OutputKind::Logits, PyTorch)
    );
    let decoder = decoder
        .with_input_dim(3)
        .with_start(shape)
        .with_fc_activation(Identity)
        .with_blocks(vec![])
        .with_output(shape)
        .with_output_kind(OutputKind::Linear)
        .with_init(GlorotUniform);
    let layout = (3, shape, vec![], shape);
    assert_eq!(
        fields(&decoder),
        (layout, Identity, OutputKind::Linear, GlorotUniform)
    );

    let dense = DenseEncoderConfig::new(ImageShape::MNIST, &[64], 4)
        .with_input(shape)
        .with_hidden(vec![9, 8])
        .with_activation(Sigmoid)
        .with_output_dim(6)
        .with_init(GlorotUniform);
    assert_eq!(
        (
            dense.input,
            dense.hidden,
            dense.activation,
            dense.output_dim,
            dense.init
        ),
        (shape, vec![9, 8], Sigmoid, 6, GlorotUniform)
    );
    let dense = DenseDecoderConfig::new(2, &[64], ImageShape::MNIST)
        .with_input_dim(5)
        .with_hidden(vec![7])
        .with_activation(Tanh)
        .with_output(shape)
        .with_output_kind(OutputKind::Probabilities)
        .with_init(GlorotUniform);
    assert_eq!(
        (
            dense.input_dim,
            dense.hidden,
            dense.activation,
            dense.output
        ),
        (5, vec![7], Tanh, shape)
    );
    assert_eq!(
        (dense.output_kind, dense.init),
        (OutputKind::Probabilities, GlorotUniform)
    );

    let conv = Conv2dConfig::default().with_stride(2).with_padding(1);
    assert_eq!((conv.stride, conv.padding), (2, 1));
    let transposed = ConvTranspose2dConfig::default()
        .with_stride(2)
        .with_padding(1)
        .with_output_padding(1);
    assert_eq!(
        (
            transposed.stride,
            transposed.padding,
            transposed.output_padding
        ),
        (2, 1, 1)
    );
}

/// A dense encoder of MNIST digits to `2 · latent` values and a dense decoder
/// of `input` values to digits.
fn dense_parts(latent: usize, input: usize) -> (EncoderConfig, DecoderConfig) {
    (
        EncoderConfig::Dense(DenseEncoderConfig::new(
            ImageShape::MNIST,
            &[16],
            2 * latent,
        )),
        DecoderConfig::Dense(DenseDecoderConfig::new(input, &[16], ImageShape::MNIST)),
    )
}

#[test]
fn a_vae_config_from_its_constructor_builds_a_model() {
    let fields = |c: &VaeConfig| {
        let parts = (c.latent_dim, c.encoder.clone(), c.decoder.clone());
        (parts, c.prior.clone(), c.posterior, c.loss)
    };
    let (encoder, decoder) = dense_parts(2, 2);
    let vae = VaeConfig::new(2, encoder.clone(), decoder.clone());
    let defaults = (
        PriorConfig::StandardNormal,
        PosteriorParam::LogVariance,
        VaeLossConfig::default(),
    );
    assert_eq!(
        fields(&vae),
        ((2, encoder, decoder), defaults.0, defaults.1, defaults.2)
    );
    Model::new(&ModelConfig::Vae(vae.clone()), &Device::Cpu, 0).expect("a VAE");

    let mixture = PriorConfig::GaussianMixture(MixtureConfig::default());
    let floor = PosteriorParam::ExpWithFloor { floor: 1e-5 };
    let loss = VaeLossConfig::default().with_beta(2.0);
    let (encoder, decoder) = dense_parts(3, 3);
    let vae = vae
        .with_latent_dim(3)
        .with_encoder(encoder.clone())
        .with_decoder(decoder.clone())
        .with_prior(mixture.clone())
        .with_posterior(floor)
        .with_loss(loss);
    assert_eq!(fields(&vae), ((3, encoder, decoder), mixture, floor, loss));
    Model::new(&ModelConfig::Vae(vae), &Device::Cpu, 0).expect("a VAE with a mixture prior");
}

#[test]
fn an_autoencoder_config_from_its_constructor_builds_a_model() {
    let fields =
        |c: &AutoencoderConfig| (c.latent_dim, c.encoder.clone(), c.decoder.clone(), c.loss);
    let encoder = EncoderConfig::Conv(ConvEncoderConfig::new(
        ImageShape::MNIST,
        vec![ConvBlockConfig::new(4, 3, 2, 1)],
        2,
    ));
    let up = UpBlockConfig::new(Upsampling::NearestConv { scale: 2 }, 1, 3, 1, 1)
        .with_activation(Activation::Identity);
    let decoder = DecoderConfig::Conv(ConvDecoderConfig::new(
        2,
        ImageShape::new(4, 14, 14),
        vec![up],
        ImageShape::MNIST,
    ));
    let ae = AutoencoderConfig::new(2, encoder.clone(), decoder.clone());
    assert_eq!(fields(&ae), (2, encoder, decoder, AeLossConfig::default()));
    Model::new(&ModelConfig::Autoencoder(ae.clone()), &Device::Cpu, 0).expect("a conv autoencoder");

    let bce = AeLossConfig::default().with_loss(AeLoss::Bce);
    let (encoder, decoder) = dense_parts(1, 2);
    let ae = ae
        .with_latent_dim(2)
        .with_encoder(encoder.clone())
        .with_decoder(decoder.clone())
        .with_loss(bce);
    assert_eq!(fields(&ae), (2, encoder, decoder, bce));

    let limits = ModelLimits::default();
    assert_eq!(limits.max_parameters, MAX_PARAMETERS);
    assert_eq!(limits.with_max_parameters(1000).max_parameters, 1000);
}

#[test]
fn a_conditioned_vae_config_from_its_constructors_builds_a_model() {
    let classifier = MlpConfig::new(ImageShape::MNIST.numel(), &[8], 10);
    let (encoder, decoder) = dense_parts(2, 2 + 10);
    let predicted =
        ConditioningConfig::classes(Conditioning::Predicted, 10, classifier.clone(), 1.0);
    assert_eq!(
        (predicted.class_count(), predicted.source()),
        (10, Conditioning::Predicted)
    );
    match &predicted {
        ConditioningConfig::Classifier(c) => {
            assert_eq!(
                (c.classes, &c.classifier, c.class_weight),
                (10, &classifier, 1.0)
            )
        }
        other => panic!("expected a classifier, got {other:?}"),
    }
    let vae = VaeConfig::new(2, encoder, decoder).with_conditioning(Some(predicted));
    let model = Model::new(&ModelConfig::Vae(vae), &Device::Cpu, 0).expect("a digit CVAE");
    assert_eq!(model.classes(), Some(10));
    assert_eq!(model.conditioning(), Some(Conditioning::Predicted));

    let (encoder, decoder) = dense_parts(3, 3 + 5);
    let given = ConditioningConfig::classes(Conditioning::Given, 5, classifier, 10.0);
    match &given {
        ConditioningConfig::Labels(c) => assert_eq!(c.classes, 5),
        other => panic!("expected labels, got {other:?}"),
    }
    let vae = VaeConfig::new(3, encoder, decoder).with_conditioning(Some(given));
    let model = Model::new(&ModelConfig::Vae(vae), &Device::Cpu, 0).expect("a given-label CVAE");
    assert_eq!(model.conditioning(), Some(Conditioning::Given));
    assert!(model
        .classify(&Tensor::zeros((1, 1, 28, 28), DType::F32, &Device::Cpu).unwrap())
        .unwrap()
        .is_none());

    let given = ClassConditioning::<Mlp>::given(10).expect("10 classes");
    assert_eq!((given.width(), given.classes()), (10, Some(10)));
    for bad in [-1.0, f64::NAN] {
        let mlp = Mlp::new(
            &MlpConfig::new(4, &[], 3),
            ParamStore::new(&Device::Cpu).var_builder(0),
        )
        .expect("an MLP");
        match ClassConditioning::predicted(3, mlp, bad) {
            Err(Error::Config { field, .. }) => assert_eq!(field, "conditioning.class_weight"),
            other => panic!("expected a config error, got {other:?}"),
        }
    }
}

#[test]
fn prior_settings_are_built_through_setters() {
    let mixture = MixtureConfig::default()
        .with_components(3)
        .with_spread(2.0)
        .with_sigma(0.5)
        .with_learn_means(false)
        .with_learn_variances(false);
    assert_eq!(
        (mixture.components, mixture.spread, mixture.sigma),
        (3, 2.0, 0.5)
    );
    assert!(!mixture.learn_means && !mixture.learn_variances);
    let vamp = VampConfig::default()
        .with_components(7)
        .with_init_mean(0.5)
        .with_init_std(0.1);
    assert_eq!(
        (vamp.components, vamp.init_mean, vamp.init_std),
        (7, 0.5, 0.1)
    );
}

#[test]
fn data_and_evaluation_settings_are_built_through_setters() {
    let augment = Augmentation::default()
        .with_horizontal_flip(true)
        .with_crop_padding(3);
    assert!(augment.horizontal_flip);
    assert_eq!(augment.crop_padding, 3);

    assert_eq!(DataLimits::default().max_bytes, MAX_DATASET_BYTES);
    assert_eq!(DataLimits::default().with_max_bytes(42).max_bytes, 42);

    let s = ImportanceSampling::default()
        .with_samples(50)
        .with_seed(7)
        .with_images_per_pass(10)
        .with_pairs_per_pass(500);
    assert_eq!(
        (s.samples, s.seed, s.images_per_pass, s.pairs_per_pass),
        (50, 7, 10, 500)
    );
    s.validate().expect("positive counts");
}

#[cfg(feature = "image-folder")]
#[test]
fn image_folder_options_are_built_through_setters() {
    use vaekit::data::{Channels, ImageFolderOptions, Labels, Unreadable};

    let o = ImageFolderOptions::default()
        .with_height(32)
        .with_width(48)
        .with_channels(Channels::Grey)
        .with_labels(Labels::SubFolders)
        .with_background([1, 2, 3])
        .with_unreadable(Unreadable::Fail)
        .with_memory_budget(1 << 20)
        .with_workers(3)
        .with_prefetch(5)
        .with_max_file_bytes(1 << 16);
    assert_eq!((o.height, o.width), (32, 48));
    assert_eq!(
        (o.channels, o.labels, o.background, o.unreadable),
        (
            Channels::Grey,
            Labels::SubFolders,
            [1, 2, 3],
            Unreadable::Fail
        )
    );
    assert_eq!(
        (o.memory_budget, o.workers, o.prefetch, o.max_file_bytes),
        (1 << 20, 3, 5, 1 << 16)
    );
    assert_eq!(o.shape(), ImageShape::new(1, 32, 48));
}

#[cfg(feature = "pictures")]
#[test]
fn picture_options_are_built_through_setters() {
    use vaekit::pictures::{ExplorerOptions, GridLabels, GridStyle, SliderRange};

    let style = GridStyle::default()
        .with_scale(3)
        .with_padding(1)
        .with_background(255);
    assert_eq!((style.scale, style.padding, style.background), (3, 1, 255));

    let labels = GridLabels::default()
        .with_rows(vec!["a".into()])
        .with_columns(vec!["b".into(), "c".into()])
        .with_row_title(Some("z2".into()))
        .with_column_title(Some("z1".into()));
    assert_eq!(
        (labels.rows, labels.columns),
        (vec!["a".to_string()], vec!["b".into(), "c".into()])
    );
    assert_eq!(
        (labels.row_title.as_deref(), labels.column_title.as_deref()),
        (Some("z2"), Some("z1"))
    );

    let points = [(0.5f32, -0.5f32)];
    let digits = [7u8];
    let range = SliderRange::Fixed([(-1.0, 1.0), (-2.0, 2.0)]);
    let options = ExplorerOptions::default()
        .with_scatter(Some((&points, &digits)))
        .with_range(range)
        .with_classes(10);
    let (p, l) = options.scatter.expect("a scatter");
    assert_eq!((p, l), (&points[..], &digits[..]));
    assert_eq!((options.range, options.classes), (range, 10));
}
