//! Importing a PyTorch `state_dict` (a `torch.save` file or safetensors) into
//! vaekit's parameter names, with a report of every tensor that does not fit.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

use super::checkpoint::check_regular_file;
use super::rename::{Destination, RenameMap};
use super::{CheckpointFile, ParamStore};
use crate::{Error, Result};

/// The first bytes of a zip archive: `torch.save`'s default format since
/// PyTorch 1.6.
const ZIP_MAGIC: [u8; 4] = *b"PK\x03\x04";
/// The pickle `PROTO` opcode that starts PyTorch's legacy (pre-zip) format.
const PICKLE_PROTO: u8 = 0x80;

/// A PyTorch `state_dict` read from a file, its tensors renamed for vaekit by
/// a [`RenameMap`]: what [`import_state_dict`] returns.
///
/// Stacked tensors are kept in their parts until they are checked against a
/// model ([`check`](Self::check)), so a part that is absent or of the wrong
/// shape is reported by its own name.
#[derive(Debug, Clone)]
pub struct StateDict {
    path: PathBuf,
    map: RenameMap,
    entries: BTreeMap<String, Entry>,
    ignored: Vec<String>,
}

/// The `state_dict` tensors that make one vaekit tensor.
#[derive(Debug, Clone)]
struct Entry {
    /// The name of each part in the `state_dict` (one for a renamed tensor).
    sources: Vec<String>,
    /// Each part's tensor, `None` where the file has no such tensor.
    parts: Vec<Option<Tensor>>,
}

/// One `state_dict` tensor as the file holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceTensor {
    /// Its name in the `state_dict`.
    pub name: String,
    /// Its dtype in the file.
    pub dtype: DType,
    /// Its shape.
    pub shape: Vec<usize>,
}

/// A model tensor that the `state_dict` does not provide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingTensor {
    /// The vaekit name.
    pub name: String,
    /// The `state_dict` names the map takes it from that the file lacks.
    pub absent: Vec<String>,
}

/// A model tensor whose `state_dict` tensors do not fit it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorMismatch {
    /// The vaekit name.
    pub name: String,
    /// The model's shape for it.
    pub expected: Vec<usize>,
    /// What the file holds for it: one tensor, or the parts of a stack.
    pub found: Vec<SourceTensor>,
}

/// What importing a `state_dict` into a model found, tensor by tensor: every
/// problem at once, not the first only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Model tensors the `state_dict` does not provide.
    pub missing: Vec<MissingTensor>,
    /// `state_dict` tensors (by their names in the file) that no model tensor
    /// takes.
    pub unused: Vec<String>,
    /// Model tensors whose `state_dict` tensors have another shape, or a dtype
    /// that is not a float.
    pub mismatched: Vec<TensorMismatch>,
    /// `state_dict` tensors dropped on purpose: batch norm's
    /// `num_batches_tracked` and the map's [`ignore`](RenameMap::ignore) rules.
    pub ignored: Vec<String>,
}

impl ImportReport {
    /// Whether every model tensor is provided, with the right shape, and every
    /// `state_dict` tensor is used or ignored on purpose.
    pub fn is_ok(&self) -> bool {
        self.missing.is_empty() && self.unused.is_empty() && self.mismatched.is_empty()
    }
}

/// `` `a`, `b` ``.
fn quoted(names: &[String]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    quoted.join(", ")
}

impl std::fmt::Display for SourceTensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}` {:?} {:?}", self.name, self.dtype, self.shape)
    }
}

impl std::fmt::Display for MissingTensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` (the file has no {})",
            self.name,
            quoted(&self.absent)
        )
    }
}

impl std::fmt::Display for TensorMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let found: Vec<String> = self.found.iter().map(|s| s.to_string()).collect();
        write!(
            f,
            "`{}` needs a float tensor of shape {:?}, the file has {}",
            self.name,
            self.expected,
            found.join(" stacked over ")
        )
    }
}

impl std::fmt::Display for ImportReport {
    /// Every problem, grouped: `N missing: …; N unused: …; N of the wrong shape
    /// or dtype: …`, or `every tensor fits` when there is none.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        fn group<T: std::fmt::Display>(
            groups: &mut Vec<String>,
            what: &str,
            items: &[T],
            sep: &str,
        ) {
            if !items.is_empty() {
                let items: Vec<String> = items.iter().map(|i| i.to_string()).collect();
                groups.push(format!("{} {what}: {}", items.len(), items.join(sep)));
            }
        }
        let mut groups = Vec::new();
        group(&mut groups, "missing", &self.missing, ", ");
        let unused: Vec<String> = self.unused.iter().map(|n| format!("`{n}`")).collect();
        group(&mut groups, "unused", &unused, ", ");
        group(
            &mut groups,
            "of the wrong shape or dtype",
            &self.mismatched,
            "; ",
        );
        if groups.is_empty() {
            f.write_str("every tensor fits")
        } else {
            f.write_str(&groups.join("; "))
        }
    }
}

/// Reads the PyTorch `state_dict` in `path` and renames its tensors with `map`.
///
/// The file is either what `torch.save(model.state_dict(), path)` writes (the
/// zip format, PyTorch's default since 1.6, read by candle's restricted pickle
/// reader, which runs no code from the file) or a safetensors file (e.g.
/// `safetensors.torch.save_file(model.state_dict(), path)`); the format is
/// told by the file's first bytes, not its name. The `state_dict` must be the
/// file's top-level object.
///
/// Nothing is checked against a model yet: [`StateDict::assign_to`] (or
/// [`ParamStore::load_state_dict`], which does both in one call) does that.
///
/// # Errors
///
/// [`Error::Io`] if the file cannot be read; [`Error::Checkpoint`] if it is
/// not a regular file, is PyTorch's legacy (non-zip) format, cannot be
/// decoded, holds no tensor at its top level, or has a tensor that claims more
/// bytes than the file holds (checked before anything is allocated);
/// [`Error::Config`] (field `rename_map`) if the map sends two tensors to the
/// same name.
pub fn import_state_dict(path: impl AsRef<Path>, map: &RenameMap) -> Result<StateDict> {
    let path = path.as_ref();
    let (tensors, ignored) = read_tensors(path, map)?;
    let mut entries: BTreeMap<String, Entry> = BTreeMap::new();
    for (source, tensor) in tensors {
        let (name, part, sources) = match map.destination(&source) {
            Destination::Ignored => continue,
            Destination::Tensor(name) => (name, 0, vec![source.clone()]),
            Destination::Rows {
                name,
                part,
                sources,
            } => (name, part, sources),
        };
        let entry = entries.entry(name.clone()).or_insert_with(|| Entry {
            parts: vec![None; sources.len()],
            sources: sources.clone(),
        });
        if entry.sources != sources || entry.parts[part].is_some() {
            let other = entry.sources.iter().find(|s| **s != source);
            return Err(Error::config(
                "rename_map",
                format!(
                    "`{source}` and `{}` both become `{name}`",
                    other.map_or("another tensor", |s| s.as_str())
                ),
            ));
        }
        entry.parts[part] = Some(tensor);
    }
    Ok(StateDict {
        path: path.to_path_buf(),
        map: map.clone(),
        entries,
        ignored,
    })
}

impl StateDict {
    /// The file it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The vaekit names the renamed tensors have, sorted (a stack counts once,
    /// even with a part absent).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// The `state_dict` tensors dropped on purpose (`num_batches_tracked`, the
    /// map's ignore rules), by their names in the file.
    pub fn ignored(&self) -> &[String] {
        &self.ignored
    }

    /// Compares the renamed tensors with a model's `expected` tensors (name →
    /// shape, e.g. from [`ParamStore::shapes`] or
    /// [`ShapeProbe::shapes`](super::ShapeProbe::shapes)) and reports every
    /// tensor that is missing, unused or of the wrong shape. Float tensors of
    /// any precision fit a float parameter of their shape.
    pub fn check(&self, expected: &BTreeMap<String, Vec<usize>>) -> ImportReport {
        let mut report = ImportReport {
            ignored: self.ignored.clone(),
            ..ImportReport::default()
        };
        for (name, entry) in &self.entries {
            if !expected.contains_key(name) {
                report
                    .unused
                    .extend(entry.present().map(|(s, _)| s.to_string()));
            }
        }
        for (name, shape) in expected {
            let Some(entry) = self.entries.get(name) else {
                report.missing.push(MissingTensor {
                    name: name.clone(),
                    absent: self.map.sources_of(name),
                });
                continue;
            };
            let absent: Vec<String> = entry
                .sources
                .iter()
                .zip(&entry.parts)
                .filter(|(_, t)| t.is_none())
                .map(|(s, _)| s.clone())
                .collect();
            if !absent.is_empty() {
                report.missing.push(MissingTensor {
                    name: name.clone(),
                    absent,
                });
            } else if !entry.fits(shape) {
                report.mismatched.push(TensorMismatch {
                    name: name.clone(),
                    expected: shape.clone(),
                    found: entry
                        .present()
                        .map(|(s, t)| SourceTensor {
                            name: s.to_string(),
                            dtype: t.dtype(),
                            shape: t.dims().to_vec(),
                        })
                        .collect(),
                });
            }
        }
        report.unused.sort();
        report
    }

    /// The renamed tensors for a model whose tensors are `expected` (name →
    /// shape): stacked, converted to `dtype` (`F32` for vaekit's models), on
    /// the CPU, with the report of what was ignored.
    ///
    /// # Errors
    ///
    /// [`Error::StateDict`] with the full [`ImportReport`] unless every
    /// expected tensor is provided with its shape and every `state_dict`
    /// tensor is used or ignored.
    pub fn tensors_for(
        &self,
        expected: &BTreeMap<String, Vec<usize>>,
        dtype: DType,
    ) -> Result<(HashMap<String, Tensor>, ImportReport)> {
        let report = self.check(expected);
        if !report.is_ok() {
            return Err(Error::StateDict {
                path: self.path.clone(),
                report: Box::new(report),
            });
        }
        let mut tensors = HashMap::with_capacity(expected.len());
        for name in expected.keys() {
            // `check` found every part present.
            let parts: Vec<Tensor> = self.entries[name]
                .present()
                .map(|(_, t)| t.to_dtype(dtype))
                .collect::<candle_core::Result<_>>()?;
            let t = match parts.as_slice() {
                [one] => one.clone(),
                _ => Tensor::cat(&parts, 0)?,
            };
            tensors.insert(name.clone(), t);
        }
        Ok((tensors, report))
    }

    /// Overwrites `params`' weights and buffers with the renamed tensors.
    /// Nothing is written unless every tensor fits.
    ///
    /// # Errors
    ///
    /// [`Error::StateDict`] with the full [`ImportReport`] when a tensor is
    /// missing, unused or of the wrong shape; [`Error::Tensor`] naming a tensor
    /// that holds NaN or infinite values.
    pub fn assign_to(&self, params: &ParamStore) -> Result<ImportReport> {
        let (mut tensors, report) = self.tensors_for(&params.shapes(), DType::F32)?;
        for (name, var) in &params.named_vars() {
            if let Some(t) = tensors.get_mut(name) {
                *t = t.to_dtype(var.dtype())?;
            }
        }
        params.assign(&tensors)?;
        Ok(report)
    }
}

impl Entry {
    /// The parts the file holds, with their `state_dict` names.
    fn present(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.sources
            .iter()
            .zip(&self.parts)
            .filter_map(|(s, t)| Some((s.as_str(), t.as_ref()?)))
    }

    /// Whether the parts, all present, are floats that stack (along dimension
    /// 0) into `shape`; a single part must have `shape` itself.
    fn fits(&self, shape: &[usize]) -> bool {
        let parts: Vec<&Tensor> = self.present().map(|(_, t)| t).collect();
        if parts.iter().any(|t| !t.dtype().is_float()) {
            return false;
        }
        match parts.as_slice() {
            [one] => one.dims() == shape,
            _ => {
                let Some((&rows, rest)) = shape.split_first() else {
                    return false;
                };
                let mut stacked = 0;
                for t in &parts {
                    match t.dims().split_first() {
                        Some((&n, r)) if r == rest => stacked += n,
                        _ => return false,
                    }
                }
                stacked == rows
            }
        }
    }
}

impl ParamStore {
    /// Loads the PyTorch `state_dict` in `path` (a `torch.save` file or
    /// safetensors) into these weights and buffers, renaming its tensors with
    /// `map`: [`import_state_dict`] then [`StateDict::assign_to`]. Returns the
    /// report, whose [`ignored`](ImportReport::ignored) lists the tensors
    /// dropped on purpose.
    ///
    /// # Errors
    ///
    /// Those of [`import_state_dict`] and [`StateDict::assign_to`]: above all
    /// [`Error::StateDict`], naming every missing, unused and mis-shaped tensor
    /// at once. Nothing is written then.
    pub fn load_state_dict(&self, path: impl AsRef<Path>, map: &RenameMap) -> Result<ImportReport> {
        import_state_dict(path, map)?.assign_to(self)
    }
}

/// The tensors read from a `state_dict` file, by name, and the names of those
/// ignored (and so not decoded).
type FileTensors = (Vec<(String, Tensor)>, Vec<String>);

/// Every tensor of the `state_dict` in `path` that `map` does not ignore, on
/// the CPU, sorted by name, with the names of those it ignores (not decoded).
fn read_tensors(path: &Path, map: &RenameMap) -> Result<FileTensors> {
    let bad = |reason: String| Error::Checkpoint {
        path: path.to_path_buf(),
        reason,
    };
    check_regular_file(path)?;
    let mut magic = Vec::with_capacity(ZIP_MAGIC.len());
    std::fs::File::open(path)
        .and_then(|f| f.take(ZIP_MAGIC.len() as u64).read_to_end(&mut magic))
        .map_err(|e| Error::io(path, e))?;
    let keep = |name: &str| map.destination(name) != Destination::Ignored;
    let (mut tensors, mut ignored) = if magic == ZIP_MAGIC {
        read_torch_zip(path, &keep)?
    } else if magic.first() == Some(&PICKLE_PROTO) {
        return Err(bad(
            "a PyTorch file in the legacy (non-zip) format, which vaekit cannot read: save it \
             again with torch.save's default format, or as safetensors"
                .into(),
        ));
    } else {
        let ckpt = CheckpointFile::open(path)?.load(&Device::Cpu)?;
        let (kept, dropped): (Vec<_>, Vec<_>) =
            ckpt.tensors.into_iter().partition(|(name, _)| keep(name));
        (kept, dropped.into_iter().map(|(name, _)| name).collect())
    };
    if tensors.is_empty() && ignored.is_empty() {
        return Err(bad(
            "holds no tensors at its top level: save `model.state_dict()`, a dict of tensors"
                .into(),
        ));
    }
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    ignored.sort();
    Ok((tensors, ignored))
}

/// The tensors (those `keep` accepts) and the ignored names of a `torch.save`
/// zip archive.
///
/// The archive is read with the `zip` crate at offset 0 (a `torch.save` file
/// has nothing before it): `zip`'s own detection of data prepended to an
/// archive misreads some `torch.save` files (those whose first
/// central-directory record is as long as the zip64 records after the
/// directory, 76 bytes: archives named with 21 characters), which is why
/// candle's `PthTensors`, which uses that detection, is not used. The pickle
/// is decoded by candle's restricted reader, which runs no code from the
/// file; it panics on some malformed pickles, which becomes an error.
fn read_torch_zip(path: &Path, keep: &dyn Fn(&str) -> bool) -> Result<FileTensors> {
    use candle_core::pickle::{Object, Stack};
    let bad = |reason: String| Error::Checkpoint {
        path: path.to_path_buf(),
        reason,
    };
    let unreadable = |what: String| bad(format!("not a readable torch.save file: {what}"));
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let config = zip::read::Config {
        archive_offset: zip::read::ArchiveOffset::Known(0),
    };
    let mut archive = zip::ZipArchive::with_config(config, std::io::BufReader::new(file))
        .map_err(|e| unreadable(e.to_string()))?;
    let pickle = archive
        .file_names()
        .filter_map(|n| n.ok())
        .find(|n| n.ends_with("/data.pkl") || n == "data.pkl")
        .map(|n| n.into_owned())
        .ok_or_else(|| unreadable("no data.pkl in the archive".into()))?;
    let dir = pickle.strip_suffix(".pkl").unwrap_or(&pickle).to_string();
    let object = {
        let entry = archive
            .by_name(&pickle)
            .map_err(|e| unreadable(e.to_string()))?;
        let mut reader = std::io::BufReader::new(entry);
        catch_unwind(AssertUnwindSafe(|| {
            let mut stack = Stack::empty();
            stack.read_loop(&mut reader)?;
            stack.finalize()
        }))
        .map_err(|_| unreadable("malformed pickle".into()))?
        .map_err(|e| unreadable(e.to_string()))?
    };
    let Object::Dict(items) = object else {
        return Err(bad(
            "its top-level object is not a dict: save `model.state_dict()`".into(),
        ));
    };
    let mut tensors = Vec::with_capacity(items.len());
    let mut ignored = Vec::new();
    for (key, value) in items {
        let Object::Unicode(name) = key.clone() else {
            continue;
        };
        if !keep(&name) {
            ignored.push(name);
            continue;
        }
        let info = catch_unwind(AssertUnwindSafe(|| {
            value.into_tensor_info(key, Path::new(&dir))
        }))
        .map_err(|_| bad(format!("tensor `{name}`: malformed pickle")))?
        .map_err(|e| bad(format!("tensor `{name}`: {e}")))?
        .ok_or_else(|| bad(format!("`{name}` is not a tensor")))?;
        let layout = &info.layout;
        if !layout.is_contiguous() {
            return Err(bad(format!(
                "tensor `{name}` is not contiguous (strides {:?}): save `.contiguous()` tensors",
                layout.stride()
            )));
        }
        let entry = archive
            .by_name(&info.path)
            .map_err(|e| bad(format!("tensor `{name}`: {e}")))?;
        // Checked before anything is allocated: the tensor lies within its entry.
        let bytes = (layout.shape().elem_count() as u128)
            .saturating_mul(info.dtype.size_in_bytes() as u128)
            .saturating_add(layout.start_offset() as u128);
        if bytes > u128::from(entry.size()) {
            return Err(bad(format!(
                "tensor `{name}` ({:?} {:?}) needs {bytes} bytes, its storage has {}",
                info.dtype,
                layout.dims(),
                entry.size()
            )));
        }
        let mut data = Vec::with_capacity(bytes as usize);
        entry
            .take(bytes as u64)
            .read_to_end(&mut data)
            .map_err(|e| Error::io(path, e))?;
        let t = Tensor::from_raw_buffer(
            data.get(layout.start_offset()..).unwrap_or_default(),
            info.dtype,
            layout.dims(),
            &Device::Cpu,
        )
        .map_err(|e| bad(format!("tensor `{name}`: {e}")))?;
        tensors.push((name, t));
    }
    Ok((tensors, ignored))
}
