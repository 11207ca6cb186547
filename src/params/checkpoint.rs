//! Checkpoint files: named tensors plus string metadata in one safetensors file,
//! written atomically.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};

use crate::{Error, Result};

/// The contents of a checkpoint file.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// The tensors, by name.
    pub tensors: HashMap<String, Tensor>,
    /// The file's string metadata (the safetensors `__metadata__` header).
    pub metadata: HashMap<String, String>,
}

/// Writes `tensors` and `metadata` to `path` as safetensors, atomically.
///
/// The bytes go to a temporary file in the same folder (`.NAME.tmp-PID-N`), which
/// is flushed to disk and then renamed over `path`; a process killed at any moment
/// leaves either the old file or the new one, never a partial file. Temporary
/// files of `path` left by processes killed mid-save are deleted first: only
/// those whose process no longer runs (on Linux, no `/proc/PID`; without `/proc`,
/// files untouched for an hour), never this process's own.
///
/// # Errors
///
/// [`Error::Io`] if the folder cannot be written; [`Error::Checkpoint`] if the
/// tensors cannot be serialised.
pub fn write_checkpoint(
    path: impl AsRef<Path>,
    tensors: &BTreeMap<String, Tensor>,
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    let path = path.as_ref();
    let cpu: Vec<(String, Tensor)> = tensors
        .iter()
        .map(|(k, t)| Ok((k.clone(), t.to_device(&Device::Cpu)?)))
        .collect::<candle_core::Result<_>>()?;
    let info: HashMap<String, String> = metadata.clone().into_iter().collect();
    let bytes =
        safetensors::tensor::serialize(cpu.iter().map(|(k, t)| (k.as_str(), t)), Some(info))
            .map_err(|e| Error::Checkpoint {
                path: path.to_path_buf(),
                reason: format!("cannot serialise: {e}"),
            })?;
    write_atomic(path, &bytes)
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| Error::Checkpoint {
            path: path.to_path_buf(),
            reason: "not a file path".into(),
        })?
        .to_string_lossy()
        .into_owned();
    remove_stale_temporaries(&dir, &file_name);
    // Unique per process and per call, so concurrent saves never share a
    // temporary file.
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{file_name}.tmp-{}-{n}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        // Make the rename itself durable.
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

/// How old a temporary file must be before it is deleted where process ids
/// cannot be checked (no `/proc`).
const STALE_AGE: std::time::Duration = std::time::Duration::from_secs(3600);

/// Deletes the temporary files `.{file_name}.tmp-{pid}-{n}` in `dir` that a killed
/// save left behind, best effort (a file that cannot be listed or deleted is left).
///
/// A file is deleted only if its `pid` is not this process's (another thread may
/// be saving) and that process no longer runs: on Linux, `/proc/{pid}` does not
/// exist; where `/proc` is absent, the file has not been modified for an hour.
/// Files of other targets and names that do not match exactly are never touched.
/// A process saving into the same folder from another PID namespace (another
/// container) looks dead from here; give such processes separate folders.
fn remove_stale_temporaries(dir: &Path, file_name: &str) {
    let prefix = format!(".{file_name}.tmp-");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let own = std::process::id();
    let proc_fs = Path::new("/proc/self").exists();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .and_then(temporary_pid)
        else {
            continue;
        };
        if pid == own {
            continue;
        }
        let stale = if proc_fs {
            !Path::new("/proc").join(pid.to_string()).exists()
        } else {
            entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > STALE_AGE)
        };
        if stale && entry.file_type().is_ok_and(|t| t.is_file()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// The pid of a temporary file's `{pid}-{n}` suffix (both decimal), if it is one.
fn temporary_pid(suffix: &str) -> Option<u32> {
    let (pid, n) = suffix.split_once('-')?;
    let decimal = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !decimal(pid) || !decimal(n) {
        return None;
    }
    pid.parse().ok()
}

/// A checkpoint file read into memory with its header parsed, before any
/// tensor is decoded: its tensors' names, dtypes and shapes can be checked
/// against a model before anything of the model's size is allocated.
#[derive(Debug)]
pub struct CheckpointFile {
    path: PathBuf,
    bytes: Vec<u8>,
    metadata: HashMap<String, String>,
    shapes: BTreeMap<String, (String, Vec<usize>)>,
}

impl CheckpointFile {
    /// Reads `path` (a regular file) and parses its safetensors header.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the file cannot be read; [`Error::Checkpoint`] if it is
    /// not a regular file or not a valid safetensors file (truncated, bad
    /// header, offsets that do not match the data).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bad = |reason: String| Error::Checkpoint {
            path: path.to_path_buf(),
            reason,
        };
        check_regular_file(path)?;
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
            .map_err(|e| bad(format!("not a valid safetensors file: {e}")))?;
        let metadata = header.metadata().clone().unwrap_or_default();
        let shapes = header
            .tensors()
            .into_iter()
            .map(|(name, info)| (name, (format!("{:?}", info.dtype), info.shape.clone())))
            .collect();
        Ok(Self {
            path: path.to_path_buf(),
            bytes,
            metadata,
            shapes,
        })
    }

    /// The file's string metadata (the safetensors `__metadata__` header).
    pub fn metadata(&self) -> &HashMap<String, String> {
        &self.metadata
    }

    /// Every tensor's dtype (safetensors' name, e.g. `F32`) and shape, by name.
    pub fn shapes(&self) -> &BTreeMap<String, (String, Vec<usize>)> {
        &self.shapes
    }

    /// Checks that the file holds every tensor of `expected` (name → shape) as
    /// `F32` of that shape; other tensors in the file are ignored.
    ///
    /// # Errors
    ///
    /// [`Error::Tensor`] naming the first tensor that is missing, of another
    /// dtype or of another shape.
    pub fn check_shapes(&self, expected: &BTreeMap<String, Vec<usize>>) -> Result<()> {
        for (name, dims) in expected {
            match self.shapes.get(name) {
                None => return Err(Error::tensor(name, "missing")),
                Some((dtype, _)) if dtype != "F32" => {
                    return Err(Error::tensor(name, format!("dtype {dtype}, expected F32")))
                }
                Some((_, shape)) if shape != dims => {
                    return Err(Error::tensor(
                        name,
                        format!("shape {shape:?}, expected {dims:?}"),
                    ))
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Decodes every tensor onto `device`.
    ///
    /// # Errors
    ///
    /// [`Error::Checkpoint`] naming a tensor that cannot be decoded (an
    /// unsupported dtype).
    pub fn load(self, device: &Device) -> Result<Checkpoint> {
        let bad = |reason: String| Error::Checkpoint {
            path: self.path.clone(),
            reason,
        };
        let st = safetensors::SafeTensors::deserialize(&self.bytes)
            .map_err(|e| bad(format!("not a valid safetensors file: {e}")))?;
        let mut tensors = HashMap::new();
        for (name, view) in st.tensors() {
            let t = candle_core::safetensors::Load::load(&view, device)
                .map_err(|e| bad(format!("tensor `{name}`: {e}")))?;
            tensors.insert(name, t);
        }
        Ok(Checkpoint {
            tensors,
            metadata: self.metadata,
        })
    }
}

/// Checks that `path` (links followed) is a regular file, before a reader
/// opens it.
///
/// # Errors
///
/// [`Error::Io`] if it cannot be inspected; [`Error::Checkpoint`] if it is a
/// folder or another kind of file.
pub(crate) fn check_regular_file(path: &Path) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(Error::Checkpoint {
            path: path.to_path_buf(),
            reason: "not a regular file".into(),
        });
    }
    Ok(())
}

/// Reads a checkpoint written by [`write_checkpoint`] (or any safetensors file),
/// placing its tensors on `device`.
///
/// # Errors
///
/// [`Error::Io`] if the file cannot be read; [`Error::Checkpoint`] if it is not a
/// regular file or not a valid safetensors file (truncated, bad header,
/// unsupported dtype).
pub fn read_checkpoint(path: impl AsRef<Path>, device: &Device) -> Result<Checkpoint> {
    CheckpointFile::open(path)?.load(device)
}
