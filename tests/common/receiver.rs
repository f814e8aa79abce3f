//! An in-process remote_write receiver for tests: decodes every request
//! (snappy block + protobuf), records it, and answers as the test scripts:
//! statuses, `Retry-After`, delays, dropped connections. Plain HTTP, or
//! HTTPS with a given rustls server configuration.
//!
//! By default it is a 1.0-only receiver, as Prometheus ≤ 2.53 is: every
//! body is decoded as a 1.0 `WriteRequest`, so a 2.0 request reads as an
//! empty one and is answered 204 without Written headers. Told to speak
//! 2.0 ([`Receiver::speak_v2`]), it decodes 2.0 requests with the 2.0
//! message, refuses (400) any that breaks a rule of the reference page
//! (`rw2::violations`), and answers the rest with the
//! `X-Prometheus-Remote-Write-*-Written` headers; it can also refuse 2.0
//! with 415 or under-report what it wrote ([`V2Answer`]).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message;
use pushrelay::config::{GoDuration, RemoteWriteConfig};
use pushrelay::proto::prompb::WriteRequest;
use pushrelay::proto::write_v2;
use tokio::net::TcpListener;

use super::rw2;

/// How the receiver treats a 2.0 request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum V2Answer {
    /// 1.0 only: decoded as a 1.0 `WriteRequest` (empty), 204, no headers.
    Unknown,
    /// Checked, stored and answered with true Written headers.
    Written,
    /// 415 Unsupported Media Type.
    Unsupported,
    /// Stored, but the Written headers report one sample fewer than sent.
    UnderReport,
}

/// How the receiver answers one request.
#[derive(Clone, Debug)]
pub enum Fault {
    /// 204, as Prometheus answers.
    Accept,
    /// This status with this body and optional `Retry-After` value.
    Status(u16, &'static str, Option<&'static str>),
    /// Wait, then answer with the inner fault.
    Delay(Duration, Box<Fault>),
    /// Close the connection without answering.
    Drop,
}

/// Picks a fault for a decoded request when no scripted one is left.
pub type Responder = Box<dyn Fn(&WriteRequest) -> Fault + Send + Sync>;

/// One non-empty request the receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    pub at: Instant,
    pub method: http::Method,
    /// The request target's path (and query, if any).
    pub path: String,
    pub version: http::Version,
    pub headers: HeaderMap,
    /// The body as it came, still compressed.
    pub body: Bytes,
    pub request: WriteRequest,
    /// The 2.0 message, when the request was read as 2.0 (`request` then
    /// holds the same series in 1.0 form).
    pub v2: Option<write_v2::Request>,
    /// Whether it was answered 2xx.
    pub accepted: bool,
}

struct State {
    script: Mutex<VecDeque<Fault>>,
    responder: Mutex<Responder>,
    received: Mutex<Vec<Received>>,
    probes: Mutex<usize>,
    v2: Mutex<V2Answer>,
    /// Rule violations found in 2.0 requests (each was answered 400).
    violations: Mutex<Vec<String>>,
}

pub struct Receiver {
    pub url: String,
    state: Arc<State>,
}

impl Receiver {
    /// A forwarder configuration aimed at this receiver, with short
    /// timeouts and backoffs so retry tests stay fast.
    pub fn forward_config(&self) -> RemoteWriteConfig {
        RemoteWriteConfig {
            url: Some(self.url.clone()),
            timeout: GoDuration(Duration::from_secs(2)),
            retry_deadline: GoDuration(Duration::from_secs(5)),
            min_backoff: GoDuration(Duration::from_millis(50)),
            max_backoff: GoDuration(Duration::from_millis(400)),
            ..RemoteWriteConfig::default()
        }
    }

    /// Starts a receiver on a free loopback port that accepts everything.
    pub async fn start() -> Self {
        Self::serve(None).await
    }

    /// [`Receiver::start`] over TLS with `tls` (its ALPN decides between
    /// HTTP/1.1 and h2); the URL is `https://127.0.0.1:<port>/api/v1/write`.
    #[allow(dead_code)] // not every test file that shares this module uses TLS
    pub async fn start_tls(tls: rustls::ServerConfig) -> Self {
        Self::serve(Some(tokio_rustls::TlsAcceptor::from(Arc::new(tls)))).await
    }

    async fn serve(tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let scheme = if tls.is_some() { "https" } else { "http" };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            script: Mutex::new(VecDeque::new()),
            responder: Mutex::new(Box::new(|_| Fault::Accept)),
            received: Mutex::new(Vec::new()),
            probes: Mutex::new(0),
            v2: Mutex::new(V2Answer::Unknown),
            violations: Mutex::new(Vec::new()),
        });
        let serving = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let state = serving.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| handle(state.clone(), req));
                    // HTTP/1.1 or HTTP/2 (prior knowledge or ALPN), whichever
                    // comes.
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    match tls {
                        None => {
                            let _ = builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                        Some(acceptor) => {
                            // A client that refuses our certificate ends here.
                            let Ok(stream) = acceptor.accept(stream).await else {
                                return;
                            };
                            let _ = builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                    }
                });
            }
        });
        Self {
            url: format!("{scheme}://{addr}/api/v1/write"),
            state,
        }
    }

    /// Answers the next non-empty requests with these faults, in order.
    pub fn script(&self, faults: impl IntoIterator<Item = Fault>) {
        self.state.script.lock().unwrap().extend(faults);
    }

    /// Answers requests (once the script is used up) with `responder`.
    pub fn respond(&self, responder: impl Fn(&WriteRequest) -> Fault + Send + Sync + 'static) {
        *self.state.responder.lock().unwrap() = Box::new(responder);
    }

    /// Every non-empty request so far.
    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// Treats 2.0 requests as `answer` says from now on.
    pub fn speak_v2(&self, answer: V2Answer) {
        *self.state.v2.lock().unwrap() = answer;
    }

    /// Every rule violation found in a 2.0 request so far.
    pub fn violations(&self) -> Vec<String> {
        self.state.violations.lock().unwrap().clone()
    }

    /// Empty requests (readiness probes) so far.
    pub fn probes(&self) -> usize {
        *self.state.probes.lock().unwrap()
    }
}

#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by the test receiver")
    }
}

impl std::error::Error for Dropped {}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Dropped> {
    let at = Instant::now();
    let headers = req.headers().clone();
    let version = req.version();
    let method = req.method().clone();
    let path = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.uri().path().to_string(), |p| p.as_str().to_string());
    let body = req
        .into_body()
        .collect()
        .await
        .map_err(|_| Dropped)?
        .to_bytes();
    let v2_answer = *state.v2.lock().unwrap();
    let Ok(raw) = snap::raw::Decoder::new().decompress_vec(&body) else {
        return Ok(reply(400, "body is not snappy-block compressed", None));
    };
    let mut v2 = None;
    let request = if rw2::is_v2(&headers) && v2_answer != V2Answer::Unknown {
        if v2_answer == V2Answer::Unsupported {
            return Ok(reply(415, "Remote-Write 2.0 is not accepted here", None));
        }
        let Ok(request) = write_v2::Request::decode(raw.as_slice()) else {
            return Ok(reply(400, "body is not a 2.0 Request", None));
        };
        let problems = rw2::violations(&method, &headers, &request);
        if !problems.is_empty() {
            let text = problems.join("; ");
            state.violations.lock().unwrap().extend(problems);
            return Ok(reply(400, &text, None));
        }
        let as_v1 = rw2::as_v1(&request);
        v2 = Some(request);
        as_v1
    } else {
        let Ok(request) = WriteRequest::decode(raw.as_slice()) else {
            return Ok(reply(400, "body is not a WriteRequest", None));
        };
        request
    };
    if request.timeseries.is_empty() && request.metadata.is_empty() {
        *state.probes.lock().unwrap() += 1;
        return Ok(reply(204, "", None));
    }
    let scripted = state.script.lock().unwrap().pop_front();
    let mut fault = scripted.unwrap_or_else(|| (state.responder.lock().unwrap())(&request));
    let index = {
        let mut received = state.received.lock().unwrap();
        received.push(Received {
            at,
            method,
            path,
            version,
            headers,
            body,
            request,
            v2: v2.clone(),
            accepted: false,
        });
        received.len() - 1
    };
    loop {
        match fault {
            Fault::Delay(delay, then) => {
                tokio::time::sleep(delay).await;
                fault = *then;
            }
            Fault::Drop => return Err(Dropped),
            Fault::Accept => {
                state.received.lock().unwrap()[index].accepted = true;
                return Ok(with_written(reply(204, "", None), v2.as_ref(), v2_answer));
            }
            Fault::Status(code, body, retry_after) => {
                let mut response = reply(code, body, retry_after);
                if (200..300).contains(&code) {
                    state.received.lock().unwrap()[index].accepted = true;
                    response = with_written(response, v2.as_ref(), v2_answer);
                }
                return Ok(response);
            }
        }
    }
}

fn reply(code: u16, body: &str, retry_after: Option<&str>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = StatusCode::from_u16(code).unwrap();
    if let Some(value) = retry_after {
        response
            .headers_mut()
            .insert(http::header::RETRY_AFTER, value.parse().unwrap());
    }
    response
}

/// Adds the Written headers a 2.0 receiver answers a stored `request` with.
fn with_written(
    mut response: Response<Full<Bytes>>,
    request: Option<&write_v2::Request>,
    answer: V2Answer,
) -> Response<Full<Bytes>> {
    let Some(request) = request else {
        return response;
    };
    let mut written = rw2::counts(request);
    if answer == V2Answer::UnderReport {
        written.samples = written.samples.saturating_sub(1);
    }
    for (kind, count) in [
        ("samples", written.samples),
        ("histograms", written.histograms),
        ("exemplars", written.exemplars),
    ] {
        response.headers_mut().insert(
            http::HeaderName::try_from(format!("x-prometheus-remote-write-{kind}-written"))
                .unwrap(),
            count.into(),
        );
    }
    response
}
