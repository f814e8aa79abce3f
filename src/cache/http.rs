//! The cache's HTTP routes, below the route prefix, answered as the
//! Pushgateway answers them: the scrape on the telemetry path, the JSON API
//! with its CORS headers (every `/api/v1/` path answers `OPTIONS`), the
//! admin wipe (only when enabled), `/-/quit` (its refusals are
//! texts without a trailing newline), the web page at `/` and `/status`,
//! and the bare prefix redirected to `P/`. Pushes and health are routed
//! before any path reaches this module.

use std::collections::BTreeMap;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};

use super::ttl::TtlPolicy;
use super::{Cache, api, scrape, ui};
use crate::config::Config;
use crate::http_response::{Body, empty, header_str, method_not_allowed, plain, redirect, text};
use crate::proto::client::MetricFamily;
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
    ttl: TtlPolicy,
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
            ttl: TtlPolicy::new(&config.cache),
        }
    }

    /// Answers `path` (decoded, after the route prefix; `query` is the
    /// request's) if it is a cache route; `None` leaves it to the caller.
    pub async fn route(
        &self,
        method: &Method,
        path: &[u8],
        query: Option<&str>,
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
            // The router's trailing-slash redirect to the page at `P/`;
            // it exists for `GET` only, other methods fall through to 404.
            "" if !self.prefix.is_empty() && method == Method::GET => {
                let location = format!("{}/", self.prefix);
                redirect(StatusCode::MOVED_PERMANENTLY, &location, query, method)
            }
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
                        api::metrics(&self.cache.store().snapshot(), &self.ttl)
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
                text(StatusCode::OK, "Requesting termination... Goodbye!")
            }
            Method::PUT | Method::POST => {
                text(StatusCode::FORBIDDEN, "Lifecycle API is not enabled.")
            }
            _ => text(
                StatusCode::METHOD_NOT_ALLOWED,
                "Only POST or PUT requests allowed.",
            ),
        }
    }

    async fn scrape(&self, headers: &HeaderMap) -> Response<Body> {
        let format = scrape::Format::negotiate(header_str(headers, header::ACCEPT));
        let gzip = scrape::accepts_gzip(header_str(headers, header::ACCEPT_ENCODING));
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
            Ok(Err(errors)) => text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("An error has occurred while serving metrics:\n\n{errors}"),
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
            api::go_duration(config.persistence.interval.0),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_flags_print_durations_as_the_pushgateway() {
        assert_eq!(
            status_flags(&Config::default())["persistence.interval"],
            "5m0s"
        );
    }
}
