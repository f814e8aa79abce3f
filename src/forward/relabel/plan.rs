//! What the rules did to one series, replayed on the series of the push
//! that look the same to them.
//!
//! The outcome of the rules depends only on a series' label names and on
//! the values of the labels the rules read or write (their
//! `source_labels`, targets and the `*equal` targets), when no rule makes
//! names out of data (`labelmap`, a templated `target_label`). Series of a
//! push share these (a family's series share `__name__` and the names;
//! status codes repeat), so the rules run once per distinct [`Plans`] key
//! and every other series only copies its entries in the planned order:
//! its own unchanged entries, and the bytes of the labels the rules wrote.
//!
//! Plans outlive a push ([`PlanBook`], kept by the relabeler): a job
//! pushes the same series again and again, and a plan depends only on its
//! key and the rules. They are looked up no more in a push whose series
//! turn out mostly distinct to them, and the book starts afresh when it
//! holds [`MAX_PLANS`].

use std::collections::HashMap;
use std::ops::Range;

use super::Outcome;
use super::labels::LabelSet;
use crate::hashing::Seeded;

/// The most plans a book keeps.
const MAX_PLANS: usize = 2048;
/// Series after which plans decide whether they pay.
const TRIAL_SERIES: u32 = 64;

/// One entry of a planned series.
#[derive(Clone, Debug)]
enum Step {
    /// The series' own entry at this index, unchanged.
    Input(usize),
    /// Encoded label bytes the rules wrote, a range of [`Plans::bytes`].
    Written(Range<usize>),
}

/// What the rules make of series with one key.
#[derive(Clone, Debug)]
pub struct Plan {
    pub outcome: Outcome,
    /// Whether a label the series had was changed or removed.
    pub lossy: bool,
    steps: Range<usize>,
}

/// Plans by key.
#[derive(Debug, Default)]
pub struct PlanBook {
    by_key: HashMap<Box<[u8]>, usize, Seeded>,
    plans: Vec<Plan>,
    steps: Vec<Step>,
    bytes: Vec<u8>,
}

/// The plans one push uses, and the series being looked up.
#[derive(Debug)]
pub struct Plans<'a> {
    book: PlanBook,
    /// The key of the series being looked up.
    key: Vec<u8>,
    /// Its encoded entries.
    entries: Vec<&'a [u8]>,
    series: u32,
    hits: u32,
    enabled: bool,
}

impl<'a> Plans<'a> {
    /// Plans for one push, starting with those of `book`.
    pub fn new(book: PlanBook) -> Self {
        Self {
            book,
            key: Vec::new(),
            entries: Vec::new(),
            series: 0,
            hits: 0,
            enabled: true,
        }
    }

    /// The plans, for the next push.
    pub fn into_book(self) -> PlanBook {
        self.book
    }

    /// Whether plans are still worth looking up in this push.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Reads one series' entries (`name`, `value`, encoded entry each) and
    /// finds its plan; the values of names `read` accepts are part of the
    /// key.
    pub fn find(
        &mut self,
        entries: impl Iterator<Item = (&'a [u8], &'a [u8], &'a [u8])>,
        read: impl Fn(&[u8]) -> bool,
    ) -> Option<Plan> {
        self.key.clear();
        self.entries.clear();
        for (name, _, entry) in entries {
            self.entries.push(entry);
            // Names are [a-zA-Z0-9_]: 0xff ends one, 0xfe starts an entry.
            if read(name) {
                // The whole entry, which gives its own lengths.
                self.key.push(0xfe);
                self.key.extend_from_slice(entry);
            } else {
                self.key.extend_from_slice(name);
                self.key.push(0xff);
            }
        }
        self.series += 1;
        if self.series == TRIAL_SERIES && self.hits < TRIAL_SERIES / 2 {
            // Mostly distinct series: planning costs more than it saves.
            self.enabled = false;
            return None;
        }
        let &index = self.book.by_key.get(self.key.as_slice())?;
        self.hits += 1;
        Some(self.book.plans[index].clone())
    }

    /// Appends the series just looked up, as `plan` says, to `out`.
    pub fn replay(&self, plan: &Plan, out: &mut Vec<u8>) {
        for step in &self.book.steps[plan.steps.clone()] {
            match step {
                Step::Input(index) => out.extend_from_slice(self.entries[*index]),
                Step::Written(range) => out.extend_from_slice(&self.book.bytes[range.clone()]),
            }
        }
    }

    /// Remembers what the rules made of the series just looked up:
    /// `outcome`, and `labels` when it is kept.
    pub fn remember(&mut self, outcome: Outcome, labels: &LabelSet<'_>) {
        if !self.enabled {
            return;
        }
        if self.book.plans.len() >= MAX_PLANS {
            self.book = PlanBook::default();
        }
        let book = &mut self.book;
        let start = book.steps.len();
        if outcome == Outcome::Kept {
            labels.for_each_entry(|encoded, name, value| {
                let own = self
                    .entries
                    .iter()
                    .position(|entry| std::ptr::eq(*entry, encoded));
                let step = match own {
                    Some(index) if !encoded.is_empty() => Step::Input(index),
                    _ => {
                        let from = book.bytes.len();
                        if encoded.is_empty() {
                            super::wire::put_label(&mut book.bytes, name, value);
                        } else {
                            book.bytes.extend_from_slice(encoded);
                        }
                        Step::Written(from..book.bytes.len())
                    }
                };
                book.steps.push(step);
            });
        }
        book.by_key
            .insert(self.key.as_slice().into(), book.plans.len());
        book.plans.push(Plan {
            outcome,
            lossy: labels.is_lossy(),
            steps: start..book.steps.len(),
        });
    }
}
