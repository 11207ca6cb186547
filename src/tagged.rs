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
        $crate::tagged::inner::<$inner>($rest).map(|v| $ty::$variant(v.into()))
    };
    (@variant $ty:ident, $variant:ident, $rest:ident) => {
        match &$rest {
            serde_json::Value::Object(m) if m.is_empty() => Ok($ty::$variant),
            _ => Err($crate::tagged::mark(".", "this variant takes no other field")),
        }
    };
}
pub(crate) use tagged_deserialize;

/// One step of a field path: an object key or an array index.
#[derive(Debug, PartialEq)]
enum Step<'p> {
    Key(&'p str),
    Index(usize),
}

/// The steps of a path as serde_path_to_error writes it
/// (`model.encoder.blocks[1].kernel`; `.` is the root).
fn steps(path: &str) -> Option<Vec<Step<'_>>> {
    let mut out = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, mut rest) = part.split_at(part.find('[').unwrap_or(part.len()));
        if !key.is_empty() {
            out.push(Step::Key(key));
        }
        while let Some(r) = rest.strip_prefix('[') {
            let (n, after) = r.split_once(']')?;
            out.push(Step::Index(n.parse().ok()?));
            rest = after;
        }
    }
    Some(out)
}

/// The line and column (1-based, in characters) in `json` of the field at
/// `path`: the start of its key in an object, of its value in an array; the
/// deepest part of the path that exists when the rest does not (an unknown
/// field's path may end in a name the scanner finds, or not).
pub(crate) fn locate(json: &str, path: &str) -> Option<(usize, usize)> {
    let steps = steps(path)?;
    let mut scan = Scanner {
        b: json.as_bytes(),
        i: 0,
    };
    let at = scan.find(&steps, None)?;
    let before = &json[..at];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit_once('\n')
        .map_or(before, |(_, l)| l)
        .chars()
        .count()
        + 1;
    Some((line, col))
}

/// A minimal scanner over JSON text that finds a field path; it relies on
/// the text being well formed only as far as it reads.
struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Scanner<'a> {
    fn ws(&mut self) {
        while self.b.get(self.i).is_some_and(u8::is_ascii_whitespace) {
            self.i += 1;
        }
    }

    /// At a value: the offset of the `target` path inside it, else `found`
    /// (the deepest step matched so far); the scanner is left after the value.
    fn find(&mut self, target: &[Step<'_>], found: Option<usize>) -> Option<usize> {
        self.ws();
        let (open, close) = match self.b.get(self.i)? {
            b'{' => (b'{', b'}'),
            b'[' => (b'[', b']'),
            _ => {
                self.skip()?;
                return found;
            }
        };
        self.i += 1;
        let mut index = 0;
        let mut result = None;
        loop {
            self.ws();
            if *self.b.get(self.i)? == close {
                self.i += 1;
                return result.or(found);
            }
            let start = self.i;
            let matched = if open == b'{' {
                let key = self.string()?;
                self.ws();
                if *self.b.get(self.i)? != b':' {
                    return None;
                }
                self.i += 1;
                target.first() == Some(&Step::Key(key))
            } else {
                index += 1;
                target.first() == Some(&Step::Index(index - 1))
            };
            if matched && result.is_none() {
                result = Some(if target.len() == 1 {
                    self.skip()?;
                    start
                } else {
                    self.find(&target[1..], Some(start))?
                });
            } else {
                self.skip()?;
            }
            self.ws();
            if *self.b.get(self.i)? == b',' {
                self.i += 1;
            }
        }
    }

    /// The raw text of the string at the scanner (escapes left as they are).
    fn string(&mut self) -> Option<&'a str> {
        if *self.b.get(self.i)? != b'"' {
            return None;
        }
        let start = self.i + 1;
        let mut j = start;
        while *self.b.get(j)? != b'"' {
            j += if self.b[j] == b'\\' { 2 } else { 1 };
        }
        self.i = j + 1;
        let b: &'a [u8] = self.b;
        std::str::from_utf8(&b[start..j]).ok()
    }

    /// Skips the value at the scanner.
    fn skip(&mut self) -> Option<()> {
        self.ws();
        match *self.b.get(self.i)? {
            b'"' => self.string().map(drop),
            b'{' | b'[' => {
                let mut depth = 0usize;
                loop {
                    match *self.b.get(self.i)? {
                        b'"' => {
                            self.string()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                self.i += 1;
                                return Some(());
                            }
                        }
                        _ => {}
                    }
                    self.i += 1;
                }
            }
            _ => {
                let start = self.i;
                while self
                    .b
                    .get(self.i)
                    .is_some_and(|c| !matches!(c, b',' | b'}' | b']') && !c.is_ascii_whitespace())
                {
                    self.i += 1;
                }
                // A value that is empty (a stray `}` in an array, `[1, }`)
                // is malformed; stopping here keeps the caller's loop from
                // spinning on it forever.
                (self.i > start).then_some(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_located_at_their_key() {
        let json = "{\n  \"model\": {\n    \"encoder\": {\"blocks\": [{\"k\": 1}, {\"kernel\": 3}]}\n  }\n}";
        assert_eq!(locate(json, "model"), Some((2, 3)));
        assert_eq!(locate(json, "model.encoder"), Some((3, 5)));
        assert_eq!(locate(json, "model.encoder.blocks[1]"), Some((3, 38)));
        assert_eq!(
            locate(json, "model.encoder.blocks[1].kernel"),
            Some((3, 39))
        );
        // A missing last step: the deepest step found.
        assert_eq!(locate(json, "model.encoder.nope"), Some((3, 5)));
        assert_eq!(locate("not json", "a"), None);
        assert_eq!(locate("{\"a\": [1, 2", "a[1]"), None);
    }

    /// Damaged JSON ends the scan: a stray closer where an array element
    /// should be once made the scanner loop forever (found by
    /// tests/fuzz.rs on a checkpoint's config).
    #[test]
    fn every_single_byte_damage_ends_the_scan() {
        let json = "{\"m\": {\"e\": {\"blocks\": [{\"k\": 1, \"s\": [2, 3]}, \"x\\\"y\"]}}, \"n\": -1.5e3}";
        let (done, finished) = std::sync::mpsc::channel();
        let json = json.to_string();
        std::thread::spawn(move || {
            assert_eq!(locate("{\"a\": [1, }", "a[1]"), None);
            assert_eq!(locate("{\"a\": [}]}", "a[0].b"), None);
            for i in 0..json.len() {
                for c in b"{}[],:\"\\ 0a" {
                    let mut bytes = json.clone().into_bytes();
                    bytes[i] = *c;
                    let damaged = String::from_utf8(bytes).unwrap();
                    for path in ["m.e.blocks[1]", "m.e.blocks[0].s[1]", "n", "m.z"] {
                        let _ = locate(&damaged, path);
                    }
                }
            }
            done.send(()).unwrap();
        });
        match finished.recv_timeout(std::time::Duration::from_secs(60)) {
            Ok(()) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                panic!("locate did not finish on damaged JSON")
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                panic!("locate gave a wrong answer on damaged JSON (see the thread's panic)")
            }
        }
    }
}
