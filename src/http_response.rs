//! The HTTP answers that the server and the cache's web routes share, each
//! written as Go's `net/http` (behind the Pushgateway's router) writes it:
//! error texts, redirects, `405` with `Allow`, the automatic `OPTIONS`
//! answer; plus the request-header lookup both need. A leaf: it imports
//! nothing from the crate, so neither side has to import the other.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode, header};
use http_body_util::Full;

/// Response bodies are built whole.
pub type Body = Full<Bytes>;

/// The value of request header `name`, if present and visible ASCII.
pub fn header_str(headers: &HeaderMap, name: HeaderName) -> Option<&str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// A `text/plain` answer with the message and a newline, as Go's
/// `http.Error` writes it (and the Pushgateway its errors).
pub fn plain(status: StatusCode, message: &str) -> Response<Body> {
    let mut response = text(status, format!("{message}\n"));
    response.headers_mut().insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// A `text/plain` answer with exactly `body`: what a Go handler writes
/// itself (the health endpoints' `OK`, `/-/quit`'s sentences).
pub fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = empty(status);
    *response.body_mut() = Body::from(body.into());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// `status` with no body and no `Content-Type`.
pub fn empty(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(Body::default());
    *response.status_mut() = status;
    response
}

/// The router's answer to a path no route matches.
pub fn not_found() -> Response<Body> {
    plain(StatusCode::NOT_FOUND, "404 page not found")
}

/// The router's answer to a known path asked with a method it does not
/// serve; `allow` lists the ones it does.
pub fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

/// `200` with an `Allow` header and no body: the router's automatic answer
/// to `OPTIONS`.
pub fn options(allow: &'static str) -> Response<Body> {
    let mut response = empty(StatusCode::OK);
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

/// A redirect to `location` as Go's router sends it through
/// `http.Redirect`: the request's `?query` is kept; `GET` gets a small HTML
/// body naming the target (`text/html` is also set for `HEAD`); other
/// methods get an empty body.
pub fn redirect(
    status: StatusCode,
    location: &str,
    query: Option<&str>,
    method: &Method,
) -> Response<Body> {
    let location = match query {
        Some(query) => format!("{location}?{query}"),
        None => location.to_string(),
    };
    let Ok(value) = HeaderValue::from_str(&location) else {
        // Callers pass percent-encoded paths, so this cannot happen; refuse
        // rather than redirect somewhere else.
        return plain(StatusCode::BAD_REQUEST, "400 Bad Request");
    };
    let mut response = empty(status);
    if *method == Method::GET {
        let reason = status.canonical_reason().unwrap_or_default();
        *response.body_mut() = Body::from(format!(
            "<a href=\"{}\">{reason}</a>.\n\n",
            html_escape(&location)
        ));
    }
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, value);
    if *method == Method::GET || *method == Method::HEAD {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
    }
    response
}

/// The characters Go's `html.EscapeString` replaces, as `http.Redirect`
/// uses it.
fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\'' => out.push_str("&#39;"),
            '"' => out.push_str("&#34;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    async fn body_of(response: Response<Body>) -> String {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn a_get_redirect_has_go_s_html_body_and_keeps_the_query() {
        let response = redirect(
            StatusCode::MOVED_PERMANENTLY,
            "/a/\"b\"",
            Some("x=1&y=2"),
            &Method::GET,
        );
        assert_eq!(response.status(), StatusCode::MOVED_PERMANENTLY);
        assert_eq!(response.headers()[header::LOCATION], "/a/\"b\"?x=1&y=2");
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        assert_eq!(
            body_of(response).await,
            "<a href=\"/a/&#34;b&#34;?x=1&amp;y=2\">Moved Permanently</a>.\n\n"
        );
    }

    #[tokio::test]
    async fn other_methods_are_redirected_without_a_body() {
        let response = redirect(StatusCode::TEMPORARY_REDIRECT, "/j", None, &Method::PUT);
        assert_eq!(response.headers()[header::LOCATION], "/j");
        assert!(response.headers().get(header::CONTENT_TYPE).is_none());
        assert_eq!(body_of(response).await, "");
        let head = redirect(StatusCode::MOVED_PERMANENTLY, "/j", None, &Method::HEAD);
        assert_eq!(
            head.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
    }

    #[tokio::test]
    async fn errors_end_with_a_newline_and_are_not_sniffed() {
        let response = method_not_allowed("GET, OPTIONS");
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()[header::ALLOW], "GET, OPTIONS");
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
        assert_eq!(body_of(response).await, "Method Not Allowed\n");
        assert_eq!(body_of(text(StatusCode::OK, "OK")).await, "OK");
    }
}
