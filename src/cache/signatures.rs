//! Series signatures: the seeded 64-bit identity of a series (family name
//! and label pairs) that the consistency index and the stored families
//! share, and a family's type as the cache reads and names it. A leaf:
//! imports nothing from the cache.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;

use crate::proto::client::{LabelPair, MetricFamily, MetricType};

/// The per-process seed of series signatures (see `crate::hashing`); the
/// quality variant, as a signature is a series' identity in the index,
/// not only a bucket choice.
static SIGNATURE_SEED: OnceLock<foldhash::quality::RandomState> = OnceLock::new();

/// A 64-bit signature of one series (family name + all label pairs, as
/// bytes: [`pair_bytes`] and `stored::Labels` give the same pairs for one
/// series).
pub fn series_signature<'a>(
    name: &str,
    labels: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
) -> u64 {
    let mut hasher = SIGNATURE_SEED.get_or_init(Default::default).build_hasher();
    hasher.write(name.as_bytes());
    hasher.write_usize(name.len());
    // A hit is always confirmed by comparing labels: the encoding need not
    // be collision-free, only cheap (both lengths in one word).
    for (label, value) in labels {
        hasher.write(label);
        hasher.write(value);
        hasher.write_u64(((label.len() as u64) << 32) ^ value.len() as u64);
    }
    hasher.finish()
}

/// The signature of a series given as label pairs.
pub fn signature_of<'a, L: Borrow<LabelPair> + 'a>(
    name: &str,
    labels: impl IntoIterator<Item = &'a L>,
) -> u64 {
    series_signature(name, labels.into_iter().map(|l| pair_bytes(l.borrow())))
}

/// A label pair as the bytes `stored::Labels` yields (an absent name or value is
/// empty, as the getters read it).
pub fn pair_bytes(label: &LabelPair) -> (&[u8], &[u8]) {
    (label.name().as_bytes(), label.value().as_bytes())
}

/// Whether two label lists are the same pairs in the same order.
pub fn same_labels<A: Borrow<LabelPair>, B: Borrow<LabelPair>>(a: &[A], b: &[B]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            let (x, y) = (x.borrow(), y.borrow());
            x.name() == y.name() && x.value() == y.value()
        })
}

/// Go's `MetricType.String()`: `COUNTER`, `GAUGE`, ...
pub fn type_name(kind: i32) -> &'static str {
    MetricType::try_from(kind).map_or("UNKNOWN", |t| t.as_str_name())
}

/// The type of a family; an absent type is COUNTER (the proto default).
pub fn family_type(family: &MetricFamily) -> i32 {
    family.r#type.unwrap_or(MetricType::Counter as i32)
}
