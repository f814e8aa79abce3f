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
//!
//! The book also remembers whole pushes ([`PushShape`]): the plan of each
//! series of a push whose every series had one, by a seeded hash of the
//! push's encoded labels. A push whose labels hash the same (the same
//! series again, only values and timestamps changed: what a job pushes
//! every interval) replays those plans series by series without building
//! a single key. The 64-bit seeded hash is the push's identity, as the
//! crate's series keys are (`crate::hashing`). At most
//! [`MAX_SHAPE_SERIES`] series are remembered so (4 bytes each); the
//! whole pushes are forgotten, not the plans, when more come.

use std::collections::HashMap;
use std::ops::Range;

use super::Outcome;
use super::labels::LabelSet;
use crate::hashing::{ByHash, Seeded};

/// The most plans a book keeps.
const MAX_PLANS: usize = 2048;
/// Series after which plans decide whether they pay.
const TRIAL_SERIES: u32 = 64;
/// The most series of whole pushes a book remembers the plans of.
const MAX_SHAPE_SERIES: usize = 1 << 17;

/// What identifies a push's labels: a seeded hash of its encoded labels
/// and series ranges, and their sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PushShape {
    pub hash: u64,
    pub label_bytes: usize,
    pub series: usize,
}

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

/// Plans by key, and the plans of whole pushes by their shape.
#[derive(Debug, Default)]
pub struct PlanBook {
    by_key: HashMap<Box<[u8]>, usize, Seeded>,
    plans: Vec<Plan>,
    steps: Vec<Step>,
    bytes: Vec<u8>,
    /// The plan index of each series of pushes seen whole, by hash.
    shapes: ByHash<(PushShape, Box<[u32]>)>,
    /// The series `shapes` holds.
    shape_series: usize,
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
    /// The push's shape, when it may be remembered whole.
    shape: Option<PushShape>,
    /// The push's plans when its shape is known: replayed in order.
    known: Option<Box<[u32]>>,
    /// The plan index of each series so far, while every series had one.
    recorded: Option<Vec<u32>>,
}

impl<'a> Plans<'a> {
    /// Plans for one push of `shape` (`None`: not to be remembered whole),
    /// starting with those of `book`.
    pub fn new(book: PlanBook, shape: Option<PushShape>) -> Self {
        let known = shape.and_then(|shape| {
            let (known, plans) = book.shapes.get(&shape.hash)?;
            (*known == shape).then(|| plans.clone())
        });
        Self {
            book,
            key: Vec::new(),
            entries: Vec::new(),
            series: 0,
            hits: 0,
            enabled: true,
            recorded: shape
                .filter(|_| known.is_none())
                .map(|shape| Vec::with_capacity(shape.series)),
            shape,
            known,
        }
    }

    /// The plans, for the next push; the plans of every series of the push
    /// are remembered under its shape when each series had one.
    pub fn into_book(mut self) -> PlanBook {
        if let (Some(shape), Some(recorded)) = (self.shape, self.recorded.take())
            && recorded.len() == shape.series
            && shape.series <= MAX_SHAPE_SERIES
        {
            let book = &mut self.book;
            if book.shape_series + shape.series > MAX_SHAPE_SERIES {
                book.shapes.clear();
                book.shape_series = 0;
            }
            book.shape_series += shape.series;
            if let Some((_, replaced)) = book
                .shapes
                .insert(shape.hash, (shape, recorded.into_boxed_slice()))
            {
                book.shape_series -= replaced.len();
            }
        }
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
        self.entries.clear();
        if let Some(known) = &self.known {
            self.entries.extend(entries.map(|(_, _, entry)| entry));
            let index = known[self.series as usize] as usize;
            self.series += 1;
            return Some(self.book.plans[index].clone());
        }
        self.key.clear();
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
            self.recorded = None;
            return None;
        }
        let &index = self.book.by_key.get(self.key.as_slice())?;
        self.hits += 1;
        self.record(index);
        Some(self.book.plans[index].clone())
    }

    /// Notes that the series just looked up follows plan `index`.
    fn record(&mut self, index: usize) {
        if let Some(recorded) = &mut self.recorded {
            // At most MAX_PLANS plans: an index fits.
            recorded.push(index as u32);
        }
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
            // The series before this one followed plans now forgotten.
            self.recorded = None;
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
        let index = book.plans.len();
        book.plans.push(Plan {
            outcome,
            lossy: labels.is_lossy(),
            steps: start..book.steps.len(),
        });
        self.record(index);
    }
}
