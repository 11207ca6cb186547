//! Chainable setters for vaekit's config structs.
//!
//! The configs that will gain fields (training settings, optimizer
//! hyper-parameters, losses, layouts, options) are `#[non_exhaustive]`, so a
//! new field is not a breaking change. Code outside vaekit then cannot write
//! them as struct literals; it starts from `Default::default()` or a `new`
//! constructor and changes fields with `with_<field>` setters, which
//! [`with_setters!`] writes, one per public field:
//!
//! ```
//! use vaekit::models::Preset;
//! use vaekit::train::TrainConfig;
//!
//! let config = TrainConfig::for_preset(Preset::DenseVae)
//!     .with_epochs(3)
//!     .with_batch_size(64);
//! assert_eq!((config.epochs, config.batch_size), (3, 64));
//! ```

/// Writes `pub fn with_<field>(self, value) -> Self` for each listed field of
/// a struct: `with_setters!(Struct { with_a(a: usize), with_b(b: Vec<u8>) })`,
/// or `Struct<'a> { … }` for a struct with a lifetime. Each setter is
/// documented with a link to its field.
macro_rules! with_setters {
    ($name:ident $(<$lt:lifetime>)? { $($setter:ident($field:ident: $ty:ty)),+ $(,)? }) => {
        impl$(<$lt>)? $name$(<$lt>)? {
            $(
                #[doc = concat!("Sets [`", stringify!($field), "`](Self::", stringify!($field), ") (chainable).")]
                #[must_use = "the setter returns the changed value"]
                pub fn $setter(mut self, $field: $ty) -> Self {
                    self.$field = $field;
                    self
                }
            )+
        }
    };
}
pub(crate) use with_setters;
