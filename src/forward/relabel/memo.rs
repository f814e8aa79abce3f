//! What a rule computed for an input, remembered for the rest of one push.
//!
//! Series of one push share most values (`__name__` within a family,
//! `job`, `instance`, a status code), so a rule's regex runs once per
//! distinct input instead of once per series. A memo gives up, for the
//! rest of the push, when its inputs turn out mostly distinct (a rule on
//! a high-cardinality label would pay the lookup and keep nothing), and
//! stops growing at [`MAX_ENTRIES`].

use std::borrow::Cow;
use std::collections::HashMap;

use crate::hashing::Seeded;

/// The most inputs one rule remembers in one push.
const MAX_ENTRIES: usize = 1024;
/// Lookups after which a memo decides whether it pays.
const TRIAL_LOOKUPS: u32 = 64;

/// A label a rule writes: its name and value.
pub type WrittenLabel = (Box<[u8]>, Box<[u8]>);

/// What a rule made of one input.
#[derive(Clone, Debug)]
pub enum Remembered {
    /// Whether the regex matched (keep, drop, labelkeep, labeldrop).
    Matched(bool),
    /// The value written, `None` when the regex did not match (replace,
    /// lowercase, uppercase, hashmod, labelmap's name).
    Value(Option<Box<[u8]>>),
    /// The name and value written by a replace with a templated target,
    /// `None` when the regex did not match or the name is invalid.
    Named(Option<WrittenLabel>),
}

/// One rule's memo for one push.
#[derive(Debug)]
pub struct Memo {
    /// Inputs, by index in `remembered`.
    entries: HashMap<Box<[u8]>, usize, Seeded>,
    remembered: Vec<Remembered>,
    lookups: u32,
    hits: u32,
    enabled: bool,
}

impl Default for Memo {
    fn default() -> Self {
        Self {
            entries: HashMap::default(),
            remembered: Vec::new(),
            lookups: 0,
            hits: 0,
            enabled: true,
        }
    }
}

impl Memo {
    /// What the rule made of `input` (computed by `compute` unless
    /// remembered).
    pub fn get_or(
        &mut self,
        input: &[u8],
        compute: impl FnOnce(&[u8]) -> Remembered,
    ) -> Cow<'_, Remembered> {
        if !self.enabled {
            return Cow::Owned(compute(input));
        }
        self.lookups += 1;
        if let Some(&index) = self.entries.get(input) {
            self.hits += 1;
            return Cow::Borrowed(&self.remembered[index]);
        }
        // Mostly distinct inputs: remembering costs more than it saves.
        if self.lookups == TRIAL_LOOKUPS && self.hits < TRIAL_LOOKUPS / 2 {
            self.enabled = false;
            self.entries = HashMap::default();
            self.remembered = Vec::new();
            return Cow::Owned(compute(input));
        }
        let remembered = compute(input);
        if self.entries.len() >= MAX_ENTRIES {
            return Cow::Owned(remembered);
        }
        self.entries.insert(input.into(), self.remembered.len());
        self.remembered.push(remembered);
        Cow::Borrowed(self.remembered.last().expect("just pushed"))
    }
}
