//! Model configs as JSON: parsing with the path of the field at fault, and
//! where two architectures differ.

use super::config::ModelConfig;
use crate::{Error, Result};

/// Whether comparing two configs takes their loss settings into account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LossSettings {
    /// Compared too: the same run, as a resumed one must be.
    Compared,
    /// Left aside: the same network, whatever it is trained or scored with.
    Ignored,
}

/// Where the architecture saved in a checkpoint (`saved`, the JSON of
/// [`Trainable::architecture`](super::Trainable::architecture)) differs from
/// a model's (`ours`): the path of the first differing field and both values;
/// `None` when they agree. Configs of [`ModelConfig`] are compared as parsed
/// (so a file written before a setting with a default existed agrees), with
/// or without their `loss`; any other architecture as its text.
pub(crate) fn architecture_difference(
    saved: &str,
    ours: &str,
    loss: LossSettings,
) -> Option<String> {
    let as_value = |c: &ModelConfig| serde_json::to_value(c).unwrap_or_default();
    match (
        parse_json::<ModelConfig>(saved),
        parse_json::<ModelConfig>(ours),
    ) {
        (Ok(saved), Ok(ours)) => {
            let saved = match loss {
                LossSettings::Compared => saved,
                LossSettings::Ignored => saved.with_loss_settings_of(&ours),
            };
            (saved != ours).then(|| {
                crate::difference::first_difference(&as_value(&saved), &as_value(&ours))
                    .unwrap_or_else(|| "the configs differ".into())
            })
        }
        _ if saved == ours => None,
        _ => Some(
            match (
                serde_json::from_str::<serde_json::Value>(saved),
                serde_json::from_str::<serde_json::Value>(ours),
            ) {
                (Ok(a), Ok(b)) => crate::difference::first_difference(&a, &b),
                _ => None,
            }
            .unwrap_or_else(|| "the architecture in the file is not the model's".into()),
        ),
    }
}

/// Parses JSON into `T`; an error names the path of the field at fault
/// (through the tagged enums too, see `crate::tagged`) and its line and
/// column. Anything but white space after the value is an error.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(json: &str) -> Result<T> {
    use crate::tagged::{join, locate, PATH_MARK};
    let de = &mut serde_json::Deserializer::from_str(json);
    let value: T = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let outer = e.path().to_string();
        let message = e.into_inner().to_string();
        let (path, reason) = match message.split_once(PATH_MARK) {
            Some((_, rest)) => match rest.split_once(PATH_MARK) {
                Some((inner, msg)) => (join(&outer, inner), msg.to_string()),
                None => (outer, message.replace(PATH_MARK, "")),
            },
            None => (outer, message),
        };
        // serde_json places an error found inside a tagged object at the end
        // of that object: point at the field instead.
        let reason = match (locate(json, &path), reason.rfind(" at line ")) {
            (Some((line, column)), Some(at)) => {
                format!("{} at line {line} column {column}", &reason[..at])
            }
            _ => reason,
        };
        let field = if path == "." {
            "config".to_string()
        } else {
            path
        };
        Error::config(field, reason)
    })?;
    de.end().map_err(|e| {
        Error::config(
            "config",
            format!("{e}: a file holds one JSON object, and nothing after it"),
        )
    })?;
    Ok(value)
}
