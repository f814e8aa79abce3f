//! The one input shape of name/value settings (`remote_write.headers`,
//! `remote_write.external_labels`): a map, a list of entries, or one entry
//! (what an environment variable or a repeated flag gives). Each setting
//! splits its own entries, with its own separator and message.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};

/// A name/value setting as written.
pub(crate) enum Pairs {
    /// `{name = "value", …}`: already split.
    Map(BTreeMap<String, String>),
    /// Entries still to split, in the order written.
    Entries(Vec<String>),
}

impl<'de> Deserialize<'de> for Pairs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Map(BTreeMap<String, String>),
            List(Vec<String>),
            One(String),
        }
        Ok(match Raw::deserialize(deserializer)? {
            Raw::Map(map) => Self::Map(map),
            Raw::List(list) => Self::Entries(list),
            Raw::One(entry) => Self::Entries(vec![entry]),
        })
    }
}
