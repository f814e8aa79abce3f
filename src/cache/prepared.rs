//! A push as the store sees it, before the lock: one family per name,
//! each already in its stored form (every metric's labels merged with the
//! grouping labels, each series' signature). The store checks these
//! against the other groups, then keeps them as they are.
//!
//! An indexed push is stored straight from its index, one metric at a
//! time: a large push never exists as owned `Metric` values all at once
//! (about 600 bytes each), only as its body, its index and the stored form.

use std::collections::BTreeMap;
use std::time::SystemTime;

use super::stored::{StoredBuilder, StoredFamily, TooLarge};
use crate::exposition::Families;
use crate::push::grouping::GroupingLabels;
use crate::push::path::go_quote;
use crate::push::validate::render;
use crate::telemetry::{PUSH_FAILURE_TIME, PUSH_TIME};

/// One pushed family in its stored form, and whether any of its metrics
/// carries a timestamp.
pub(super) struct Prepared {
    pub(super) stored: StoredFamily,
    pub(super) timestamped: bool,
}

impl Prepared {
    fn new(builder: StoredBuilder, stored_at: SystemTime) -> Self {
        Self {
            timestamped: builder.timestamped(),
            stored: builder.finish(stored_at),
        }
    }

    pub(super) fn name(&self) -> &str {
        self.stored.name()
    }

    pub(super) fn kind(&self) -> i32 {
        self.stored.kind()
    }

    /// The metric at `i` with its stored labels, as error messages start.
    pub(super) fn describe(&self, i: usize) -> String {
        format!(
            "collected metric {} {{ {}}}",
            go_quote(self.name().as_bytes()),
            render::compact_text(&self.stored.metric(i))
        )
    }
}

/// The store's view of a push's families, stored at `stored_at`: one
/// family per name (a later one replaces an earlier one, as in the
/// Pushgateway), sorted by name, the reserved `push_*` families dropped.
/// A family whose encoding passes 4 GiB is refused ([`TooLarge`]).
pub(super) fn prepare(
    families: &Families,
    grouping: &GroupingLabels,
    stored_at: SystemTime,
) -> Result<Vec<Prepared>, TooLarge> {
    match families {
        Families::Owned(families) => latest_by_name(families.iter().map(|f| f.name()))
            .map(|position| {
                let family = &families[position];
                let builder =
                    StoredBuilder::of_family(family, |i| grouping.merge(&family.metric[i].label))?;
                Ok(Prepared::new(builder, stored_at))
            })
            .collect(),
        Families::Indexed(body) => {
            let indexed = body.families();
            latest_by_name(indexed.iter().map(|f| f.name.as_str()))
                .map(|position| {
                    let family = &indexed[position];
                    let mut builder = StoredBuilder::new(
                        &family.name,
                        family.help.as_deref(),
                        family.kind as i32,
                        family.metrics_len(),
                    );
                    for index in body.metric_range(family) {
                        let metric = body.to_metric(family, index);
                        builder.push(&metric, grouping.merge(&metric.label))?;
                    }
                    Ok(Prepared::new(builder, stored_at))
                })
                .collect()
        }
    }
}

/// The position of the last family of each name, in name order, the
/// reserved `push_*` names left out.
fn latest_by_name<'a>(names: impl Iterator<Item = &'a str>) -> impl Iterator<Item = usize> {
    let mut latest: BTreeMap<&str, usize> = BTreeMap::new();
    for (position, name) in names.enumerate() {
        latest.insert(name, position);
    }
    latest
        .into_iter()
        .filter(|(name, _)| *name != PUSH_TIME && *name != PUSH_FAILURE_TIME)
        .map(|(_, position)| position)
}
