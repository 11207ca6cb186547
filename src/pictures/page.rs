//! The self-contained HTML pages that run a decoder in JavaScript (the latent
//! explorer and the code explorer): the shared page shell, and a decoder's
//! [`Decoder::export`] as the JSON `decoder.js` reads — its config, and every
//! tensor as base64 of little-endian float32.

use base64::Engine;
use candle_core::{DType, Device, Tensor};
use serde_json::{json, Map, Value};

use crate::nets::{Decoder, DecoderConfig};
use crate::{Error, Result};

const SHELL: &str = include_str!("page.html");
const DECODER_SCRIPT: &str = include_str!("decoder.js");

/// A decoder as the pages embed it.
pub(crate) struct EmbeddedDecoder {
    /// Its config as JSON (`type`-tagged).
    pub config: Value,
    /// Its tensors, `decoder.{name}` → `{"shape": […], "data": base64}`.
    pub weights: Value,
    /// `dense`, `convolutional` or `residual`, for the page's subtitle.
    pub kind: &'static str,
}

/// The export of `decoder` as the pages embed it.
///
/// # Errors
///
/// [`Error::Config`] naming the decoder type if it cannot be exported;
/// [`Error::Candle`] if a tensor cannot be read.
pub(crate) fn embed_decoder<D: Decoder + ?Sized>(decoder: &D) -> Result<EmbeddedDecoder> {
    let export = decoder
        .export()
        .map_err(|reason| Error::config("decoder", reason))?;
    let mut weights = Map::new();
    for (name, tensor) in &export.tensors {
        weights.insert(
            format!("decoder.{name}"),
            json!({ "shape": tensor.dims(), "data": float32_base64(tensor)? }),
        );
    }
    let kind = match export.config {
        DecoderConfig::Dense(_) => "dense",
        DecoderConfig::Conv(_) => "convolutional",
        DecoderConfig::Residual(_) => "residual",
    };
    Ok(EmbeddedDecoder {
        config: serde_json::to_value(&export.config)
            .map_err(|e| Error::config("decoder", format!("does not serialise: {e}")))?,
        weights: Value::Object(weights),
        kind,
    })
}

/// The values of `tensor` (any shape and dtype, flattened) as base64 of
/// little-endian float32, as `vaekitFloat32` in `decoder.js` reads them.
///
/// # Errors
///
/// [`Error::Candle`] if the tensor cannot be read.
pub(crate) fn float32_base64(tensor: &Tensor) -> Result<String> {
    let values = tensor
        .to_device(&Device::Cpu)?
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// One page: the shell with `title`, `subtitle`, the page's `body` markup,
/// `data` as the JSON in `#vaekit-model`, and `decoder.js` followed by the
/// page's `script`.
pub(crate) fn html_page(
    title: &str,
    subtitle: &str,
    body: &str,
    script: &str,
    data: &Value,
) -> String {
    // `<` never appears in JSON outside strings; escaped, no `</script>` can end
    // the data block early.
    let data = data.to_string().replace('<', "\\u003c");
    SHELL
        .replace("{{TITLE}}", title)
        .replace("{{VERSION}}", env!("CARGO_PKG_VERSION"))
        .replace("{{SUBTITLE}}", subtitle)
        .replace("{{BODY}}", body)
        .replace("{{DECODER_SCRIPT}}", DECODER_SCRIPT)
        .replace("{{SCRIPT}}", script)
        .replace("{{MODEL_JSON}}", &data)
}
