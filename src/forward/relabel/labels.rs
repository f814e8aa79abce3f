//! The label set one series is relabeled in: sorted by name, names unique,
//! no empty values. Names and values borrow from the encoded series or the
//! rules; what a rule computes is copied into the set's own arena, so a
//! series costs no allocation once the arena has grown.
//!
//! The set also remembers what the rules did, so that the work after them
//! is only done when it can matter:
//! - which labels are still the ones decoded (their encoded bytes are then
//!   copied as they are instead of being encoded again);
//! - whether a rule wrote a name that may be invalid or reserved (`__…`),
//!   or touched `__name__`: only then must the set be checked again, as
//!   labels decoded from a converted push are valid already;
//! - whether a rule changed or removed a label the series had (only then
//!   can two series of a push have become one).

use super::rule::is_label_name;

/// A label name or value: borrowed from the encoded series or a rule, or a
/// range of the set's arena.
#[derive(Clone, Copy, Debug)]
pub enum Text<'a> {
    Borrowed(&'a [u8]),
    Written(u32, u32),
}

#[derive(Clone, Debug)]
struct Entry<'a> {
    name: Text<'a>,
    value: Text<'a>,
    /// The label's `TimeSeries.labels` entry, while it is unchanged; empty
    /// once a rule rewrote it.
    encoded: &'a [u8],
}

/// A label set being relabeled (see the module docs).
#[derive(Clone, Debug)]
pub struct LabelSet<'a> {
    entries: Vec<Entry<'a>>,
    arena: Vec<u8>,
    /// Whether the set must be checked (reserved names removed, names
    /// validated) before it is written.
    needs_check: bool,
    /// Whether a label the set had was changed or removed.
    lossy: bool,
    /// Whether the labels were decoded in order, each entry kept with its
    /// encoded bytes.
    decoded_sorted: bool,
}

impl Default for LabelSet<'_> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            arena: Vec::new(),
            // Labels of unknown origin are checked.
            needs_check: true,
            lossy: false,
            decoded_sorted: false,
        }
    }
}

impl<'a> LabelSet<'a> {
    /// Empties the set for labels decoded from a converted push (valid
    /// names, no reserved name but `__name__`, a valid metric name).
    pub fn clear_for_valid(&mut self) {
        self.entries.clear();
        self.arena.clear();
        self.needs_check = false;
        self.lossy = false;
        self.decoded_sorted = true;
    }

    /// Notes that the labels did not come in order and were inserted one
    /// by one.
    pub fn mark_decoded_unsorted(&mut self) {
        self.decoded_sorted = false;
    }

    /// Whether the labels were decoded in order (see
    /// [`LabelSet::mark_decoded_unsorted`]).
    pub fn decoded_sorted(&self) -> bool {
        self.decoded_sorted
    }

    fn resolve<'s>(&'s self, text: &Text<'a>) -> &'s [u8] {
        match *text {
            Text::Borrowed(bytes) => bytes,
            Text::Written(start, end) => &self.arena[start as usize..end as usize],
        }
    }

    /// The value of `name`, empty when absent (as Prometheus reads it).
    pub fn get(&self, name: &[u8]) -> &[u8] {
        // A scan, not a binary search: label sets are short, and most
        // names differ in length, which is checked before any byte.
        self.entries
            .iter()
            .find(|e| {
                let n = self.resolve(&e.name);
                n.len() == name.len() && n == name
            })
            .map_or(b"", |e| self.resolve(&e.value))
    }

    /// Appends a decoded label whose name sorts after every name present;
    /// `false` (and nothing appended) when it does not.
    pub fn push_decoded(&mut self, name: &'a [u8], value: &'a [u8], encoded: &'a [u8]) -> bool {
        if let Some(last) = self.entries.last()
            && self.resolve(&last.name) >= name
        {
            return false;
        }
        if !value.is_empty() {
            self.entries.push(Entry {
                name: Text::Borrowed(name),
                value: Text::Borrowed(value),
                encoded,
            });
        }
        true
    }

    /// `bytes` copied into the arena.
    pub fn write(&mut self, bytes: &[u8]) -> Text<'a> {
        self.write_with(|arena| arena.extend_from_slice(bytes))
    }

    /// What `fill` appends to the arena.
    pub fn write_with(&mut self, fill: impl FnOnce(&mut Vec<u8>)) -> Text<'a> {
        let start = self.arena.len();
        fill(&mut self.arena);
        // Label sets are bounded by the push size limit, far below 4 GiB.
        Text::Written(start as u32, self.arena.len() as u32)
    }

    /// Whether `text` is empty.
    fn is_empty_text(&self, text: &Text<'a>) -> bool {
        self.resolve(text).is_empty()
    }

    /// Sets `name` (a valid label name) to `value`; an empty value deletes
    /// the label.
    pub fn set(&mut self, name: Text<'a>, value: Text<'a>) {
        if self.resolve(&name).starts_with(b"__") {
            self.needs_check = true;
        }
        let empty = self.is_empty_text(&value);
        match (self.position(&name), empty) {
            (Ok(i), false) => {
                if self.resolve(&self.entries[i].value) != self.resolve(&value) {
                    self.lossy = true;
                    self.entries[i].value = value;
                    self.entries[i].encoded = b"";
                }
            }
            (Ok(i), true) => {
                self.lossy = true;
                self.entries.remove(i);
            }
            (Err(i), false) => self.entries.insert(
                i,
                Entry {
                    name,
                    value,
                    encoded: b"",
                },
            ),
            (Err(_), true) => {}
        }
    }

    /// Sets a label whose name may not be a valid label name (labelmap's
    /// result): the set is checked before it is written.
    pub fn set_unchecked_name(&mut self, name: Text<'a>, value: Text<'a>) {
        self.needs_check = true;
        self.set(name, value);
    }

    /// Keeps the labels whose name `keep` accepts.
    pub fn retain_names(&mut self, mut keep: impl FnMut(&[u8]) -> bool) {
        let mut removed = false;
        let mut removed_reserved = false;
        let arena = &self.arena;
        self.entries.retain(|e| {
            let name = match e.name {
                Text::Borrowed(bytes) => bytes,
                Text::Written(start, end) => &arena[start as usize..end as usize],
            };
            let kept = keep(name);
            if !kept {
                removed = true;
                removed_reserved |= name.starts_with(b"__");
            }
            kept
        });
        self.lossy |= removed;
        self.needs_check |= removed_reserved;
    }

    /// The labels, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.entries
            .iter()
            .map(|e| (self.resolve(&e.name), self.resolve(&e.value)))
    }

    /// The names, a copy (for rules that rewrite while reading them).
    pub fn entries_snapshot(&self) -> Vec<(Text<'a>, Text<'a>)> {
        self.entries.iter().map(|e| (e.name, e.value)).collect()
    }

    /// Resolves a [`Text`] taken from this set.
    pub fn text(&self, text: &Text<'a>) -> &[u8] {
        self.resolve(text)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether the set must be checked before it is written.
    pub fn needs_check(&self) -> bool {
        self.needs_check
    }

    /// Whether a label the set had was changed or removed.
    pub fn is_lossy(&self) -> bool {
        self.lossy
    }

    /// Appends the set as `TimeSeries.labels` entries, copying unchanged
    /// labels' bytes.
    pub fn encode(&self, out: &mut Vec<u8>) {
        for entry in &self.entries {
            if entry.encoded.is_empty() {
                super::wire::put_label(out, self.resolve(&entry.name), self.resolve(&entry.value));
            } else {
                out.extend_from_slice(entry.encoded);
            }
        }
    }

    /// Calls `f` with each label's unchanged entry (empty once a rule
    /// rewrote it), name and value, in order.
    pub fn for_each_entry(&self, mut f: impl FnMut(&[u8], &[u8], &[u8])) {
        for entry in &self.entries {
            f(
                entry.encoded,
                self.resolve(&entry.name),
                self.resolve(&entry.value),
            );
        }
    }

    /// Whether every name is a valid label name.
    pub fn names_are_valid(&self) -> bool {
        self.iter().all(|(name, _)| is_label_name(name))
    }

    fn position(&self, name: &Text<'a>) -> Result<usize, usize> {
        let name = self.resolve(name);
        self.entries
            .binary_search_by(|e| self.resolve(&e.name).cmp(name))
    }
}

impl<'a> FromIterator<(&'a [u8], &'a [u8])> for LabelSet<'a> {
    fn from_iter<I: IntoIterator<Item = (&'a [u8], &'a [u8])>>(labels: I) -> Self {
        let mut set = LabelSet::default();
        for (name, value) in labels {
            set.set(Text::Borrowed(name), Text::Borrowed(value));
        }
        // What it was given is not known valid, and nothing was lost yet.
        set.needs_check = true;
        set.lossy = false;
        set
    }
}
