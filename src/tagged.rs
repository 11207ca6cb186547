//! Deserialising the internally tagged config enums (`{"kind": "vae", …}`,
//! `{"type": "conv", …}`) so that an error names the path of the field at
//! fault (`encoder.blocks[1].kernel`), which serde's derived code for such
//! enums cannot do: it buffers the object and forgets where it is.
//!
//! [`tagged_deserialize!`] implements `Deserialize` for such an enum: the tag
//! picks the variant, and the rest of the object is deserialised into that
//! variant's struct through `serde_path_to_error`; an error carries the inner
//! path to [`crate::models::parse_json`], which joins it to the outer one.

use serde::de::DeserializeOwned;
use serde_json::Value;

/// Separates an inner field path from its message inside an error string.
pub(crate) const PATH_MARK: char = '\u{1}';

/// Deserialises `value` (an object without its tag) into `T`; an error names
/// the path inside `value`.
pub(crate) fn inner<T: DeserializeOwned>(value: Value) -> Result<T, String> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        // A nested tagged enum has already marked its own path: prepend ours.
        match message.split_once(PATH_MARK) {
            Some((_, rest)) => match rest.split_once(PATH_MARK) {
                Some((deeper, msg)) => mark(&join(&path, deeper), msg),
                None => mark(&path, &message),
            },
            None => mark(&path, &message),
        }
    })
}

/// Splits the object `value` into its `tag` and the rest.
pub(crate) fn split_tag(
    value: Value,
    tag: &str,
    expected: &[&str],
) -> Result<(String, Value), String> {
    let Value::Object(mut map) = value else {
        return Err(mark(
            ".",
            &format!("expected an object with a `{tag}` field"),
        ));
    };
    match map.remove(tag) {
        Some(Value::String(name)) if expected.contains(&name.as_str()) => {
            Ok((name, Value::Object(map)))
        }
        Some(other) => Err(mark(
            tag,
            &format!(
                "unknown {tag} {other}, expected one of {}",
                expected.join(", ")
            ),
        )),
        None => Err(mark(
            tag,
            &format!("missing, expected one of {}", expected.join(", ")),
        )),
    }
}

/// `path` and `message`, marked for [`crate::models::parse_json`].
pub(crate) fn mark(path: &str, message: &str) -> String {
    format!("{PATH_MARK}{path}{PATH_MARK}{message}")
}

/// `outer.inner`, where either may be serde_path_to_error's root `.`.
pub(crate) fn join(outer: &str, inner: &str) -> String {
    match (outer, inner) {
        (".", i) => i.to_string(),
        (o, ".") => o.to_string(),
        (o, i) if i.starts_with('[') => format!("{o}{i}"),
        (o, i) => format!("{o}.{i}"),
    }
}

/// Implements `Deserialize` for an internally tagged enum whose variants each
/// hold one struct (or nothing): `tagged_deserialize!(Enum, "tag", { "name" =>
/// Variant(Struct), "other" => Unit, })`.
macro_rules! tagged_deserialize {
    ($ty:ident, $tag:literal, { $($name:literal => $variant:ident $(($inner:ty))?),+ $(,)? }) => {
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let value = <serde_json::Value as serde::Deserialize>::deserialize(d)?;
                let (name, rest) = $crate::tagged::split_tag(value, $tag, &[$($name),+])
                    .map_err(<D::Error as serde::de::Error>::custom)?;
                let out: std::result::Result<Self, String> = match name.as_str() {
                    $($name => $crate::tagged::tagged_deserialize!(@variant $ty, $variant, rest $(, $inner)?),)+
                    _ => unreachable!("split_tag accepts only the listed names"),
                };
                out.map_err(<D::Error as serde::de::Error>::custom)
            }
        }
    };
    (@variant $ty:ident, $variant:ident, $rest:ident, $inner:ty) => {
        $crate::tagged::inner::<$inner>($rest).map($ty::$variant)
    };
    (@variant $ty:ident, $variant:ident, $rest:ident) => {
        match &$rest {
            serde_json::Value::Object(m) if m.is_empty() => Ok($ty::$variant),
            _ => Err($crate::tagged::mark(".", "this variant takes no other field")),
        }
    };
}
pub(crate) use tagged_deserialize;
