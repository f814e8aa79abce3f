//! The cache's HTTP routes, below the route prefix (reference §1.2, §7, §8,
//! §11): the scrape on the telemetry path, the JSON API with CORS, the admin
//! wipe, `/-/quit`, and the web page. Pushes and health are routed by
//! `crate::server`, which hands every other path here first.

use std::collections::BTreeMap;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};

use super::{Cache, api, scrape, ui};
use crate::config::Config;
use crate::proto::client::MetricFamily;
use crate::server::{Body, plain};
use crate::telemetry::Telemetry;

/// The cache's web side: everything a cache route needs.
pub struct CacheWeb {
    cache: Cache,
    telemetry: Telemetry,
    prefix: String,
    telemetry_path: String,
    admin_api: bool,
    lifecycle: bool,
    flags: BTreeMap<String, String>,
}

impl CacheWeb {
    /// The routes for `cache` under `config`'s prefix and switches.
    pub fn new(cache: Cache, config: &Config, telemetry: Telemetry) -> Self {
        Self {
            cache,
            telemetry,
            prefix: config.route_prefix(),
            telemetry_path: config.web.telemetry_path.clone(),
            admin_api: config.web.enable_admin_api,
            lifecycle: config.web.enable_lifecycle,
            flags: status_flags(config),
        }
    }

    /// Answers `path` (decoded, after the route prefix) if it is a cache
    /// route; `None` leaves it to the caller.
    pub async fn route(
        &self,
        method: &Method,
        path: &[u8],
        headers: &HeaderMap,
    ) -> Option<Response<Body>> {
        let path = std::str::from_utf8(path).ok()?;
        if path == self.telemetry_path {
            return Some(if method == Method::GET {
                self.scrape(headers).await
            } else {
                method_not_allowed("GET, OPTIONS")
            });
        }
        let response = match path {
            "" if !self.prefix.is_empty() => redirect(&format!("{}/", self.prefix)),
            "/" | "/status" => match *method {
                Method::GET => html(ui::PAGE),
                _ => method_not_allowed("GET, OPTIONS"),
            },
            "/-/quit" => self.quit(method),
            "/api/v1/status" | "/api/v1/metrics" => match *method {
                Method::GET => {
                    let data = if path == "/api/v1/status" {
                        api::status(&self.flags, self.cache.started_at())
                    } else {
                        api::metrics(&self.cache.store().snapshot())
                    };
                    api_response(StatusCode::OK, api::success(data))
                }
                Method::OPTIONS => api_response(StatusCode::OK, Vec::new()),
                _ => method_not_allowed("GET, OPTIONS"),
            },
            "/api/v1/admin/wipe" if self.admin_api => match *method {
                Method::PUT => {
                    self.cache.wipe();
                    empty(StatusCode::ACCEPTED)
                }
                Method::OPTIONS => api_response(StatusCode::OK, Vec::new()),
                _ => method_not_allowed("OPTIONS, PUT"),
            },
            api if api.starts_with("/api/v1/") && method == Method::OPTIONS => {
                api_response(StatusCode::OK, Vec::new())
            }
            _ => return None,
        };
        Some(response)
    }

    fn quit(&self, method: &Method) -> Response<Body> {
        match *method {
            Method::PUT | Method::POST if self.lifecycle => {
                self.cache.request_quit();
                bare(StatusCode::OK, "Requesting termination... Goodbye!")
            }
            Method::PUT | Method::POST => {
                bare(StatusCode::FORBIDDEN, "Lifecycle API is not enabled.")
            }
            _ => bare(
                StatusCode::METHOD_NOT_ALLOWED,
                "Only POST or PUT requests allowed.",
            ),
        }
    }

    async fn scrape(&self, headers: &HeaderMap) -> Response<Body> {
        let header_str = |name| {
            headers
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
        };
        let format = scrape::Format::negotiate(header_str(header::ACCEPT));
        let gzip = scrape::accepts_gzip(header_str(header::ACCEPT_ENCODING));
        let own_text = self.telemetry.render();
        let groups = self.cache.store().snapshot();
        let check_all = self.cache.store().options().disable_consistency_check;
        let cache = self.cache.clone();
        let rendered = tokio::task::spawn_blocking(move || {
            let own: Vec<MetricFamily> = match crate::exposition::text::parse(own_text.as_bytes()) {
                Ok(own) => own,
                Err(error) => {
                    tracing::debug!(%error, "own metrics not parsed; served unmerged");
                    Vec::new()
                }
            };
            let unmerged = own.is_empty().then_some(own_text);
            let merge_cache = Some(cache.store().merge_cache());
            scrape::render_cached(&groups, &own, format, check_all, merge_cache).map(
                |mut rendered| {
                    if let (Some(text), scrape::Format::Text) = (unmerged, format) {
                        rendered.body.extend_from_slice(text.as_bytes());
                    }
                    if gzip {
                        rendered.body = scrape::gzip(&rendered.body);
                    }
                    rendered
                },
            )
        })
        .await;
        match rendered {
            Ok(Ok(rendered)) => {
                let mut response = Response::new(Body::from(Bytes::from(rendered.body)));
                let headers = response.headers_mut();
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(rendered.content_type),
                );
                if gzip {
                    headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                }
                response
            }
            Ok(Err(errors)) => bare(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("An error has occurred while serving metrics:\n\n{errors}"),
            ),
            Err(error) => plain(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()),
        }
    }
}

/// The flags `/api/v1/status` reports, by their Pushgateway names.
fn status_flags(config: &Config) -> BTreeMap<String, String> {
    let persistence_file = config
        .persistence_file()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    [
        ("web.listen-address", config.web.listen_address.clone()),
        ("web.route-prefix", config.web.route_prefix.clone()),
        ("web.telemetry-path", config.web.telemetry_path.clone()),
        (
            "web.enable-admin-api",
            config.web.enable_admin_api.to_string(),
        ),
        (
            "web.enable-lifecycle",
            config.web.enable_lifecycle.to_string(),
        ),
        ("persistence.file", persistence_file),
        (
            "persistence.interval",
            config.persistence.interval.to_string(),
        ),
        (
            "push.disable-consistency-check",
            config.push.disable_consistency_check.to_string(),
        ),
        ("log.level", config.log.level.clone()),
        (
            "remote-write.url",
            config.remote_write.url.clone().unwrap_or_default(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn api_response(status: StatusCode, body: Vec<u8>) -> Response<Body> {
    let has_body = !body.is_empty();
    let mut response = Response::new(Body::from(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if has_body {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    for (name, value) in api::API_HEADERS {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

fn html(page: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::from(page));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

fn empty(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(Body::default());
    *response.status_mut() = status;
    response
}

/// A text answer without the trailing newline `plain` adds.
fn bare(status: StatusCode, text: &str) -> Response<Body> {
    let mut response = Response::new(Body::from(text.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn redirect(location: &str) -> Response<Body> {
    let mut response = empty(StatusCode::MOVED_PERMANENTLY);
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}
