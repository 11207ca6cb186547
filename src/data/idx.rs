//! Reader for the IDX format of the MNIST files, raw or gzip-compressed.
//!
//! An IDX file is a 4-byte magic number, one big-endian `u32` per dimension,
//! then the data in row-major order. The magic is `0x00 0x00 DTYPE NDIMS`;
//! vaekit reads unsigned bytes (`DTYPE = 0x08`) only, with 3 dimensions for
//! images (`0x00000803`: count, rows, columns) and 1 for labels
//! (`0x00000801`: count).
//!
//! The reader trusts nothing in the header: the dimension product is computed
//! with overflow checks and compared with the bytes actually present before
//! anything of that size is allocated; a gzip stream (recognised by its
//! `0x1f 0x8b` magic) is decompressed through a bound of exactly the declared
//! data length and must end there. Every failure is an [`Error::Data`] naming
//! the file and the problem.
//!
//! What a header may declare is also bounded by [`DataLimits`] (by default
//! [`MAX_DATASET_BYTES`] of decoded `f32` pixels), checked before the data is
//! read, so a small file cannot make the reader allocate gigabytes. Files are
//! read only if they are regular files: a FIFO, a device such as `/dev/zero` or
//! a folder is refused from its metadata, without being opened for reading.

use std::io::{BufReader, Cursor, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use crate::error::{Error, Result};

/// Magic number of an IDX file of unsigned-byte images (3 dimensions).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of unsigned-byte labels (1 dimension).
pub const LABELS_MAGIC: u32 = 0x0000_0801;

/// The IDX dtype byte for unsigned bytes, the only one vaekit reads.
const DTYPE_U8: u8 = 0x08;
/// The two magic bytes that start a gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// How many times its compressed size a gzip input may reserve up front for
/// its data; past that the buffer grows only as decompressed bytes arrive.
const GZIP_RESERVE_RATIO: usize = 4;
/// The first buffer a gzip stream's data is read into, before it doubles.
const GZIP_FIRST_CHUNK: usize = 64 << 10;
/// How many bytes past the declared data are counted before a trailing-bytes
/// error stops reading (so a stream with gigabytes of trailing data fails at once).
const TRAILING_SCAN: u64 = 1 << 20;
/// Bytes per pixel once decoded into a [`Dataset`](crate::data::Dataset) (`f32`).
const DECODED_PIXEL_BYTES: u64 = 4;

/// The largest dataset vaekit loads unless told otherwise: 2 GiB of decoded
/// `f32` pixels (4 bytes per pixel), about 685,000 images of 28×28.
///
/// That holds MNIST, Fashion-MNIST and EMNIST-balanced many times over, and
/// refuses a header that claims more before anything of that size is read.
/// Raise it with [`DataLimits`].
pub const MAX_DATASET_BYTES: u64 = 2 << 30;

/// Bounds on what an IDX header may make the reader allocate.
///
/// The limit is stated in bytes of decoded `f32` pixels, what a
/// [`Dataset`](crate::data::Dataset) holds: an images file of
/// `count × rows × cols` bytes is accepted if `4 · count · rows · cols ≤
/// max_bytes`. Loading also holds the file's bytes (`max_bytes / 4`) while they
/// are converted, so the peak is about `1.25 · max_bytes`. A labels file may
/// hold at most `max_bytes / 4` labels (every image has at least one pixel).
///
/// ```
/// use vaekit::data::idx::{DataLimits, MAX_DATASET_BYTES};
///
/// assert_eq!(DataLimits::default().max_bytes, MAX_DATASET_BYTES);
/// // EMNIST by-class (814,255 images of 28×28) needs 2.6 GB as f32:
/// let emnist = DataLimits::default().with_max_bytes(3 << 30);
/// # let _ = emnist;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DataLimits {
    /// The largest dataset accepted, in bytes of decoded `f32` pixels.
    pub max_bytes: u64,
}

impl Default for DataLimits {
    fn default() -> Self {
        Self {
            max_bytes: MAX_DATASET_BYTES,
        }
    }
}

crate::setters::with_setters!(DataLimits {
    with_max_bytes(max_bytes: u64),
});

impl DataLimits {
    /// The most pixels (and so images or labels) the limit allows.
    fn max_pixels(self) -> u64 {
        self.max_bytes / DECODED_PIXEL_BYTES
    }
}

/// A stack of `count` greyscale images of `rows × cols` unsigned bytes, as
/// read from an IDX file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxImages {
    count: usize,
    rows: usize,
    cols: usize,
    pixels: Vec<u8>,
}

impl IdxImages {
    /// Number of images.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Height of each image in pixels.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Width of each image in pixels.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// All pixels, image after image, each row-major; `count * rows * cols` bytes.
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// The pixels, giving up the struct.
    pub fn into_pixels(self) -> Vec<u8> {
        self.pixels
    }
}

/// Parses IDX images (magic `0x00000803`) from `bytes`, raw or gzip.
///
/// `name` is only used in error messages (the file the bytes came from).
///
/// # Errors
///
/// [`Error::Data`] naming `name` if the bytes are empty, the header is
/// truncated, the magic, dtype byte or number of dimensions is wrong, an image
/// has zero rows or columns, the dimension product overflows, the data is
/// shorter or longer than the header declares, the images need more than
/// [`MAX_DATASET_BYTES`] as `f32`, or the gzip stream is corrupt.
pub fn parse_images(bytes: &[u8], name: impl AsRef<Path>) -> Result<IdxImages> {
    parse_images_with(bytes, name, DataLimits::default())
}

/// [`parse_images`] under `limits` instead of the default.
///
/// # Errors
///
/// As [`parse_images`], with the limit of `limits`.
pub fn parse_images_with(
    bytes: &[u8],
    name: impl AsRef<Path>,
    limits: DataLimits,
) -> Result<IdxImages> {
    let name = name.as_ref();
    let (dims, pixels) = parse(bytes, name, Kind::Images, limits)?;
    images_from(dims, pixels, name)
}

fn images_from(dims: Vec<usize>, pixels: Vec<u8>, name: &Path) -> Result<IdxImages> {
    let (count, rows, cols) = match dims[..] {
        [count, rows, cols] => (count, rows, cols),
        // `parse` checked the number of dimensions against `Kind::Images`.
        _ => return Err(data_error(name, "internal: expected 3 dimensions")),
    };
    if rows == 0 || cols == 0 {
        return Err(data_error(
            name,
            format!("images of {rows}×{cols} pixels: rows and columns must be positive"),
        ));
    }
    Ok(IdxImages {
        count,
        rows,
        cols,
        pixels,
    })
}

/// Parses IDX labels (magic `0x00000801`) from `bytes`, raw or gzip.
///
/// Any byte value is accepted (generic IDX); `name` is only used in error
/// messages.
///
/// # Errors
///
/// [`Error::Data`] naming `name` for the same header and length problems as
/// [`parse_images`], and for more labels than [`MAX_DATASET_BYTES`]` / 4`.
pub fn parse_labels(bytes: &[u8], name: impl AsRef<Path>) -> Result<Vec<u8>> {
    parse_labels_with(bytes, name, DataLimits::default())
}

/// [`parse_labels`] under `limits` instead of the default.
///
/// # Errors
///
/// As [`parse_labels`], with the limit of `limits`.
pub fn parse_labels_with(
    bytes: &[u8],
    name: impl AsRef<Path>,
    limits: DataLimits,
) -> Result<Vec<u8>> {
    let (_, labels) = parse(bytes, name.as_ref(), Kind::Labels, limits)?;
    Ok(labels)
}

/// Reads IDX images from the file at `path`, raw or gzip, streaming it: only
/// the declared data is held, never the whole file.
///
/// # Errors
///
/// [`Error::Io`] if the file cannot be read; [`Error::Data`] naming `path` if
/// it is not a regular file (a FIFO, a device, a folder: checked from its
/// metadata before it is opened), otherwise as [`parse_images`].
pub fn read_images(path: impl AsRef<Path>) -> Result<IdxImages> {
    read_images_with(path, DataLimits::default())
}

/// [`read_images`] under `limits` instead of the default.
///
/// # Errors
///
/// As [`read_images`], with the limit of `limits`.
pub fn read_images_with(path: impl AsRef<Path>, limits: DataLimits) -> Result<IdxImages> {
    let path = path.as_ref();
    let (dims, pixels) = read_file(path, Kind::Images, limits)?;
    images_from(dims, pixels, path)
}

/// Reads IDX labels from the file at `path`, raw or gzip.
///
/// # Errors
///
/// As [`read_images`] and [`parse_labels`].
pub fn read_labels(path: impl AsRef<Path>) -> Result<Vec<u8>> {
    read_labels_with(path, DataLimits::default())
}

/// [`read_labels`] under `limits` instead of the default.
///
/// # Errors
///
/// As [`read_labels`], with the limit of `limits`.
pub fn read_labels_with(path: impl AsRef<Path>, limits: DataLimits) -> Result<Vec<u8>> {
    let (_, labels) = read_file(path.as_ref(), Kind::Labels, limits)?;
    Ok(labels)
}

/// Fails unless `path` is a regular file (following symbolic links), from its
/// metadata: nothing is opened, so a FIFO cannot block the caller.
fn check_regular_file(path: &Path) -> Result<u64> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    check_file_type(path, &meta)?;
    Ok(meta.len())
}

fn check_file_type(path: &Path, meta: &std::fs::Metadata) -> Result<()> {
    let ty = meta.file_type();
    if ty.is_file() {
        return Ok(());
    }
    let what = if ty.is_dir() {
        "a folder"
    } else {
        special_file_kind(&ty)
    };
    Err(data_error(
        path,
        format!("not a regular file ({what}); only regular files are read"),
    ))
}

#[cfg(unix)]
fn special_file_kind(ty: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ty.is_fifo() {
        "a FIFO"
    } else if ty.is_char_device() {
        "a character device"
    } else if ty.is_block_device() {
        "a block device"
    } else if ty.is_socket() {
        "a socket"
    } else {
        "a special file"
    }
}

#[cfg(not(unix))]
fn special_file_kind(_ty: &std::fs::FileType) -> &'static str {
    "a special file"
}

/// Reads one IDX file of `kind`, streaming: a regular file only, its length
/// from the metadata, the data read through the header's bound.
fn read_file(path: &Path, kind: Kind, limits: DataLimits) -> Result<(Vec<usize>, Vec<u8>)> {
    check_regular_file(path)?;
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    // The path may have been replaced between the two calls: check what was opened.
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    check_file_type(path, &meta)?;
    let len = meta.len();
    if len == 0 {
        return Err(data_error(path, "empty file"));
    }
    let mut reader = BufReader::new(file);
    let mut head = [0u8; 2];
    let got = read_up_to(&mut reader, &mut head, path, Encoding::Raw)?;
    let stream = Cursor::new(head).take(got as u64).chain(reader);
    if head[..got] == GZIP_MAGIC {
        let reserve = usize::try_from(len)
            .unwrap_or(usize::MAX)
            .saturating_mul(GZIP_RESERVE_RATIO);
        parse_stream(
            MultiGzDecoder::new(stream),
            path,
            kind,
            Encoding::Gzip,
            reserve,
            limits,
        )
    } else {
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        parse_stream(stream, path, kind, Encoding::Raw, len, limits)
    }
}

/// Which IDX payload is expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Images,
    Labels,
}

impl Kind {
    fn ndims(self) -> u8 {
        match self {
            Kind::Images => 3,
            Kind::Labels => 1,
        }
    }

    fn magic(self) -> u32 {
        match self {
            Kind::Images => IMAGES_MAGIC,
            Kind::Labels => LABELS_MAGIC,
        }
    }

    fn what(self) -> &'static str {
        match self {
            Kind::Images => "images",
            Kind::Labels => "labels",
        }
    }
}

fn data_error(path: &Path, reason: impl Into<String>) -> Error {
    Error::Data {
        path: PathBuf::from(path),
        reason: reason.into(),
    }
}

/// Parses the header and data of `bytes`, decompressing if they are gzip.
fn parse(
    bytes: &[u8],
    name: &Path,
    kind: Kind,
    limits: DataLimits,
) -> Result<(Vec<usize>, Vec<u8>)> {
    if bytes.is_empty() {
        return Err(data_error(name, "empty file"));
    }
    if bytes.starts_with(&GZIP_MAGIC) {
        let reserve = bytes.len().saturating_mul(GZIP_RESERVE_RATIO);
        parse_stream(
            MultiGzDecoder::new(bytes),
            name,
            kind,
            Encoding::Gzip,
            reserve,
            limits,
        )
    } else {
        parse_stream(bytes, name, kind, Encoding::Raw, bytes.len(), limits)
    }
}

/// How the bytes were stored, for the wording of errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Raw,
    Gzip,
}

impl Encoding {
    fn stream(self) -> &'static str {
        match self {
            Encoding::Raw => "the file",
            Encoding::Gzip => "the decompressed stream",
        }
    }
}

/// Reads into `buf` until it is full or the reader ends; returns the number
/// of bytes read.
fn read_up_to(
    reader: &mut impl Read,
    buf: &mut [u8],
    name: &Path,
    encoding: Encoding,
) -> Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(read_error(name, e, encoding)),
        }
    }
    Ok(filled)
}

/// A read error: from the gzip decoder a corrupt stream, from a raw file an I/O error.
fn read_error(name: &Path, e: std::io::Error, encoding: Encoding) -> Error {
    match encoding {
        Encoding::Gzip => data_error(name, format!("corrupt gzip stream: {e}")),
        Encoding::Raw => Error::io(name, e),
    }
}

/// Reads the `len` declared data bytes into a buffer that never holds more
/// than `len` bytes: exactly `len` reserved up front when `reserve` covers it
/// (raw input, whose length was checked), otherwise starting from `reserve`
/// (at least 64 KiB) and doubling only when full. Returns fewer bytes if the
/// stream ends first.
fn read_data(
    reader: &mut impl Read,
    len: usize,
    reserve: usize,
    name: &Path,
    encoding: Encoding,
) -> Result<Vec<u8>> {
    let mut data: Vec<u8> = Vec::new();
    let mut filled = 0;
    while filled < len {
        if filled == data.len() {
            let grown = if data.is_empty() {
                reserve.max(GZIP_FIRST_CHUNK)
            } else {
                data.len().saturating_mul(2)
            }
            .min(len);
            data.try_reserve_exact(grown - data.len()).map_err(|_| {
                data_error(
                    name,
                    format!("cannot allocate {grown} bytes for the data: out of memory"),
                )
            })?;
            data.resize(grown, 0);
        }
        let got = read_up_to(reader, &mut data[filled..], name, encoding)?;
        if got == 0 {
            break;
        }
        filled += got;
    }
    data.truncate(filled);
    Ok(data)
}

/// Reads one IDX file of `kind` from `reader`.
///
/// `reserve` bounds the buffer reserved before reading the data: for raw
/// bytes it is their length (so a header declaring more fails before any
/// allocation); for gzip a small multiple of the compressed size, past which
/// the buffer grows only as decompressed bytes arrive. Nothing is read past
/// the header unless the declared size is within `limits`.
fn parse_stream(
    mut reader: impl Read,
    name: &Path,
    kind: Kind,
    encoding: Encoding,
    reserve: usize,
    limits: DataLimits,
) -> Result<(Vec<usize>, Vec<u8>)> {
    let stream = encoding.stream();

    // Magic: 0x00 0x00 dtype ndims.
    let mut magic = [0u8; 4];
    let got = read_up_to(&mut reader, &mut magic, name, encoding)?;
    if got < magic.len() {
        return Err(data_error(
            name,
            format!(
                "truncated header: {stream} ends after {got} bytes, inside the 4-byte magic number"
            ),
        ));
    }
    let magic_value = u32::from_be_bytes(magic);
    if magic[0] != 0 || magic[1] != 0 {
        return Err(data_error(
            name,
            format!(
                "bad magic number 0x{magic_value:08x}: not an IDX file (expected 0x{:08x} for {})",
                kind.magic(),
                kind.what()
            ),
        ));
    }
    let dtype = magic[2];
    if dtype != DTYPE_U8 {
        return Err(data_error(
            name,
            format!(
                "unsupported dtype byte 0x{dtype:02x} ({}) in magic 0x{magic_value:08x}: only unsigned bytes (0x08) are read",
                dtype_name(dtype)
            ),
        ));
    }
    let ndims = magic[3];
    if ndims != kind.ndims() {
        return Err(data_error(
            name,
            format!(
                "wrong number of dimensions: magic 0x{magic_value:08x} declares {ndims}, IDX {} have {} (magic 0x{:08x})",
                kind.what(),
                kind.ndims(),
                kind.magic()
            ),
        ));
    }

    // Dimensions: one big-endian u32 each (at most 3 here, so 12 bytes).
    let ndims = usize::from(ndims);
    let mut dim_bytes = [0u8; 12];
    let dim_bytes = &mut dim_bytes[..4 * ndims];
    let got = read_up_to(&mut reader, dim_bytes, name, encoding)?;
    if got < dim_bytes.len() {
        return Err(data_error(
            name,
            format!(
                "truncated header: {stream} ends after {} bytes, inside the {}-byte header ({ndims} dimension{})",
                4 + got,
                4 + dim_bytes.len(),
                if ndims == 1 { "" } else { "s" }
            ),
        ));
    }
    let dims: Vec<u32> = dim_bytes
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let shown = dims
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join("×");
    let product = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(u64::from(d)))
        .and_then(|p| usize::try_from(p).ok())
        .ok_or_else(|| {
            data_error(
                name,
                format!("dimensions {shown} overflow: their product does not fit in memory sizes"),
            )
        })?;
    let header_len = 4 + 4 * ndims;

    // Data: never reserve more than the input justifies or the limit allows,
    // read at most `product` bytes (a gzip buffer grows only with bytes
    // actually read), then require the end of the stream.
    let available = reserve.saturating_sub(header_len);
    if encoding == Encoding::Raw && product > available {
        return Err(data_error(
            name,
            format!(
                "truncated data: header declares {shown} = {product} data bytes but only {available} follow"
            ),
        ));
    }
    check_limit(product, &shown, kind, limits, name)?;
    let data = read_data(&mut reader, product, available, name, encoding)?;
    if data.len() < product {
        return Err(data_error(
            name,
            format!(
                "truncated data: header declares {shown} = {product} data bytes but {stream} has only {}",
                data.len()
            ),
        ));
    }
    let trailing = std::io::copy(
        &mut (&mut reader).take(TRAILING_SCAN + 1),
        &mut std::io::sink(),
    )
    .map_err(|e| read_error(name, e, encoding))?;
    if trailing > TRAILING_SCAN {
        return Err(data_error(
            name,
            format!("more than {TRAILING_SCAN} trailing bytes after the {product} data bytes declared by {shown}"),
        ));
    }
    if trailing > 0 {
        return Err(data_error(
            name,
            format!("{trailing} trailing bytes after the {product} data bytes declared by {shown}"),
        ));
    }
    let dims = dims
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|_| data_error(name, format!("dimensions {shown} do not fit in usize")))?;
    Ok((dims, data))
}

/// Refuses a declared size beyond `limits`, stating what it would need.
fn check_limit(
    product: usize,
    shown: &str,
    kind: Kind,
    limits: DataLimits,
    name: &Path,
) -> Result<()> {
    let count = u64::try_from(product).unwrap_or(u64::MAX);
    if count <= limits.max_pixels() {
        return Ok(());
    }
    let max = limits.max_bytes;
    let reason = match kind {
        Kind::Images => {
            let needs = u128::from(count) * u128::from(DECODED_PIXEL_BYTES);
            format!(
                "too large: {shown} = {product} pixels need {needs} bytes as f32, more than the limit of {max} bytes (raise DataLimits::max_bytes, default MAX_DATASET_BYTES)"
            )
        }
        Kind::Labels => format!(
            "too large: {product} labels, more than the {} images the limit of {max} bytes of f32 pixels allows (raise DataLimits::max_bytes, default MAX_DATASET_BYTES)",
            limits.max_pixels()
        ),
    };
    Err(data_error(name, reason))
}

/// The IDX name of a dtype byte, for error messages.
fn dtype_name(dtype: u8) -> &'static str {
    match dtype {
        0x08 => "unsigned byte",
        0x09 => "signed byte",
        0x0B => "i16",
        0x0C => "i32",
        0x0D => "f32",
        0x0E => "f64",
        _ => "unknown",
    }
}
