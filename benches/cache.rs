//! Cache (Pushgateway mode) costs with 100,000 series stored: 100 groups
//! (`job="bench"`, `instance="g000"`…`"g099"`) of the 1,000-series baseline
//! body tests/fixtures/bench_1000.txt.
//!
//! - `apply_post_10`: `Store::apply` of the 10-series body
//!   (tests/fixtures/bench_10.txt) as a POST to a group of its own, the
//!   push-latency scenario of the baseline (the Pushgateway: ~200 ms);
//! - `apply_put_1000`: `Store::apply` of a 1,000-series PUT replacing one of
//!   the 100 groups, the steady state of the rotating-groups scenario;
//! - `scrape_text`, `scrape_protobuf`: `scrape::render_cached` of the whole
//!   store (no own families) as `GET /metrics` renders it, the body before
//!   gzip, store unchanged since the previous scrape (steady state: cached
//!   family texts and merge orders are reused);
//! - `scrape_text_after_put`: the same after one 1,000-series PUT replaced a
//!   group (not timed): that group's texts are rendered again and the merge
//!   of its ten families (100,000 series) is redone.
//!
//! Parsing the bodies is not included (benches/parse.rs). CI runs this once
//! per benchmark with `cargo bench --bench cache -- --test`.

use std::hint::black_box;
use std::sync::{Arc, OnceLock};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use pushrelay::cache::scrape::{self, Format};
use pushrelay::cache::store::{Group, Store, StoreOptions};
use pushrelay::cache::{self};
use pushrelay::config::PushConfig;
use pushrelay::exposition::BodyFormat;
use pushrelay::push::{GroupingKey, Push, PushOp};

const BODY_10: &[u8] = include_bytes!("../tests/fixtures/bench_10.txt");
const BODY_1000: &[u8] = include_bytes!("../tests/fixtures/bench_1000.txt");
const GROUPS: usize = 100;
const STORED_SERIES: u64 = 100_000;

fn push(op: PushOp, body: &[u8], instance: &str) -> Push {
    let key = GroupingKey::new([
        ("job".to_string(), "bench".to_string()),
        ("instance".to_string(), instance.to_string()),
    ]);
    Push::from_body(op, key, BodyFormat::Text, body, &PushConfig::default())
        .expect("the fixture is a valid push")
}

/// The loaded store, built on first use: criterion runs a group's setup
/// even when a filter (`--exact NAME`, as nextest runs each benchmark)
/// skips all of its benchmarks.
fn loaded_store() -> &'static Store {
    static STORE: OnceLock<Store> = OnceLock::new();
    STORE.get_or_init(load_store)
}

fn load_store() -> Store {
    let store = Store::new(StoreOptions {
        disable_consistency_check: false,
        own_families: cache::own_families(),
    });
    for g in 0..GROUPS {
        store
            .apply(&push(PushOp::Replace, BODY_1000, &format!("g{g:03}")))
            .expect("the store accepts the fixture");
    }
    assert_eq!(stored_series(&store.snapshot()), STORED_SERIES);
    store
}

fn stored_series(groups: &[Arc<Group>]) -> u64 {
    groups
        .iter()
        .flat_map(|g| g.families.values())
        .map(|f| f.len() as u64)
        .sum()
}

fn apply(c: &mut Criterion) {
    let post_10 = push(PushOp::Merge, BODY_10, "small");
    let put_1000 = push(PushOp::Replace, BODY_1000, "g042");

    let mut group = c.benchmark_group("cache_100k_stored");
    group.throughput(Throughput::Elements(10));
    group.bench_function("apply_post_10", |b| {
        let store = loaded_store();
        b.iter(|| store.apply(black_box(&post_10)).expect("accepted"));
        // The scrape benchmarks render exactly the 100 loaded groups.
        store.delete(None, &post_10.key);
    });
    group.throughput(Throughput::Elements(1000));
    group.bench_function("apply_put_1000", |b| {
        let store = loaded_store();
        b.iter(|| store.apply(black_box(&put_1000)).expect("accepted"))
    });
    group.finish();
}

fn scrape_render(c: &mut Criterion) {
    let mut group = c.benchmark_group("cache_100k_stored");
    group.throughput(Throughput::Elements(STORED_SERIES));
    group.sample_size(10);
    for (name, format) in [
        ("scrape_text", Format::Text),
        ("scrape_protobuf", Format::Protobuf),
    ] {
        group.bench_function(name, |b| {
            let store = loaded_store();
            let groups = store.snapshot();
            let cache = Some(store.merge_cache());
            b.iter(|| {
                scrape::render_cached(black_box(&groups), &[], format, false, cache)
                    .expect("renders")
            })
        });
    }
    let put_1000 = push(PushOp::Replace, BODY_1000, "g042");
    group.bench_function("scrape_text_after_put", |b| {
        let store = loaded_store();
        let cache = Some(store.merge_cache());
        b.iter_batched(
            || {
                store.apply(&put_1000).expect("accepted");
                store.snapshot()
            },
            |groups| {
                scrape::render_cached(&groups, &[], Format::Text, false, cache).expect("renders")
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, apply, scrape_render);
criterion_main!(benches);
