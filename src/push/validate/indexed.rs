//! The check of an indexed text body (`exposition::index`): a fast path
//! that only says whether the push certainly passes every check of
//! [`super::check`], reading the index. Anything it is not sure of (any
//! limit crossed, a name that may be invalid, a hash seen twice in a
//! family) is left to the owned check, which then decides and words the
//! refusal; so what passes, and every message, is the owned check's.
//!
//! An index holds counters, gauges, untyped families, summaries and
//! classic histograms, each with metrics and a unique name, each metric
//! with the value its type needs (a summary's or histogram's quantiles and
//! buckets are not labels): of the consistency checks, that leaves names,
//! suffix collisions, an explicit `quantile` label on a summary and
//! duplicate series. One pass over each metric's merged labels does the
//! limits and those; duplicates are found by a hash of the merged label
//! values, and any two equal hashes in a family go to the owned check.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

use super::{is_metric_name, suffix_collision};
use crate::config::PushConfig;
use crate::exposition::index::IndexedBody;
use crate::hashing::Seeded;
use crate::label_order;
use crate::proto::client::MetricType;
use crate::push::grouping::GroupingLabels;
use crate::push::path::is_legacy_label_name;

/// Whether `body` (labels sorted) certainly passes [`super::check`].
pub(super) fn passes(body: &IndexedBody, grouping: &GroupingLabels, config: &PushConfig) -> bool {
    if !config.honor_timestamps && body.has_timestamps() {
        return false;
    }
    if body.series_count() > config.max_series {
        return false;
    }
    let consistency = !config.disable_consistency_check;
    // When the body's names are all legacy and unreserved (its grammar and
    // parser say so) and the grouping key's are too (checked once here),
    // no merged name is read again per series: that was most of the
    // check's name work.
    let plain_names = body.has_plain_label_names()
        && grouping
            .names()
            .all(|name| is_legacy_label_name(name) && !name.starts_with("__"));
    // The consistency check collects families in name order.
    let mut order: Vec<_> = body.families().iter().collect();
    if consistency {
        order.sort_by(|a, b| a.name.cmp(&b.name));
    }
    let mut registered: HashMap<&str, MetricType, Seeded> =
        HashMap::with_capacity_and_hasher(order.len(), Seeded::default());
    let seed = Seeded::default();
    let mut hashes: Vec<u64> = Vec::new();
    for family in order {
        let name = family.name.as_str();
        if name.len() > config.max_metric_name_length {
            return false;
        }
        let summary = family.kind == MetricType::Summary;
        if consistency {
            if !is_metric_name(name)
                || suffix_collision(name, family.kind, |n| registered.get(n).copied()).is_some()
            {
                return false;
            }
            registered.insert(name, family.kind);
            hashes.clear();
            hashes.reserve(family.metrics_len());
        }
        for index in body.metric_range(family) {
            let mut hasher = seed.build_hasher();
            let mut non_empty = 0;
            // Go starts from "" too: a first label with an empty name
            // counts as repeated.
            let mut previous = "";
            for (label, value) in grouping.merge_text(body.labels(index)) {
                if label.len() > config.max_label_name_length
                    || value.len() > config.max_label_value_length
                {
                    return false;
                }
                non_empty += usize::from(!value.is_empty());
                if consistency {
                    if label_order::same(label.as_bytes(), previous.as_bytes())
                        || (!plain_names
                            && (!is_legacy_label_name(label) || label.starts_with("__")))
                        || (summary && label == "quantile")
                    {
                        return false;
                    }
                    // The values alone: equal series have equal values, so
                    // a duplicate still finds its hash, and two series that
                    // differ only in names (rare within a family) just
                    // leave the decision to the owned check. With the
                    // first-byte test of repeated names above, this took
                    // 116 instructions per series off the check (callgrind).
                    hasher.write(value.as_bytes());
                    hasher.write_u8(0xff);
                    previous = label;
                }
            }
            if non_empty > config.max_labels_per_series {
                return false;
            }
            if consistency {
                hashes.push(hasher.finish());
            }
        }
        // Series of one family with equal hashes: maybe the same series.
        hashes.sort_unstable();
        if hashes.windows(2).any(|pair| pair[0] == pair[1]) {
            return false;
        }
    }
    true
}
