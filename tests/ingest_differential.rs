//! Ingest side by side with the real Pushgateway 1.5.1: the same push
//! requests go to the Pushgateway and to pushrelay forwarding to a real
//! Prometheus 2.42 (remote_write receiver); all three are started once.
//!
//! For every step of every case the two answers must have the same status
//! (and the same `Location` and body for redirects, the same `Allow` for
//! 405 and `OPTIONS`), and for an error pushrelay's message must start with the
//! Pushgateway's message up to its first `{` (the Pushgateway appends Go
//! debug dumps there). After a case, the series the Pushgateway exposes for
//! the case's job (its text scrape, without `push_time_seconds`,
//! `push_failure_time_seconds` and empty label values such as its
//! `instance=""`) must equal what Prometheus holds for that job (an instant
//! query, polled until equal or a deadline passes). Each case has its own
//! job and its own metric names, so neither server carries state from one
//! case into another and the Pushgateway's cross-group consistency check
//! never links two cases.
//!
//! Deliberate divergences (docs/ingest-divergences.md) are cases too: they
//! assert each side's own answer (and skip the series comparison where the
//! outcomes differ on purpose). The cases that damage the Pushgateway run
//! last: after its first invalid base64 job it hangs every later request
//! on that route and method; a push whose series equal another group's
//! leaves a failure-only group that makes it refuse every later push (and
//! a non-UTF-8 grouping value one that makes every later scrape fail). All mismatches are reported
//! together, and at least 30 cases must have compared non-empty series.
//!
//! A second test pins the memory a gzip bomb costs: pushrelay (cache and
//! forward mode, default limits) refuses 1 GiB of zeros sent as ~1 MiB of
//! gzip with a 413, and its peak RSS (`VmHWM`) stays under 100 MiB.

mod common;

use common::model::{counter, gauge};

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use bytes::Bytes;
use common::{Prometheus, Pushgateway, Pushrelay, Reply, Series, fixture, try_request};
use http::{Method, header};
use pushrelay::exposition::protobuf::encode_delimited;
use pushrelay::proto::client::{
    Bucket, Histogram, LabelPair, Metric, MetricFamily, MetricType, Quantile, Summary, Untyped,
};

/// `Content-Type` of the text exposition format as clients send it.
const TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
/// `Content-Type` of a delimited protobuf push.
const PROTOBUF: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";
/// How long the Pushgateway is given to answer a request it is known to
/// leave hanging.
const HANG_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one ordinary request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// How long Prometheus may take to show what pushrelay acknowledged.
const SERIES_DEADLINE: Duration = Duration::from_secs(10);

/// What the answers to one step must show.
#[derive(Clone, Debug)]
enum Expect {
    /// The same status, the same `Location`/`Allow` (and body for a
    /// redirect), and for an error pushrelay's message starts with the
    /// Pushgateway's up to its first `{`.
    Same,
    /// A documented divergence: the Pushgateway answers `gateway` with a
    /// message starting with `gateway_says` (`None`: it leaves the request
    /// hanging), pushrelay answers `relay` with a message starting with
    /// `relay_says`.
    Diverges {
        gateway: Option<u16>,
        gateway_says: &'static str,
        relay: u16,
        relay_says: &'static str,
    },
}

#[derive(Clone, Debug)]
struct Step {
    method: Method,
    path: String,
    /// pushrelay gets this path instead of `path` (its `/pushgateway` alias).
    relay_path: Option<String>,
    headers: Vec<(&'static str, String)>,
    body: Bytes,
    expect: Expect,
}

impl Step {
    fn new(method: Method, path: &str, body: impl Into<Bytes>) -> Self {
        Self {
            method,
            path: path.to_string(),
            relay_path: None,
            headers: Vec::new(),
            body: body.into(),
            expect: Expect::Same,
        }
    }

    fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_string()));
        self
    }

    fn diverges(
        mut self,
        (gateway, gateway_says): (Option<u16>, &'static str),
        (relay, relay_says): (u16, &'static str),
    ) -> Self {
        self.expect = Expect::Diverges {
            gateway,
            gateway_says,
            relay,
            relay_says,
        };
        self
    }

    fn relay_path(mut self, path: &str) -> Self {
        self.relay_path = Some(path.to_string());
        self
    }
}

fn put(path: &str, text: &str) -> Step {
    Step::new(Method::PUT, path, text.to_string()).header("content-type", TEXT)
}

fn post(path: &str, text: &str) -> Step {
    Step::new(Method::POST, path, text.to_string()).header("content-type", TEXT)
}

fn send(method: Method, path: &str) -> Step {
    Step::new(method, path, Bytes::new())
}

fn raw(method: Method, path: &str, content_type: &str, body: Vec<u8>) -> Step {
    Step::new(method, path, body).header("content-type", content_type)
}

struct Case {
    name: &'static str,
    job: String,
    steps: Vec<Step>,
    /// Compare the job's series afterwards (off where a divergence makes
    /// them differ on purpose).
    compare_series: bool,
}

/// Builds the cases; each gets a unique job `ing<NN>_<tag>` that its
/// builder uses in paths (`{job}`) and metric names.
struct Cases(Vec<Case>);

impl Cases {
    fn add(&mut self, name: &'static str, tag: &str, steps: impl FnOnce(&str) -> Vec<Step>) {
        let mut job = format!("ing{:02}_{tag}", self.0.len());
        // A length that is not a multiple of 3 makes base64 padding appear.
        while job.len() % 3 == 0 {
            job.push('_');
        }
        let steps = steps(&job);
        self.0.push(Case {
            name,
            job,
            steps,
            compare_series: true,
        });
    }

    /// Like [`Cases::add`], without the series comparison.
    fn add_unseries(
        &mut self,
        name: &'static str,
        tag: &str,
        steps: impl FnOnce(&str) -> Vec<Step>,
    ) {
        self.add(name, tag, steps);
        if let Some(case) = self.0.last_mut() {
            case.compare_series = false;
        }
    }
}

/// A text body with every kind of family, named after the job.
fn full_text_body(job: &str) -> String {
    format!(
        "# HELP {job}_requests_total Requests.\n\
         # TYPE {job}_requests_total counter\n\
         {job}_requests_total{{path=\"/a\"}} 3\n\
         {job}_requests_total{{path=\"/b\"}} 1e6\n\
         # TYPE {job}_temp gauge\n\
         {job}_temp -0.5\n\
         {job}_temp{{room=\"x y\",esc=\"a\\\"b\\\\c\\nd\"}} NaN\n\
         # TYPE {job}_lat histogram\n\
         {job}_lat_bucket{{le=\"0.1\"}} 1\n\
         {job}_lat_bucket{{le=\"1.0\"}} 2\n\
         {job}_lat_bucket{{le=\"1000000\"}} 3\n\
         {job}_lat_bucket{{le=\"+Inf\"}} 4\n\
         {job}_lat_sum 12.5\n\
         {job}_lat_count 4\n\
         # TYPE {job}_size summary\n\
         {job}_size{{quantile=\"0.5\"}} 2\n\
         {job}_size{{quantile=\"0.99\"}} +Inf\n\
         {job}_size_sum 600\n\
         {job}_size_count 3\n\
         {job}_untyped 0.00001\n"
    )
}

fn family(name: &str, kind: MetricType, metric: Vec<Metric>) -> MetricFamily {
    MetricFamily {
        name: Some(name.to_string()),
        help: Some("Help.".to_string()),
        r#type: Some(kind as i32),
        metric,
        unit: None,
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).expect("gzip into a Vec");
    encoder.finish().expect("gzip into a Vec")
}

fn cases() -> Vec<Case> {
    let mut c = Cases(Vec::new());
    let one = |job: &str| format!("{job}_m 1\n");

    // ---- URL grammar ----------------------------------------------------
    c.add("plain job", "plain", |j| {
        vec![put(&format!("/metrics/job/{j}"), &one(j))]
    });
    c.add("job and instance", "inst", |j| {
        vec![put(&format!("/metrics/job/{j}/instance/i1"), &one(j))]
    });
    c.add(
        "the /pushgateway alias is the canonical path",
        "alias",
        |j| {
            vec![
                put(&format!("/metrics/job/{j}/a/1"), &one(j))
                    .relay_path(&format!("/pushgateway/metrics/job/{j}/a/1")),
            ]
        },
    );
    c.add("base64 job, padded", "b64pad", |j| {
        let encoded = URL_SAFE.encode(j);
        assert!(encoded.ends_with('='), "{encoded} needs padding");
        vec![put(&format!("/metrics/job@base64/{encoded}"), &one(j))]
    });
    c.add("base64 job, unpadded", "b64raw", |j| {
        let encoded = URL_SAFE_NO_PAD.encode(j);
        assert_ne!(encoded, URL_SAFE.encode(j), "{encoded} needs padding");
        vec![put(&format!("/metrics/job@base64/{encoded}"), &one(j))]
    });
    c.add(
        "base64 label value with slashes, extra padding",
        "b64val",
        |j| {
            vec![put(
                &format!("/metrics/job/{j}/p@base64/L3gveQ==="),
                &one(j),
            )]
        },
    );
    c.add("base64 `=` is the empty value", "b64empty", |j| {
        vec![put(
            &format!("/metrics/job/{j}/first@base64/=/second/x"),
            &one(j),
        )]
    });
    c.add(
        "base64 label value with a standard-alphabet `+`",
        "b64plus",
        |j| vec![put(&format!("/metrics/job/{j}/e@base64/L3gve+"), &one(j))],
    );
    c.add("base64 label value of invalid length", "b64len", |j| {
        vec![put(&format!("/metrics/job/{j}/e@base64/L"), &one(j))]
    });
    c.add("empty base64 job", "b64nojob", |j| {
        vec![put("/metrics/job@base64/=", &one(j))]
    });
    c.add("%2F in the job splits it", "slashjob", |j| {
        vec![put(&format!("/metrics/job/{j}%2F6/p/q"), &one(j))]
    });
    c.add("%2F inside a value splits it", "slashval", |j| {
        vec![put(&format!("/metrics/job/{j}/p/a%2Fb"), &one(j))]
    });
    c.add("%2F at a value's start is a 301", "slash301", |j| {
        vec![put(&format!("/metrics/job/{j}/p/%2Fx%2Fy"), &one(j))]
    });
    c.add("`+` stays literal, %20 is a space, %3D is =", "plus", |j| {
        vec![put(
            &format!("/metrics/job/{j}/p/a+b/q/c%20d/r/%3D"),
            &one(j),
        )]
    });
    c.add("repeated label name: last wins", "repeat", |j| {
        vec![put(&format!("/metrics/job/{j}/a/1/a/2"), &one(j))]
    });
    c.add("a job pair in the labels is ignored", "jobpair", |j| {
        vec![put(&format!("/metrics/job/{j}/job/other"), &one(j))]
    });
    c.add("odd number of components", "odd", |j| {
        vec![put(&format!("/metrics/job/{j}/instance"), &one(j))]
    });
    c.add("trailing slash after a pair", "oddslash", |j| {
        vec![put(&format!("/metrics/job/{j}/x/y/"), &one(j))]
    });
    c.add("label name starting with __", "dunder", |j| {
        vec![put(&format!("/metrics/job/{j}/__x/y"), &one(j))]
    });
    c.add("improper label names", "badname", |j| {
        vec![
            put(&format!("/metrics/job/{j}/a-b/y"), &one(j)),
            put(&format!("/metrics/job/{j}/1a/y"), &one(j)),
            put(&format!("/metrics/job/{j}/@base64/2"), &one(j)),
            put(&format!("/metrics/job/{j}/a@base64@base64/eA"), &one(j)),
        ]
    });
    c.add("label error before missing job", "errorder", |j| {
        vec![put("/metrics/job@base64/=/a", &one(j))]
    });
    c.add("trailing slash after the job", "trail", |j| {
        vec![put(&format!("/metrics/job/{j}/"), &one(j))]
    });
    c.add(
        "empty job: 307 to /metrics/job for writes",
        "emptyjob",
        |j| {
            vec![
                put("/metrics/job/", &one(j)),
                post("/metrics/job/?a=b", &one(j)),
                send(Method::DELETE, "/metrics/job/"),
                put("/pushgateway/metrics/job/", &one(j))
                    .relay_path("/pushgateway/metrics/job/")
                    .diverges((Some(404), "404 page not found"), (307, "")),
            ]
        },
    );
    c.add(
        "empty job: 404 for GET, OPTIONS and base64",
        "emptyjob404",
        |j| {
            vec![
                send(Method::GET, "/metrics/job/"),
                send(Method::OPTIONS, "/metrics/job/"),
                put("/metrics/job@base64/", &one(j)),
                send(Method::DELETE, "/metrics/job@base64/"),
                put("/metrics/job", &one(j)),
                put("/metrics/job@base64", &one(j)),
            ]
        },
    );
    c.add("// is a 301 keeping the query", "dslash", |j| {
        vec![
            put(&format!("/metrics/job/{j}/x//y?a=b%20c"), &one(j)),
            send(Method::GET, &format!("/metrics/job/{j}//x/y")),
            send(
                Method::GET,
                &format!("/metrics/job/{j}&x//%3Cy%3E?a=1&b='c'"),
            ),
            put(&format!("//metrics/job/{j}"), &one(j)),
        ]
    });
    c.add(". and .. segments are 301s", "dots", |j| {
        vec![
            put(&format!("/metrics/job/{j}/./a/b"), &one(j)),
            send(Method::DELETE, &format!("/metrics/job/{j}/a/..")),
            put(&format!("/metrics/job/%2E%2E/{j}"), &one(j)),
            send(Method::GET, "//-/healthy"),
        ]
    });
    c.add(
        "wrong method: 405 with Allow; OPTIONS: 200",
        "method",
        |j| {
            vec![
                send(Method::GET, &format!("/metrics/job/{j}")),
                send(Method::PATCH, &format!("/metrics/job/{j}/a/b")),
                send(
                    Method::OPTIONS,
                    &format!("/metrics/job@base64/{}", URL_SAFE.encode(j)),
                ),
                send(Method::POST, "/metrics"),
            ]
        },
    );
    c.add("unknown paths are 404", "unknown", |j| {
        vec![
            put(&format!("/metrics/jobs/{j}"), &one(j)),
            put(&format!("/metric/job/{j}"), &one(j)),
            send(Method::GET, "/nothing/here"),
        ]
    });
    c.add("malformed percent-escape", "pct", |j| {
        vec![put(&format!("/metrics/job/{j}/a/%zz"), &one(j))]
    });

    // ---- encodings -------------------------------------------------------
    c.add("gzip body", "gzip", |j| {
        vec![
            raw(
                Method::PUT,
                &format!("/metrics/job/{j}"),
                TEXT,
                gzip(full_text_body(j).as_bytes()),
            )
            .header("content-encoding", "gzip"),
        ]
    });
    c.add("captured Python gzip body", "pygzip", |j| {
        vec![
            raw(
                Method::PUT,
                &format!("/metrics/job/{j}"),
                TEXT,
                fixture("python_push_gzip.bin"),
            )
            .header("content-encoding", "gzip"),
        ]
    });
    c.add("identity encoding", "identity", |j| {
        vec![put(&format!("/metrics/job/{j}"), &one(j)).header("content-encoding", "identity")]
    });
    c.add("gzip header on a body that is not gzip", "notgzip", |j| {
        vec![put(&format!("/metrics/job/{j}"), &one(j)).header("content-encoding", "gzip")]
    });
    c.add_unseries("upper-case GZIP (decoded as 1.6+ does)", "gzipupper", |j| {
        vec![
            raw(
                Method::PUT,
                &format!("/metrics/job/{j}"),
                TEXT,
                gzip(one(j).as_bytes()),
            )
            .header("content-encoding", "GZIP")
            .diverges((Some(400), "text format parsing error"), (200, "")),
        ]
    });
    c.add_unseries("captured Python snappy framed body (1.6+)", "snappy", |j| {
        vec![
            raw(
                Method::PUT,
                &format!("/metrics/job/{j}"),
                TEXT,
                fixture("python_push_snappy_framed.bin"),
            )
            .header("content-encoding", "snappy")
            .diverges((Some(400), "text format parsing error"), (200, "")),
        ]
    });
    c.add_unseries("unknown encoding is a 415", "brotli", |j| {
        vec![
            put(&format!("/metrics/job/{j}"), &one(j))
                .header("content-encoding", "br")
                .diverges((Some(200), ""), (415, "unsupported Content-Encoding")),
        ]
    });

    // ---- bodies ------------------------------------------------------------
    c.add("text body with every family type", "text", |j| {
        vec![put(
            &format!("/metrics/job/{j}/instance/i"),
            &full_text_body(j),
        )]
    });
    c.add("text without Content-Type", "notype", |j| {
        vec![Step::new(Method::PUT, &format!("/metrics/job/{j}"), one(j))]
    });
    c.add("text error names the line", "texterr", |j| {
        vec![put(
            &format!("/metrics/job/{j}"),
            &format!("# TYPE {j}_a gauge\n{j}_a 1\n{j}_a{{x=\"1\"}} x\n"),
        )]
    });
    c.add("text without a final newline", "nonl", |j| {
        vec![put(&format!("/metrics/job/{j}"), &format!("{j}_a 1"))]
    });
    c.add(
        "text errors: TYPE twice, bad type, bad label",
        "texterrs",
        |j| {
            vec![
                put(
                    &format!("/metrics/job/{j}"),
                    &format!("# TYPE {j}_a gauge\n# TYPE {j}_a gauge\n"),
                ),
                put(
                    &format!("/metrics/job/{j}"),
                    &format!("# TYPE {j}_a nonsense\n"),
                ),
                put(
                    &format!("/metrics/job/{j}"),
                    &format!("{j}_a{{1x=\"1\"}} 1\n"),
                ),
                put(&format!("/metrics/job/{j}"), &format!("{j}_a{{x=\"1\" 1\n")),
            ]
        },
    );
    c.add("captured Go protobuf body", "goproto", |j| {
        vec![raw(
            Method::PUT,
            &format!("/metrics/job/{j}/instance/go1"),
            PROTOBUF,
            fixture("go_push.bin"),
        )]
    });
    c.add("protobuf message cut short", "prototrunc", |j| {
        let mut body = fixture("go_push.bin");
        body.truncate(40);
        vec![raw(
            Method::PUT,
            &format!("/metrics/job/{j}"),
            PROTOBUF,
            body,
        )]
    });
    c.add("protobuf length prefix over 5 bytes", "protovarint", |j| {
        vec![raw(
            Method::PUT,
            &format!("/metrics/job/{j}"),
            PROTOBUF,
            b"\xff\xff\xff\xff\xff\x01".to_vec(),
        )]
    });
    c.add("protobuf garbage inside a message", "protogarbage", |j| {
        vec![
            raw(
                Method::PUT,
                &format!("/metrics/job/{j}"),
                PROTOBUF,
                b"\x05\xff\xff\xff\xff\xff".to_vec(),
            )
            .diverges(
                (Some(400), "unexpected EOF"),
                (400, "invalid protobuf MetricFamily #1: "),
            ),
        ]
    });
    c.add("protobuf content type with encoding=text", "prototext", |j| {
        vec![raw(
            Method::PUT,
            &format!("/metrics/job/{j}"),
            "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=text",
            one(j).into_bytes(),
        )]
    });
    c.add("histogram without a +Inf bucket", "noinf", |j| {
        vec![put(
            &format!("/metrics/job/{j}"),
            &format!(
                "# TYPE {j}_h histogram\n{j}_h_bucket{{le=\"1\"}} 1\n{j}_h_bucket{{le=\"2.50\"}} 1\n{j}_h_sum 1\n{j}_h_count 2\n{j}_v -Inf\n"
            ),
        )]
    });
    c.add("UTF-8 and empty label values", "utf8ok", |j| {
        vec![put(
            &format!("/metrics/job/{j}/city/M%C3%BCnchen"),
            &format!("{j}_a{{name=\"\u{e9}t\u{e9}\",empty=\"\"}} 1\n"),
        )]
    });
    c.add("more text errors", "textmore", |j| {
        let path = format!("/metrics/job/{j}");
        vec![
            put(&path, &format!("{j}_a{{x=\"\\q\"}} 1\n")),
            put(&path, &format!("{j}_a\n")),
            put(&path, &format!("{j}_a 1.2.3\n")),
            put(&path, &format!("{j}_a{{x=1}} 1\n")),
            put(
                &path,
                &format!("# TYPE {j}_s summary\n{j}_s{{x=\"1\"}} 1\n"),
            ),
            put(
                &path,
                &format!("# TYPE {j}_h histogram\n{j}_h_bucket{{x=\"1\"}} 1\n"),
            ),
            put(&path, &format!("{j}_a{{x=\"1\",x=\"2\"}} 1\n")),
        ]
    });
    c.add("text oddities that parse", "textok", |j| {
        vec![put(
            &format!("/metrics/job/{j}"),
            &format!(
                "# HELP {j}_a Multi\\nline \\\\ help.\n{j}_a{{}} 1\n{j}_b{{x=\"1\",}} 2\n{j}:c  3\n{j}_d{{x=\"tab\\there\"}} -0\n"
            ),
        )]
    });
    c.add("protobuf families with problems", "protobad", |j| {
        let path = format!("/metrics/job/{j}");
        let bad_label = family(
            &format!("{j}_l"),
            MetricType::Gauge,
            vec![gauge(&[("a-b", "1")], 1.0)],
        );
        let wrong_kind = family(&format!("{j}_k"), MetricType::Gauge, vec![counter(1.0)]);
        let stamped = family(
            &format!("{j}_t"),
            MetricType::Gauge,
            vec![Metric {
                timestamp_ms: Some(1000),
                ..gauge(&[], 1.0)
            }],
        );
        vec![
            raw(Method::PUT, &path, PROTOBUF, encode_delimited(&[bad_label])),
            raw(
                Method::PUT,
                &path,
                PROTOBUF,
                encode_delimited(&[wrong_kind]),
            ),
            raw(Method::PUT, &path, PROTOBUF, encode_delimited(&[stamped])),
        ]
    });
    c.add("protobuf histogram and summary details", "protohist", |j| {
        let histogram = Metric {
            histogram: Some(Histogram {
                sample_count: Some(5),
                sample_sum: Some(-1.5),
                bucket: vec![
                    Bucket {
                        cumulative_count: Some(2),
                        upper_bound: Some(0.25),
                        ..Default::default()
                    },
                    Bucket {
                        cumulative_count: Some(1),
                        upper_bound: Some(1e6),
                        ..Default::default()
                    },
                    Bucket {
                        cumulative_count: Some(7),
                        upper_bound: Some(f64::INFINITY),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }),
            ..Default::default()
        };
        let summary = Metric {
            summary: Some(Summary {
                sample_count: Some(0),
                sample_sum: Some(f64::NAN),
                quantile: vec![Quantile {
                    quantile: Some(0.999),
                    value: Some(f64::NEG_INFINITY),
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        let untyped = Metric {
            untyped: Some(Untyped { value: Some(-0.0) }),
            ..Default::default()
        };
        let body = encode_delimited(&[
            family(&format!("{j}_h"), MetricType::Histogram, vec![histogram]),
            family(&format!("{j}_s"), MetricType::Summary, vec![summary]),
            family(&format!("{j}_u"), MetricType::Untyped, vec![untyped]),
            family(&format!("{j}_empty"), MetricType::Gauge, vec![]),
            family(
                &format!("{j}_g"),
                MetricType::Gauge,
                vec![gauge(&[("v", "first")], 1.0)],
            ),
            family(
                &format!("{j}_g"),
                MetricType::Gauge,
                vec![gauge(&[("v", "second")], 2.0)],
            ),
        ]);
        vec![raw(
            Method::PUT,
            &format!("/metrics/job/{j}"),
            PROTOBUF,
            body,
        )]
    });
    c.add(
        "reserved labels on histograms and summaries",
        "reserved",
        |j| {
            let path = format!("/metrics/job/{j}");
            let histogram = Metric {
                label: vec![LabelPair {
                    name: Some("le".to_string()),
                    value: Some("1".to_string()),
                }],
                histogram: Some(Histogram {
                    sample_count: Some(1),
                    sample_sum: Some(1.0),
                    ..Default::default()
                }),
                ..Default::default()
            };
            vec![
                raw(
                    Method::PUT,
                    &path,
                    PROTOBUF,
                    encode_delimited(&[family(
                        &format!("{j}_h"),
                        MetricType::Histogram,
                        vec![histogram],
                    )]),
                ),
                put(
                    &path,
                    &format!("# TYPE {j}_s summary\n{j}_s_sum{{quantile=\"0.5\"}} 1\n"),
                ),
                put(&path, &format!("# TYPE {j}_c counter\n{j}_c -1\n")),
            ]
        },
    );
    // Every inconsistency is counted (the listing stops at 50: compared up
    // to the first `{`, the answers agree).
    c.add("59 duplicate series in one push", "manydup", |j| {
        vec![put(
            &format!("/metrics/job/{j}"),
            &format!("{j}_d 1\n").repeat(60),
        )]
    });
    c.add("a zero-length protobuf message", "protozero", |j| {
        let mut body = b"\x00".to_vec();
        body.extend(encode_delimited(&[family(
            &format!("{j}_g"),
            MetricType::Gauge,
            vec![gauge(&[], 1.0)],
        )]));
        vec![raw(
            Method::PUT,
            &format!("/metrics/job/{j}"),
            PROTOBUF,
            body,
        )]
    });
    c.add_unseries("protobuf metric name that is not valid", "protoname", |j| {
        let body = encode_delimited(&[family(&format!("1{j}"), MetricType::Gauge, vec![gauge(&[], 1.0)])]);
        vec![
            raw(Method::PUT, &format!("/metrics/job/{j}"), PROTOBUF, body).diverges(
                (Some(200), ""),
                (
                    400,
                    "pushed metrics are invalid or inconsistent with existing metrics: invalid metric name",
                ),
            ),
        ]
    });
    c.add(
        "protobuf grouping labels override metric labels",
        "protooverride",
        |j| {
            let body = encode_delimited(&[family(
                &format!("{j}_g"),
                MetricType::Gauge,
                vec![gauge(
                    &[("job", "body"), ("instance", "body"), ("x", "1")],
                    2.5,
                )],
            )]);
            vec![raw(
                Method::PUT,
                &format!("/metrics/job/{j}/instance/url"),
                PROTOBUF,
                body,
            )]
        },
    );
    // Text details where a parser could easily differ from Go's: each body
    // is its own case, so that every accepted one has its series compared.
    let text_variants: [(&'static str, &'static str, &'static str); 13] = [
        (
            "values Go's ParseFloat reads",
            "floats",
            "@_a{x=\"2\"} inf\n@_a{x=\"3\"} -Infinity\n@_a{x=\"4\"} nan\n@_a{x=\"5\"} 1E3\n@_a{x=\"6\"} .5\n@_a{x=\"7\"} 5.\n@_a{x=\"8\"} +3\n@_a{x=\"9\"} 1.7976931348623157e+308\n",
        ),
        ("a hexadecimal value", "hexfloat", "@_a 0x1p-2\n"),
        ("underscores in a value", "underscore", "@_a 1_000\n"),
        ("tabs as separators", "tabs", "@_a\t1\n@_b{x=\"1\"}\t 2\n"),
        ("leading whitespace", "leading", "  @_a 1\n"),
        ("CRLF line endings", "crlf", "@_a 1\r\n"),
        (
            "a NUL byte in a label value",
            "nul",
            "@_a{x=\"a\u{0}b\"} 1\n",
        ),
        (
            "HELP twice",
            "help2",
            "# HELP @_a One.\n# HELP @_a Two.\n@_a 1\n",
        ),
        (
            "#TYPE without a space is a comment",
            "hashtype",
            "#TYPE @_a counter\n@_a 1\n",
        ),
        (
            "bucket with a non-float le",
            "badle",
            "# TYPE @_h histogram\n@_h_bucket{le=\"abc\"} 1\n",
        ),
        (
            "summary with a non-float quantile",
            "badq",
            "# TYPE @_s summary\n@_s{quantile=\"x\"} 1\n",
        ),
        ("metric name with a dash", "dash", "@-a 1\n"),
        ("a value with a newline in the URL", "urlnl", "@_a 1\n"),
    ];
    for (name, tag, body) in text_variants {
        c.add(name, tag, |j| {
            let path = if tag == "urlnl" {
                format!("/metrics/job/{j}/a/x%0Ay")
            } else {
                format!("/metrics/job/{j}")
            };
            vec![put(&path, &body.replace('@', j))]
        });
    }
    c.add(
        "DELETE by base64 as the web page sends it",
        "uidelete",
        |j| {
            vec![
                put(
                    &format!(
                        "/metrics/job/{j}/instance@base64/{}",
                        URL_SAFE.encode("a/b")
                    ),
                    &one(j),
                ),
                send(
                    Method::DELETE,
                    &format!(
                        "/metrics/job@base64/{}=/instance@base64/{}=",
                        URL_SAFE_NO_PAD.encode(j),
                        URL_SAFE_NO_PAD.encode("a/b")
                    ),
                ),
            ]
        },
    );
    c.add("non-contiguous family", "noncontig", |j| {
        vec![put(
            &format!("/metrics/job/{j}"),
            &format!("{j}_a 1\n{j}_b 1\n{j}_a{{x=\"1\"}} 2\n"),
        )]
    });
    c.add_unseries(
        "type conflict with another group (forward mode has no store)",
        "crossgroup",
        |j| {
            vec![
                put(
                    &format!("/metrics/job/{j}/instance/a"),
                    &format!("# TYPE {j}_x counter\n{j}_x 1\n"),
                ),
                put(
                    &format!("/metrics/job/{j}/instance/b"),
                    &format!("# TYPE {j}_x gauge\n{j}_x 2\n"),
                )
                .diverges(
                    (
                        Some(400),
                        "pushed metrics are invalid or inconsistent with existing metrics: ",
                    ),
                    (200, ""),
                ),
            ]
        },
    );
    c.add_unseries(
        "POST collides with the group's stored summary",
        "postcollide",
        |j| {
            let path = format!("/metrics/job/{j}");
            vec![
                put(
                    &path,
                    &format!("# TYPE {j}_x summary\n{j}_x_sum 1\n{j}_x_count 2\n"),
                ),
                post(&path, &format!("{j}_x_count 3\n")).diverges(
                    (
                        Some(400),
                        "pushed metrics are invalid or inconsistent with existing metrics: ",
                    ),
                    (200, ""),
                ),
            ]
        },
    );
    c.add("text body sent as protobuf", "texasproto", |j| {
        vec![raw(
            Method::PUT,
            &format!("/metrics/job/{j}"),
            PROTOBUF,
            one(j).into_bytes(),
        )]
    });
    c.add("captured Python body, then pushadd", "python", |j| {
        let path = format!("/metrics/job/{j}/instance/py1");
        vec![
            raw(Method::PUT, &path, TEXT, fixture("python_push.txt")),
            raw(Method::POST, &path, TEXT, fixture("python_pushadd.txt")),
        ]
    });
    c.add("duplicate series", "dup", |j| {
        vec![put(
            &format!("/metrics/job/{j}"),
            &format!("{j}_a{{x=\"1\"}} 1\n{j}_a{{x=\"1\"}} 2\n"),
        )]
    });
    c.add("timestamps in the body", "stamp", |j| {
        vec![put(
            &format!("/metrics/job/{j}"),
            &format!("{j}_a 1 1000\n"),
        )]
    });
    c.add("__-prefixed label name in the body", "bodydunder", |j| {
        vec![put(
            &format!("/metrics/job/{j}"),
            &format!("{j}_a{{__x=\"1\"}} 1\n"),
        )]
    });
    c.add("summary x collides with untyped x_count", "suffix", |j| {
        vec![put(
            &format!("/metrics/job/{j}"),
            &format!("# TYPE {j}_x summary\n{j}_x_sum 1\n{j}_x_count 2\n# TYPE {j}_x_count untyped\n{j}_x_count 3\n"),
        )]
    });
    c.add(
        "grouping labels override body job and instance",
        "override",
        |j| {
            vec![put(
                &format!("/metrics/job/{j}/instance/url"),
                &format!("{j}_a{{job=\"body\",instance=\"body\",x=\"1\"}} 1\n"),
            )]
        },
    );
    c.add(
        "body instance kept when the URL has none",
        "bodyinst",
        |j| {
            vec![put(
                &format!("/metrics/job/{j}/a/url"),
                &format!("{j}_a{{instance=\"body\",a=\"body\"}} 1\n"),
            )]
        },
    );
    c.add("empty body PUT", "empty", |j| {
        vec![
            put(&format!("/metrics/job/{j}"), ""),
            post(&format!("/metrics/job/{j}"), ""),
        ]
    });
    c.add("comment-only body", "comments", |j| {
        vec![put(
            &format!("/metrics/job/{j}"),
            &format!("# HELP {j}_a Help.\n# TYPE {j}_a counter\n# free text\n"),
        )]
    });
    c.add("PUT then DELETE", "delete", |j| {
        let path = format!("/metrics/job/{j}/instance/i");
        vec![put(&path, &one(j)), send(Method::DELETE, &path)]
    });
    c.add("DELETE of a group that does not exist", "deletenone", |j| {
        vec![send(
            Method::DELETE,
            &format!("/metrics/job/{j}/never/pushed"),
        )]
    });
    c.add("PUT replaces the group", "replace", |j| {
        let path = format!("/metrics/job/{j}");
        vec![
            put(
                &path,
                &format!("{j}_a 1\n{j}_b{{x=\"1\"}} 2\n{j}_b{{x=\"2\"}} 3\n"),
            ),
            put(&path, &format!("{j}_b{{x=\"2\"}} 4\n")),
        ]
    });
    c.add("POST replaces same-named families only", "merge", |j| {
        let path = format!("/metrics/job/{j}");
        vec![
            put(
                &path,
                &format!("{j}_a 1\n{j}_b{{x=\"1\"}} 2\n{j}_b{{x=\"2\"}} 3\n"),
            ),
            post(&path, &format!("{j}_b{{x=\"3\"}} 4\n{j}_c 5\n")),
        ]
    });
    c.add("PUT, DELETE, PUT again", "reput", |j| {
        let path = format!("/metrics/job/{j}");
        vec![
            put(&path, &format!("{j}_a 1\n")),
            send(Method::DELETE, &path),
            put(&path, &format!("{j}_a 2\n{j}_b 3\n")),
        ]
    });
    c.add("DELETE with the labels in another order", "delorder", |j| {
        vec![
            put(&format!("/metrics/job/{j}/a/1/b/2"), &one(j)),
            send(Method::DELETE, &format!("/metrics/job/{j}/b/2/a/1")),
        ]
    });
    c.add(
        "DELETE ends one group, not its neighbours",
        "neighbours",
        |j| {
            vec![
                put(
                    &format!("/metrics/job/{j}"),
                    &format!("{j}_a{{x=\"1\"}} 1\n"),
                ),
                put(&format!("/metrics/job/{j}/a/1"), &format!("{j}_b 2\n")),
                put(&format!("/metrics/job/{j}/a/2"), &format!("{j}_b 3\n")),
                send(Method::DELETE, &format!("/metrics/job/{j}/a/1")),
            ]
        },
    );
    c.add("an empty PUT empties the group", "emptyput", |j| {
        let path = format!("/metrics/job/{j}");
        vec![put(&path, &format!("{j}_a 1\n{j}_b 2\n")), put(&path, "")]
    });
    c.add(
        "a POST of a TYPE line alone changes nothing",
        "typeonly",
        |j| {
            let path = format!("/metrics/job/{j}");
            vec![
                put(&path, &format!("# TYPE {j}_a counter\n{j}_a 1\n")),
                post(&path, &format!("# TYPE {j}_a counter\n")),
            ]
        },
    );
    c.add("invalid UTF-8 in a body label value", "bodyutf8", |j| {
        let mut body = format!("{j}_a{{x=\"").into_bytes();
        body.extend_from_slice(b"\xff\"} 1\n");
        vec![raw(Method::PUT, &format!("/metrics/job/{j}"), TEXT, body)]
    });
    c.add("OpenMetrics body", "openmetrics", |j| {
        vec![raw(
            Method::PUT,
            &format!("/metrics/job/{j}"),
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            format!("# TYPE {j}_c counter\n{j}_c_total 1\n# EOF\n").into_bytes(),
        )]
    });

    c.add_unseries("OpenMetrics body with an exemplar", "omexemplar", |j| {
        vec![
            raw(
                Method::PUT,
                &format!("/metrics/job/{j}"),
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                format!("# TYPE {j}_c counter\n{j}_c_total 1 # {{trace_id=\"abc\"}} 1.0\n# EOF\n")
                    .into_bytes(),
            )
            .diverges(
                (Some(400), "text format parsing error in line 2"),
                (200, ""),
            ),
        ]
    });
    // ---- last: cases that damage the Pushgateway -------------------------
    // Pushgateway 1.5.1 answers the first invalid base64 job on a route and
    // method, then never unlocks that handler: every later request to it
    // hangs (docs/ingest-divergences.md).
    c.add(
        "invalid base64 job: the first one is a 400",
        "b64joblen",
        |j| vec![put("/metrics/job@base64/L", &one(j))],
    );
    c.add_unseries("after it, the Pushgateway hangs that route", "b64hang", |j| {
        vec![
            put("/metrics/job@base64/L3gve+", &one(j)).diverges(
                (None, ""),
                (
                    400,
                    r#"invalid base64 encoding in job name "/x/": illegal base64 data at input byte 5"#,
                ),
            ),
            put(&format!("/metrics/job@base64/{}", URL_SAFE.encode(j)), &one(j))
                .diverges((None, ""), (200, "")),
        ]
    });
    // The Pushgateway refuses a group whose series equal another group's,
    // and the failure-only group it then keeps poisons its store: every
    // later push to any group is refused.
    c.add_unseries("the same series from two groups", "twogroups", |j| {
        let body = one(j);
        vec![
            put(&format!("/metrics/job/{j}"), &body),
            put(&format!("/metrics/job/{j}/instance@base64/="), &body).diverges(
                (
                    Some(400),
                    "pushed metrics are invalid or inconsistent with existing metrics: ",
                ),
                (200, ""),
            ),
            put(&format!("/metrics/job/{j}_other"), &body).diverges(
                (
                    Some(400),
                    "pushed metrics are invalid or inconsistent with existing metrics: ",
                ),
                (200, ""),
            ),
        ]
    });
    // Very last (the store is poisoned already): a non-UTF-8 grouping value
    // is refused by both; the Pushgateway would also keep a failure-only
    // group with that value, which makes every later scrape fail.
    c.add_unseries("non-UTF-8 grouping value", "utf8", |j| {
        vec![put(&format!("/metrics/job/{j}/e/%C3"), &one(j)).diverges(
            (
                Some(400),
                "pushed metrics are invalid or inconsistent with existing metrics: ",
            ),
            (400, r#"value of label e is not valid UTF-8: "\xc3""#),
        )]
    });
    c.0
}

/// The three peers, started once; fields drop (and are killed) in order.
struct Peers {
    relay: Pushrelay,
    gateway: Pushgateway,
    prometheus: Prometheus,
}

async fn send_to(
    base: &str,
    method: &Method,
    path: &str,
    step: &Step,
    timeout: Duration,
) -> Result<Reply, String> {
    let headers: Vec<(&str, &str)> = step.headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let url = format!("{base}{path}");
    tokio::time::timeout(
        timeout,
        try_request(method.clone(), &url, &headers, step.body.clone()),
    )
    .await
    .map_err(|_| format!("no answer within {timeout:?}"))?
}

/// The comparable part of a Pushgateway error: up to its first `{`.
fn message_prefix(body: &str) -> &str {
    body.split('{').next().unwrap_or("").trim_end()
}

fn header_of(reply: &Reply, name: header::HeaderName) -> Option<&str> {
    reply.headers.get(name).and_then(|v| v.to_str().ok())
}

/// Checks one step's answers; returns what differs.
fn check_step(step: &Step, gateway: &Result<Reply, String>, relay: &Reply) -> Vec<String> {
    let mut problems = Vec::new();
    match &step.expect {
        Expect::Diverges {
            gateway: want_gateway,
            gateway_says,
            relay: want_relay,
            relay_says,
        } => {
            match (want_gateway, gateway) {
                (None, Err(_)) => {}
                (Some(code), Ok(reply))
                    if reply.status.as_u16() == *code && reply.text().starts_with(gateway_says) => {
                }
                (_, got) => problems.push(format!(
                    "gateway: want {want_gateway:?}, got {:?}",
                    got.as_ref().map(|r| (r.status, r.text()))
                )),
            }
            if relay.status.as_u16() != *want_relay || !relay.text().starts_with(relay_says) {
                problems.push(format!(
                    "relay: want {want_relay} {relay_says:?}, got {} {:?}",
                    relay.status,
                    relay.text()
                ));
            }
        }
        Expect::Same => {
            let gateway = match gateway {
                Ok(reply) => reply,
                Err(e) => {
                    problems.push(format!("gateway: {e}"));
                    return problems;
                }
            };
            if gateway.status != relay.status {
                problems.push(format!(
                    "status: gateway {} {:?}, relay {} {:?}",
                    gateway.status,
                    gateway.text(),
                    relay.status,
                    relay.text()
                ));
                return problems;
            }
            for name in [header::LOCATION, header::ALLOW] {
                let (g, r) = (
                    header_of(gateway, name.clone()),
                    header_of(relay, name.clone()),
                );
                if g != r {
                    problems.push(format!("{name}: gateway {g:?}, relay {r:?}"));
                }
            }
            let (g, r) = (gateway.text(), relay.text());
            if gateway.status.is_redirection() && g != r {
                problems.push(format!("redirect body: gateway {g:?}, relay {r:?}"));
            }
            let want = if gateway.status.is_client_error() || gateway.status.is_server_error() {
                message_prefix(&g)
            } else {
                ""
            };
            if !r.starts_with(want) {
                problems.push(format!(
                    "message: want prefix {want:?}\n  gateway {g:?}\n  relay   {r:?}"
                ));
            }
        }
    }
    problems
}

/// Series of `job` without the push stamps, sorted.
fn comparable(mut series: Vec<Series>) -> Vec<Series> {
    series.retain(|s| !matches!(s.name(), "push_time_seconds" | "push_failure_time_seconds"));
    series.sort_by(|a, b| a.labels.cmp(&b.labels));
    series
}

fn same_series(a: &[Series], b: &[Series]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.labels == y.labels && (x.value == y.value || (x.value.is_nan() && y.value.is_nan()))
        })
}

fn show(series: &[Series]) -> String {
    let mut out = String::new();
    for s in series {
        let labels: BTreeMap<_, _> = s.labels.iter().collect();
        let _ = write!(out, "\n    {labels:?} {}", s.value);
    }
    if out.is_empty() {
        out.push_str(" (none)");
    }
    out
}

/// The job's series in the Pushgateway's scrape and in Prometheus must be
/// the same; Prometheus is polled until they are or the deadline passes.
/// `Ok` holds how many series were compared.
async fn check_series(peers: &Peers, job: &str) -> Result<usize, String> {
    let want = comparable(peers.gateway.series_of_job(job).await);
    let query = format!("{{job=\"{job}\"}}");
    let deadline = Instant::now() + SERIES_DEADLINE;
    loop {
        let got = comparable(peers.prometheus.query(&query).await);
        if same_series(&want, &got) {
            return Ok(want.len());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "series differ\n  Pushgateway:{}\n  Prometheus:{}",
                show(&want),
                show(&got)
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_matches_the_pushgateway() {
    let cases = cases();
    assert!(cases.len() >= 40, "only {} cases", cases.len());
    let prometheus = Prometheus::start().await;
    let write_url = prometheus.write_url();
    let (gateway, relay) = tokio::join!(Pushgateway::start(), Pushrelay::forwarding_to(&write_url));
    let peers = Peers {
        relay,
        gateway,
        prometheus,
    };
    let (gateway_url, relay_url) = (peers.gateway.url(), peers.relay.url());
    let mut failures = Vec::new();
    let mut cases_with_series = 0;
    for case in &cases {
        let mut problems = Vec::new();
        for (i, step) in case.steps.iter().enumerate() {
            let timeout = match step.expect {
                Expect::Diverges { gateway: None, .. } => HANG_TIMEOUT,
                _ => REQUEST_TIMEOUT,
            };
            let relay_path = step.relay_path.as_deref().unwrap_or(&step.path);
            let (gateway, relay) = tokio::join!(
                send_to(&gateway_url, &step.method, &step.path, step, timeout),
                send_to(&relay_url, &step.method, relay_path, step, REQUEST_TIMEOUT)
            );
            let relay = match relay {
                Ok(reply) => reply,
                Err(e) => {
                    problems.push(format!(
                        "step {i} ({} {}): relay: {e}",
                        step.method, step.path
                    ));
                    continue;
                }
            };
            for problem in check_step(step, &gateway, &relay) {
                problems.push(format!(
                    "step {i} ({} {}): {problem}",
                    step.method, step.path
                ));
            }
        }
        if case.compare_series {
            match check_series(&peers, &case.job).await {
                Ok(0) => {}
                Ok(_) => cases_with_series += 1,
                Err(problem) => problems.push(problem),
            }
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{} [{}]:\n  {}",
                case.name,
                case.job,
                problems.join("\n  ")
            ));
        }
    }
    // The comparison must not be vacuous: most accepted pushes show series.
    assert!(
        cases_with_series >= 30,
        "only {cases_with_series} cases compared any series"
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

/// A gzip body of `chunks` MiB of zeros, in about `chunks` KiB: one deflate
/// chunk ending in a full flush, repeated (the compressor starts over after
/// a full flush, so the repetition is a valid stream), then the end of the
/// stream. No trailer: a refused bomb is never read that far.
fn gzip_zero_bomb(chunks: usize) -> Vec<u8> {
    let mut compressor = flate2::Compress::new(flate2::Compression::best(), false);
    let mut chunk = Vec::with_capacity(16 << 10);
    compressor
        .compress_vec(&vec![0u8; 1 << 20], &mut chunk, flate2::FlushCompress::Full)
        .expect("deflating zeros");
    let mut body = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    for _ in 0..chunks {
        body.extend_from_slice(&chunk);
    }
    let mut last = Vec::with_capacity(64);
    compressor
        .compress_vec(&[], &mut last, flate2::FlushCompress::Finish)
        .expect("finishing the stream");
    body.extend_from_slice(&last);
    body
}

/// The peak resident set size of a process, from `/proc/<pid>/status`.
fn peak_rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("reading status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmHWM line");
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gzip_bomb_is_refused_in_bounded_memory() {
    const MAX_PEAK_RSS: u64 = 100 << 20;
    let bomb = Bytes::from(gzip_zero_bomb(1 << 10));
    assert!(bomb.len() < 2 << 20, "the bomb is {} bytes", bomb.len());
    // The default limits: 64 MiB as sent, 256 MiB decoded.
    let cache_args = ["--cache".to_string()];
    let (cache, forward) = tokio::join!(
        Pushrelay::start(&cache_args),
        // The bomb is refused before anything is forwarded.
        Pushrelay::forwarding_to("http://127.0.0.1:9/api/v1/write")
    );
    for (mode, relay) in [("cache", &cache), ("forward", &forward)] {
        let reply = common::request(
            Method::PUT,
            &format!("{}/metrics/job/bomb", relay.url()),
            &[("content-type", TEXT), ("content-encoding", "gzip")],
            bomb.clone(),
        )
        .await;
        assert_eq!(
            reply.status,
            http::StatusCode::PAYLOAD_TOO_LARGE,
            "{mode}: {}",
            reply.text()
        );
        assert!(
            reply.text().contains("push.max_decompressed_bytes"),
            "{mode}: {}",
            reply.text()
        );
        let peak = peak_rss_bytes(relay.peer.pid());
        assert!(
            peak < MAX_PEAK_RSS,
            "{mode}: peak RSS {} MiB while refusing a 1 GiB gzip bomb",
            peak >> 20
        );
    }
}
