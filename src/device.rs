//! Choosing a compute device by name (`cpu`, `cuda`, `cuda:N`).

use candle_core::Device;

use crate::{Error, Result};

/// The device called `name`: `cpu`, `cuda` (GPU 0) or `cuda:N`.
///
/// # Errors
///
/// [`Error::Config`] for an unknown name; [`Error::Device`] for `cuda` in a
/// build without the `cuda` feature, or when no GPU can be opened.
pub fn device_from_name(name: &str) -> Result<Device> {
    let ordinal = match name {
        "cpu" => return Ok(Device::Cpu),
        "cuda" => 0,
        other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) => n,
            _ => {
                return Err(Error::config(
                    "device",
                    format!("unknown device `{other}`; expected `cpu`, `cuda` or `cuda:N`"),
                ))
            }
        },
    };
    cuda_device(ordinal)
}

#[cfg(feature = "cuda")]
fn cuda_device(ordinal: usize) -> Result<Device> {
    Device::new_cuda(ordinal)
        .map_err(|e| Error::Device(format!("cannot open CUDA device {ordinal}: {e}")))
}

#[cfg(not(feature = "cuda"))]
fn cuda_device(_ordinal: usize) -> Result<Device> {
    Err(Error::Device(
        "this build of vaekit has no CUDA support; rebuild with `--features cuda`".into(),
    ))
}

/// A short name for `device`: `cpu` or `cuda:N`.
pub fn device_name(device: &Device) -> String {
    match device.location() {
        candle_core::DeviceLocation::Cpu => "cpu".into(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}
