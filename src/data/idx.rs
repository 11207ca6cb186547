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

use std::io::Read;
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
/// shorter or longer than the header declares, or the gzip stream is corrupt.
pub fn parse_images(bytes: &[u8], name: impl AsRef<Path>) -> Result<IdxImages> {
    let name = name.as_ref();
    let (dims, pixels) = parse(bytes, name, Kind::Images)?;
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
/// [`parse_images`].
pub fn parse_labels(bytes: &[u8], name: impl AsRef<Path>) -> Result<Vec<u8>> {
    let (_, labels) = parse(bytes, name.as_ref(), Kind::Labels)?;
    Ok(labels)
}

/// Reads IDX images from the file at `path`, raw or gzip.
///
/// # Errors
///
/// [`Error::Io`] if the file cannot be read, otherwise as [`parse_images`].
pub fn read_images(path: impl AsRef<Path>) -> Result<IdxImages> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_images(&bytes, path)
}

/// Reads IDX labels from the file at `path`, raw or gzip.
///
/// # Errors
///
/// [`Error::Io`] if the file cannot be read, otherwise as [`parse_labels`].
pub fn read_labels(path: impl AsRef<Path>) -> Result<Vec<u8>> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_labels(&bytes, path)
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
fn parse(bytes: &[u8], name: &Path, kind: Kind) -> Result<(Vec<usize>, Vec<u8>)> {
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
        )
    } else {
        parse_stream(bytes, name, kind, Encoding::Raw, bytes.len())
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
/// of bytes read. Read errors (only possible from the gzip decoder) are
/// reported as a corrupt gzip stream.
fn read_up_to(reader: &mut impl Read, buf: &mut [u8], name: &Path) -> Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(corrupt_gzip(name, &e)),
        }
    }
    Ok(filled)
}

fn corrupt_gzip(name: &Path, e: &std::io::Error) -> Error {
    data_error(name, format!("corrupt gzip stream: {e}"))
}

/// Reads one IDX file of `kind` from `reader`.
///
/// `reserve` bounds the buffer reserved before reading the data: for raw
/// bytes it is their length (so a header declaring more fails before any
/// allocation); for gzip a small multiple of the compressed size, past which
/// the buffer grows only as decompressed bytes arrive.
fn parse_stream(
    mut reader: impl Read,
    name: &Path,
    kind: Kind,
    encoding: Encoding,
    reserve: usize,
) -> Result<(Vec<usize>, Vec<u8>)> {
    let stream = encoding.stream();

    // Magic: 0x00 0x00 dtype ndims.
    let mut magic = [0u8; 4];
    let got = read_up_to(&mut reader, &mut magic, name)?;
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
    let got = read_up_to(&mut reader, dim_bytes, name)?;
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

    // Data: never reserve more than the input justifies, read at most
    // `product` bytes (the buffer grows only with bytes actually read), then
    // require the end of the stream.
    let available = reserve.saturating_sub(header_len);
    if encoding == Encoding::Raw && product > available {
        return Err(data_error(
            name,
            format!(
                "truncated data: header declares {shown} = {product} data bytes but only {available} follow"
            ),
        ));
    }
    let mut data = Vec::with_capacity(product.min(available));
    let limit = u64::try_from(product).unwrap_or(u64::MAX);
    (&mut reader)
        .take(limit)
        .read_to_end(&mut data)
        .map_err(|e| corrupt_gzip(name, &e))?;
    if data.len() < product {
        return Err(data_error(
            name,
            format!(
                "truncated data: header declares {shown} = {product} data bytes but {stream} has only {}",
                data.len()
            ),
        ));
    }
    let trailing =
        std::io::copy(&mut reader, &mut std::io::sink()).map_err(|e| corrupt_gzip(name, &e))?;
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
