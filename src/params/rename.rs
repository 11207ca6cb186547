//! [`RenameMap`]: how the tensor names of a PyTorch `state_dict` become vaekit's
//! parameter names, with the maps of the five reference models.

/// Last name segment of batch norm's step counter, which vaekit does not keep:
/// a `state_dict` tensor ending in it is always ignored.
const BATCHES_TRACKED: &str = "num_batches_tracked";

/// How the tensor names of a PyTorch `state_dict` become vaekit's parameter
/// names, for [`import_state_dict`](super::import_state_dict).
///
/// Rules name *paths*: whole dotted segments, so `enc` matches `enc.weight` and
/// `enc` itself but not `encoder.weight`.
///
/// - [`rename`](Self::rename): one tensor to another name;
/// - [`rename_prefix`](Self::rename_prefix): every tensor under a module path
///   to another path (`enc.weight` → `encoder.hidden.0.weight`);
/// - [`stack_rows`](Self::stack_rows): tensors of several modules stacked
///   along their first dimension into one (PyTorch's separate `fc_mu` and
///   `fc_logvar` heads into vaekit's `encoder.out`, mean rows over
///   log-variance rows);
/// - [`ignore`](Self::ignore): tensors under a path are dropped on purpose.
///
/// A name that no rule matches is kept as it is, so a `state_dict` already in
/// vaekit's names imports with `RenameMap::new()`. Where several rules match,
/// the one with the longest path wins (an exact [`rename`](Self::rename) before
/// a prefix of the same path), and of equal ones the rule added last, so
/// rules added to a ready-made map override it. Batch norm's
/// `num_batches_tracked` counters are always ignored: vaekit's batch norm has
/// a fixed momentum and no step counter.
///
/// ```
/// use vaekit::params::{Destination, RenameMap};
///
/// let map = RenameMap::new()
///     .rename_prefix("enc", "encoder.hidden.0")
///     .stack_rows(&["fc_mu", "fc_logvar"], "encoder.out");
/// assert_eq!(map.destination("enc.bias"), Destination::Tensor("encoder.hidden.0.bias".into()));
/// assert_eq!(
///     map.destination("fc_logvar.weight"),
///     Destination::Rows {
///         name: "encoder.out.weight".into(),
///         part: 1,
///         sources: vec!["fc_mu.weight".into(), "fc_logvar.weight".into()],
///     }
/// );
/// assert_eq!(map.destination("decoder.out.bias"), Destination::Tensor("decoder.out.bias".into()));
/// assert_eq!(map.destination("bn.num_batches_tracked"), Destination::Ignored);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RenameMap {
    rules: Vec<Rule>,
}

/// One rule of a [`RenameMap`].
#[derive(Debug, Clone, PartialEq, Eq)]
enum Rule {
    Exact { from: String, to: String },
    Prefix { from: String, to: String },
    Stack { sources: Vec<String>, to: String },
    Ignore { path: String },
}

/// Where a [`RenameMap`] sends one tensor of a `state_dict`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// The vaekit tensor of this name.
    Tensor(String),
    /// Part `part` of the vaekit tensor `name`, which stacks the tensors
    /// `sources` (full `state_dict` names, in order) along dimension 0.
    Rows {
        /// The vaekit tensor.
        name: String,
        /// Which of `sources` this tensor is (0-based).
        part: usize,
        /// Every part's name in the `state_dict`, in stacking order.
        sources: Vec<String>,
    },
    /// Dropped on purpose: batch norm's `num_batches_tracked`, or an
    /// [`ignore`](RenameMap::ignore) rule.
    Ignored,
}

impl RenameMap {
    /// A map with no rule: every name is kept as it is.
    pub fn new() -> Self {
        Self::default()
    }

    /// Renames the tensor `from` to `to` (exact names, e.g.
    /// `fc.weight` → `encoder.out.weight`).
    pub fn rename(mut self, from: impl Into<String>, to: impl Into<String>) -> Self {
        self.rules.push(Rule::Exact {
            from: from.into(),
            to: to.into(),
        });
        self
    }

    /// Renames every tensor under the module path `from` to the same name under
    /// `to`: with `("encoder.0", "encoder.blocks.0.conv")`, `encoder.0.weight`
    /// becomes `encoder.blocks.0.conv.weight`. An empty `from` matches every
    /// name (`("", "encoder")` puts a whole `state_dict` under `encoder.`); an
    /// empty `to` strips the prefix.
    pub fn rename_prefix(mut self, from: impl Into<String>, to: impl Into<String>) -> Self {
        self.rules.push(Rule::Prefix {
            from: from.into(),
            to: to.into(),
        });
        self
    }

    /// Stacks the tensors under the module paths `sources` along their first
    /// dimension, in that order, into the same names under `to`: with
    /// `(&["fc_mu", "fc_logvar"], "encoder.out")`, `encoder.out.weight` is
    /// `fc_mu.weight`'s rows over `fc_logvar.weight`'s, and `encoder.out.bias`
    /// likewise. Paths may also be whole tensor names.
    ///
    /// This is how separate mean and log-variance heads become vaekit's VAE
    /// encoder output layer, which stacks the mean rows over the log-variance
    /// rows into one `[2·latent, in]` weight and `[2·latent]` bias.
    pub fn stack_rows(mut self, sources: &[&str], to: impl Into<String>) -> Self {
        self.rules.push(Rule::Stack {
            sources: sources.iter().map(|s| s.to_string()).collect(),
            to: to.into(),
        });
        self
    }

    /// Drops every tensor under the path `path` (a module path or a tensor
    /// name) without reporting it as unused: e.g. a head the vaekit model does
    /// not have.
    pub fn ignore(mut self, path: impl Into<String>) -> Self {
        self.rules.push(Rule::Ignore { path: path.into() });
        self
    }

    /// Where the `state_dict` tensor `source` goes.
    pub fn destination(&self, source: &str) -> Destination {
        if source.rsplit('.').next() == Some(BATCHES_TRACKED) {
            return Destination::Ignored;
        }
        // (matched path length, exact match): longer wins, ties go to later rules.
        let mut best: Option<((usize, bool), Destination)> = None;
        for rule in &self.rules {
            let found = match rule {
                Rule::Exact { from, to } => {
                    (source == from).then(|| ((from.len(), true), Destination::Tensor(to.clone())))
                }
                Rule::Prefix { from, to } => under(source, from)
                    .map(|rest| ((from.len(), false), Destination::Tensor(join(to, rest)))),
                Rule::Ignore { path } => {
                    under(source, path).map(|_| ((path.len(), false), Destination::Ignored))
                }
                Rule::Stack { sources, to } => sources
                    .iter()
                    .enumerate()
                    .filter_map(|(part, path)| Some((part, path, under(source, path)?)))
                    .max_by_key(|(_, path, _)| path.len())
                    .map(|(part, path, rest)| {
                        let dest = Destination::Rows {
                            name: join(to, rest),
                            part,
                            sources: sources.iter().map(|s| join(s, rest)).collect(),
                        };
                        ((path.len(), false), dest)
                    }),
            };
            if let Some((score, dest)) = found {
                if best.as_ref().is_none_or(|(b, _)| score >= *b) {
                    best = Some((score, dest));
                }
            }
        }
        best.map_or_else(|| Destination::Tensor(source.to_string()), |(_, d)| d)
    }

    /// The `state_dict` names the map would take the vaekit tensor `target`
    /// from: one name, or the parts of a stack. Used to say what a missing
    /// tensor was looked for as.
    pub(crate) fn sources_of(&self, target: &str) -> Vec<String> {
        let mut best: Option<(usize, Vec<String>)> = None;
        for rule in &self.rules {
            let found = match rule {
                Rule::Exact { from, to } => (target == to).then(|| (to.len(), vec![from.clone()])),
                Rule::Prefix { from, to } => {
                    under(target, to).map(|rest| (to.len(), vec![join(from, rest)]))
                }
                Rule::Stack { sources, to } => under(target, to)
                    .map(|rest| (to.len(), sources.iter().map(|s| join(s, rest)).collect())),
                Rule::Ignore { .. } => None,
            };
            if let Some((len, names)) = found {
                // Only names the map really sends to `target`: a more specific
                // rule may send them elsewhere.
                let sends_here = names.iter().all(|n| match self.destination(n) {
                    Destination::Tensor(t) | Destination::Rows { name: t, .. } => t == target,
                    Destination::Ignored => false,
                });
                if sends_here && best.as_ref().is_none_or(|(b, _)| len >= *b) {
                    best = Some((len, names));
                }
            }
        }
        best.map_or_else(|| vec![target.to_string()], |(_, names)| names)
    }

    /// The reference PyTorch dense VAE (preset `dense-vae`): `enc` (784→256),
    /// `fc_mu` and `fc_logvar` (256→latent), `dec1` (latent→256), `dec2`
    /// (256→784).
    pub fn dense_vae() -> Self {
        Self::new()
            .rename_prefix("enc", "encoder.hidden.0")
            .stack_rows(&["fc_mu", "fc_logvar"], "encoder.out")
            .rename_prefix("dec1", "decoder.hidden.0")
            .rename_prefix("dec2", "decoder.out")
    }

    /// The reference PyTorch version of the TensorFlow CVAE (preset
    /// `cvae-tf`): `nn.Sequential`s `encoder` (convs `0`, `2`; linear `5`,
    /// whose output is already mean over log-variance) and `decoder` (linear
    /// `0`; transposed convs `3`, `5`, `7`).
    pub fn cvae_tf() -> Self {
        Self::new()
            .rename_prefix("encoder.0", "encoder.blocks.0.conv")
            .rename_prefix("encoder.2", "encoder.blocks.1.conv")
            .rename_prefix("encoder.5", "encoder.out")
            .rename_prefix("decoder.0", "decoder.fc")
            .rename_prefix("decoder.3", "decoder.blocks.0.conv")
            .rename_prefix("decoder.5", "decoder.blocks.1.conv")
            .rename_prefix("decoder.7", "decoder.blocks.2.conv")
    }

    /// The reference PyTorch conv VAE with batch norm (preset `conv-vae-bn`):
    /// `encoder` (conv `0`, batch norm `1`, conv `3`, batch norm `4`, conv
    /// `6`, batch norm `7`), heads `fc_mu` and `fc_logvar`, `dec_fc`, and
    /// `decoder` (transposed convs `1`, `3`).
    pub fn conv_vae_bn() -> Self {
        Self::new()
            .rename_prefix("encoder.0", "encoder.blocks.0.conv")
            .rename_prefix("encoder.1", "encoder.blocks.0.bn")
            .rename_prefix("encoder.3", "encoder.blocks.1.conv")
            .rename_prefix("encoder.4", "encoder.blocks.1.bn")
            .rename_prefix("encoder.6", "encoder.blocks.2.conv")
            .rename_prefix("encoder.7", "encoder.blocks.2.bn")
            .stack_rows(&["fc_mu", "fc_logvar"], "encoder.out")
            .rename_prefix("dec_fc", "decoder.fc")
            .rename_prefix("decoder.1", "decoder.blocks.0.conv")
            .rename_prefix("decoder.3", "decoder.blocks.1.conv")
    }

    /// The reference PyTorch digit-conditioned VAE (preset `digit-cvae`):
    /// `enc`, heads `fc_mu` and `fc_logvar`, classifier `cls1` and `cls2`,
    /// decoder `dec1` (input `[z | class vector]`) and `dec2`.
    pub fn digit_cvae() -> Self {
        Self::new()
            .rename_prefix("enc", "encoder.hidden.0")
            .stack_rows(&["fc_mu", "fc_logvar"], "encoder.out")
            .rename_prefix("cls1", "classifier.hidden.0")
            .rename_prefix("cls2", "classifier.out")
            .rename_prefix("dec1", "decoder.hidden.0")
            .rename_prefix("dec2", "decoder.out")
    }

    /// The reference PyTorch version of the Keras conv autoencoder (presets
    /// `conv-ae` and `conv-ae-2d`): `nn.Sequential`s `encoder` (convs `0`,
    /// `2`, `4`, `6`; linear `9`) and `decoder` (linear `0`; convs `3`, `6`,
    /// `9`, the last two after nearest up-sampling).
    pub fn conv_ae() -> Self {
        Self::new()
            .rename_prefix("encoder.0", "encoder.blocks.0.conv")
            .rename_prefix("encoder.2", "encoder.blocks.1.conv")
            .rename_prefix("encoder.4", "encoder.blocks.2.conv")
            .rename_prefix("encoder.6", "encoder.blocks.3.conv")
            .rename_prefix("encoder.9", "encoder.out")
            .rename_prefix("decoder.0", "decoder.fc")
            .rename_prefix("decoder.3", "decoder.blocks.0.conv")
            .rename_prefix("decoder.6", "decoder.blocks.1.conv")
            .rename_prefix("decoder.9", "decoder.blocks.2.conv")
    }
}

/// The rest of `name` under the dotted path `path` (`""` when they are equal),
/// or `None` if `name` is not under it. Every name is under the empty path.
fn under<'a>(name: &'a str, path: &str) -> Option<&'a str> {
    if path.is_empty() {
        return Some(name);
    }
    let rest = name.strip_prefix(path)?;
    if rest.is_empty() {
        Some(rest)
    } else {
        rest.strip_prefix('.')
    }
}

/// `path.rest`, or whichever of the two is not empty.
fn join(path: &str, rest: &str) -> String {
    match (path.is_empty(), rest.is_empty()) {
        (true, _) => rest.to_string(),
        (false, true) => path.to_string(),
        (false, false) => format!("{path}.{rest}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_whole_segments() {
        assert_eq!(under("enc.weight", "enc"), Some("weight"));
        assert_eq!(under("enc", "enc"), Some(""));
        assert_eq!(under("encoder.weight", "enc"), None);
        assert_eq!(under("a.b", ""), Some("a.b"));
        assert_eq!(join("", "a"), "a");
        assert_eq!(join("a", ""), "a");
        assert_eq!(join("a", "b"), "a.b");
    }

    #[test]
    fn longest_path_wins_and_later_rules_break_ties() {
        let map = RenameMap::new()
            .rename_prefix("encoder", "e")
            .rename_prefix("encoder.0", "first")
            .rename("encoder.0.weight", "w")
            .rename_prefix("encoder", "later");
        let dest = |n: &str| match map.destination(n) {
            Destination::Tensor(t) => t,
            other => panic!("{n}: {other:?}"),
        };
        assert_eq!(dest("encoder.0.weight"), "w");
        assert_eq!(dest("encoder.0.bias"), "first.bias");
        assert_eq!(dest("encoder.1.bias"), "later.1.bias");
        assert_eq!(dest("other"), "other");
    }

    #[test]
    fn ignore_rules_and_batch_counters_drop_tensors() {
        let map = RenameMap::new().ignore("head").rename_prefix("", "encoder");
        assert_eq!(map.destination("head.weight"), Destination::Ignored);
        assert_eq!(
            map.destination("bn.num_batches_tracked"),
            Destination::Ignored
        );
        assert_eq!(
            map.destination("heads.weight"),
            Destination::Tensor("encoder.heads.weight".into())
        );
    }

    #[test]
    fn sources_of_inverts_the_rule_that_sends_a_name_there() {
        let map = RenameMap::dense_vae();
        assert_eq!(
            map.sources_of("encoder.out.bias"),
            ["fc_mu.bias", "fc_logvar.bias"]
        );
        assert_eq!(map.sources_of("decoder.out.weight"), ["dec2.weight"]);
        assert_eq!(map.sources_of("prior.means"), ["prior.means"]);
        // A more specific rule sends `a.x` elsewhere, so it is not offered.
        let map = RenameMap::new().rename_prefix("a", "b").rename("a.x", "c");
        assert_eq!(map.sources_of("b.x"), ["b.x"]);
        assert_eq!(map.sources_of("b.y"), ["a.y"]);
    }
}
