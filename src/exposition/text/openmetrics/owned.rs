//! An OpenMetrics body read into owned `MetricFamily` values: the model
//! the cache stores, and the one that decides (and words any error) for
//! what the index declines (see `indexed`).

use std::borrow::Cow;
use std::collections::HashMap;

use super::{NeedsOwnedModel, OmType, Part, Sample, Sink, created};
use crate::exposition::text::scan::go_float_to_u64;
use crate::proto::client::{
    Bucket, Counter, Exemplar, Gauge, Histogram, LabelPair, Metric, MetricFamily, Quantile,
    Summary, Untyped,
};

/// The owned families being built.
#[derive(Default)]
pub(super) struct Owned {
    pub(super) families: Vec<MetricFamily>,
    /// Metric index by (family, label key) for multi-line metrics.
    metrics: HashMap<(usize, String), usize>,
}

impl<'a> Sink<'a> for Owned {
    fn family(
        &mut self,
        name: String,
        kind: OmType,
        help: Option<String>,
        unit: Option<String>,
    ) -> Result<(), NeedsOwnedModel> {
        self.families.push(MetricFamily {
            name: Some(name),
            help,
            r#type: Some(kind.model() as i32),
            metric: Vec::new(),
            unit,
        });
        Ok(())
    }

    fn sample(&mut self, sample: Sample<'a, '_>) -> Result<(), NeedsOwnedModel> {
        let Sample {
            family,
            kind,
            part,
            labels,
            selector,
            value,
            timestamp_ms,
            exemplar,
        } = sample;
        let metric = self.metric(family, labels, kind);
        metric.timestamp_ms = timestamp_ms.or(metric.timestamp_ms);
        store(metric, kind, part, selector, value);
        keep_exemplar(metric, kind, part, exemplar);
        Ok(())
    }
}

/// Gives a counter's value sample or a histogram bucket (the one just
/// stored) its exemplar; other samples have no place for one.
fn keep_exemplar(metric: &mut Metric, kind: OmType, part: Part, exemplar: Option<Exemplar>) {
    let Some(exemplar) = exemplar else {
        return;
    };
    match (kind, part) {
        (OmType::Counter, Part::Value) => {
            if let Some(counter) = metric.counter.as_mut() {
                counter.exemplar = Some(exemplar);
            }
        }
        (OmType::Histogram | OmType::GaugeHistogram, Part::Bucket) => {
            let bucket = metric.histogram.as_mut().and_then(|h| h.bucket.last_mut());
            if let Some(bucket) = bucket {
                bucket.exemplar = Some(exemplar);
            }
        }
        _ => {}
    }
}

impl Owned {
    /// The metric of `family` with these labels: one per label set for
    /// multi-line types, one per line otherwise (duplicates are kept, as
    /// the text parser keeps them).
    fn metric(
        &mut self,
        family: usize,
        labels: &[(&str, Cow<'_, str>)],
        kind: OmType,
    ) -> &mut Metric {
        let multi_line = kind.multi_line();
        let label: Vec<LabelPair> = labels
            .iter()
            .map(|(name, value)| LabelPair {
                name: Some(name.to_string()),
                value: Some(value.to_string()),
            })
            .collect();
        let metrics = &mut self.families[family].metric;
        if !multi_line {
            metrics.push(Metric {
                label,
                ..Metric::default()
            });
            let last = metrics.len() - 1;
            return &mut metrics[last];
        }
        let mut sorted: Vec<(&str, &str)> = label.iter().map(|l| (l.name(), l.value())).collect();
        sorted.sort_unstable();
        let key: String = sorted
            .iter()
            .flat_map(|(n, v)| [*n, "\u{ff}", *v, "\u{ff}"])
            .collect();
        let index = match self.metrics.get(&(family, key.clone())) {
            Some(&index) => index,
            None => {
                metrics.push(Metric {
                    label,
                    ..Metric::default()
                });
                self.metrics.insert((family, key), metrics.len() - 1);
                metrics.len() - 1
            }
        };
        &mut metrics[index]
    }
}

fn store(metric: &mut Metric, kind: OmType, part: Part, selector: Option<f64>, value: f64) {
    match kind {
        OmType::Counter => {
            let counter = metric.counter.get_or_insert_with(Counter::default);
            match part {
                Part::Created => counter.created_timestamp = Some(created(value)),
                _ => counter.value = Some(value),
            }
        }
        OmType::Gauge | OmType::StateSet | OmType::Info => {
            metric.gauge = Some(Gauge { value: Some(value) });
        }
        OmType::Unknown => metric.untyped = Some(Untyped { value: Some(value) }),
        OmType::Summary => {
            let summary = metric.summary.get_or_insert_with(Summary::default);
            match (part, selector) {
                (Part::Sum, _) => summary.sample_sum = Some(value),
                (Part::Count, _) => summary.sample_count = Some(go_float_to_u64(value)),
                (Part::Created, _) => summary.created_timestamp = Some(created(value)),
                (_, Some(q)) => summary.quantile.push(Quantile {
                    quantile: Some(q),
                    value: Some(value),
                }),
                _ => {}
            }
        }
        OmType::Histogram | OmType::GaugeHistogram => {
            let histogram = metric.histogram.get_or_insert_with(Histogram::default);
            match (part, selector) {
                (Part::Sum, _) => histogram.sample_sum = Some(value),
                (Part::Count, _) => histogram.sample_count = Some(go_float_to_u64(value)),
                (Part::Created, _) => histogram.created_timestamp = Some(created(value)),
                (_, Some(upper_bound)) => histogram.bucket.push(Bucket {
                    upper_bound: Some(upper_bound),
                    cumulative_count: Some(go_float_to_u64(value)),
                    ..Bucket::default()
                }),
                _ => {}
            }
        }
    }
}
