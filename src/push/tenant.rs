//! The tenant policy: which tenant (`X-Scope-OrgID` for Mimir, Cortex,
//! Loki-style backends) a push is written as. Ingest owns it: the handler
//! resolves each push's tenant with it before reading the body, and the
//! forwarder holds the same policy (one `Arc`) to set the tenant header of
//! its requests.
//!
//! Three sources, configured under `remote_write.tenant`, tried in this
//! order (the most specific first):
//! 1. `passthrough = true`: the pusher's own tenant header is used when it
//!    sends one (otherwise the header is ignored, so a pusher cannot pick
//!    its tenant unless the operator allows it);
//! 2. `from_label = "NAME"`: the value of that grouping label
//!    (`/metrics/job/j/NAME/team-a`);
//! 3. `id = "..."`: a static tenant for every push.
//!
//! With any source configured a push must resolve to a tenant unless
//! `required = false`; one that does not is refused with 400 before anything
//! is stored. Tenant IDs are checked against the rules Mimir and Cortex
//! enforce (at most 150 bytes of `A-Z a-z 0-9 ! - _ . * ' ( )`, not `.` or
//! `..`), so a bad one is the pusher's 400, not a backend error later.

use http::{HeaderMap, HeaderName, HeaderValue};

use super::{GroupingKey, Rejection};
use crate::config::TenantConfig;

/// Longest tenant ID Mimir and Cortex accept.
const MAX_TENANT_LEN: usize = 150;

/// The resolved tenancy rules; build once from [`TenantConfig`].
#[derive(Clone, Debug)]
pub struct TenantPolicy {
    header: HeaderName,
    /// The header as configured (`HeaderName` lowercases), for messages.
    header_spelling: String,
    static_id: Option<String>,
    from_label: Option<String>,
    passthrough: bool,
    required: bool,
}

impl TenantPolicy {
    /// Checks the configuration: the header name is valid and a static ID
    /// follows the tenant ID rules. Errors name the offending key.
    pub fn new(config: &TenantConfig) -> Result<Self, String> {
        let header = HeaderName::try_from(config.header.as_str()).map_err(|_| {
            format!(
                "remote_write.tenant.header: {:?} is not a valid header name",
                config.header
            )
        })?;
        if let Some(id) = &config.id {
            check_tenant_id(id).map_err(|e| format!("remote_write.tenant.id: {e}"))?;
        }
        if let Some(label) = &config.from_label {
            let valid = !label.is_empty()
                && label.bytes().enumerate().all(|(i, b)| {
                    b == b'_' || b.is_ascii_alphabetic() || (i > 0 && b.is_ascii_digit())
                });
            if !valid {
                return Err(format!(
                    "remote_write.tenant.from_label: {label:?} is not a valid label name"
                ));
            }
        }
        Ok(Self {
            header,
            header_spelling: config.header.clone(),
            static_id: config.id.clone(),
            from_label: config.from_label.clone(),
            passthrough: config.passthrough,
            required: config.required,
        })
    }

    /// Whether any tenant source is configured; when not, [`resolve`]
    /// always gives `None` and no tenant header is sent.
    ///
    /// [`resolve`]: TenantPolicy::resolve
    pub fn is_enabled(&self) -> bool {
        self.static_id.is_some() || self.from_label.is_some() || self.passthrough
    }

    /// The static tenant (`remote_write.tenant.id`), if configured.
    pub fn static_tenant(&self) -> Option<&str> {
        self.static_id.as_deref()
    }

    /// The header the tenant is sent in (to the backend) and read from (the
    /// pusher, with passthrough).
    pub fn header(&self) -> &HeaderName {
        &self.header
    }

    /// The tenant of a push with grouping key `key` and request headers
    /// `request_headers`, or `None` when tenancy is off (or not required and
    /// nothing resolved). A required tenant that is missing, or a tenant ID
    /// that breaks the rules, is a 400.
    pub fn resolve(
        &self,
        key: &GroupingKey,
        request_headers: &HeaderMap,
    ) -> Result<Option<String>, Rejection> {
        if self.passthrough {
            let mut values = request_headers.get_all(&self.header).iter();
            if let Some(value) = values.next() {
                if values.next().is_some() {
                    return Err(Rejection::bad_request(format!(
                        "more than one {} header: send exactly one tenant",
                        self.header_spelling
                    )));
                }
                let id = value.to_str().map_err(|_| {
                    Rejection::bad_request(format!(
                        "the {} header is not ASCII",
                        self.header_spelling
                    ))
                })?;
                return checked(id, || format!("the {} header", self.header_spelling)).map(Some);
            }
        }
        if let Some(label) = &self.from_label
            && let Some(id) = key.get(label).filter(|v| !v.is_empty())
        {
            return checked(id, || format!("the grouping label {label}")).map(Some);
        }
        if let Some(id) = &self.static_id {
            return Ok(Some(id.clone()));
        }
        if self.is_enabled() && self.required {
            return Err(Rejection::bad_request(self.missing_message()));
        }
        Ok(None)
    }

    /// Sets the tenant header of a backend request to `tenant` (a value
    /// from [`resolve`](TenantPolicy::resolve)), or removes it for `None`.
    pub fn apply(&self, tenant: Option<&str>, headers: &mut HeaderMap) -> Result<(), String> {
        match tenant {
            None => {
                headers.remove(&self.header);
            }
            Some(id) => {
                let value = HeaderValue::from_str(id)
                    .map_err(|_| format!("tenant {id:?} is not a valid header value"))?;
                headers.insert(self.header.clone(), value);
            }
        }
        Ok(())
    }

    fn missing_message(&self) -> String {
        let mut ways = Vec::new();
        if let Some(label) = &self.from_label {
            ways.push(format!(
                "a grouping label {label} (/metrics/job/<job>/{label}/<tenant>)"
            ));
        }
        if self.passthrough {
            ways.push(format!("a {} header", self.header_spelling));
        }
        format!("this push has no tenant: send {}", ways.join(" or "))
    }
}

fn checked(id: &str, source: impl Fn() -> String) -> Result<String, Rejection> {
    check_tenant_id(id)
        .map(|()| id.to_string())
        .map_err(|e| Rejection::bad_request(format!("invalid tenant from {}: {e}", source())))
}

/// The tenant ID rules of Mimir and Cortex.
fn check_tenant_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("the tenant ID is empty".into());
    }
    if id.len() > MAX_TENANT_LEN {
        return Err(format!(
            "the tenant ID is {} bytes long, longer than {MAX_TENANT_LEN}",
            id.len()
        ));
    }
    if id == "." || id == ".." {
        return Err(format!("{id:?} is not a valid tenant ID"));
    }
    if let Some(bad) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "!-_.*'()".contains(*c)))
    {
        return Err(format!(
            "the tenant ID {id:?} contains {bad:?}; allowed are A-Z a-z 0-9 ! - _ . * ' ( )"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    fn key(pairs: &[(&str, &str)]) -> GroupingKey {
        GroupingKey::new(pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())))
    }

    fn headers(tenant: Option<&str>) -> HeaderMap {
        let mut map = HeaderMap::new();
        if let Some(t) = tenant {
            map.insert("x-scope-orgid", HeaderValue::from_str(t).unwrap());
        }
        map
    }

    fn policy(edit: impl FnOnce(&mut TenantConfig)) -> TenantPolicy {
        let mut config = TenantConfig::default();
        edit(&mut config);
        TenantPolicy::new(&config).unwrap()
    }

    #[test]
    fn no_source_means_no_tenant_even_when_the_pusher_sends_one() {
        let p = policy(|_| {});
        assert!(!p.is_enabled());
        let got = p
            .resolve(&key(&[("job", "j")]), &headers(Some("evil")))
            .unwrap();
        assert_eq!(got, None);
    }

    #[test]
    fn static_tenant_applies_to_every_push_and_ignores_the_pushers_header() {
        let p = policy(|c| c.id = Some("team-a".into()));
        let got = p
            .resolve(&key(&[("job", "j")]), &headers(Some("other")))
            .unwrap();
        assert_eq!(got.as_deref(), Some("team-a"));
        assert_eq!(p.static_tenant(), Some("team-a"));
    }

    #[test]
    fn label_tenant_is_taken_from_the_grouping_key_and_required() {
        let p = policy(|c| c.from_label = Some("tenant".into()));
        let got = p
            .resolve(&key(&[("job", "j"), ("tenant", "blue")]), &headers(None))
            .unwrap();
        assert_eq!(got.as_deref(), Some("blue"));
        let err = p
            .resolve(&key(&[("job", "j")]), &headers(None))
            .unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert!(
            err.message.contains("grouping label tenant"),
            "{}",
            err.message
        );
        let err = p
            .resolve(&key(&[("job", "j"), ("tenant", "a/b")]), &headers(None))
            .unwrap_err();
        assert!(err.message.contains("'/'"), "{}", err.message);
    }

    #[test]
    fn label_falls_back_to_the_static_tenant() {
        let p = policy(|c| {
            c.from_label = Some("tenant".into());
            c.id = Some("default".into());
        });
        let got = p.resolve(&key(&[("job", "j")]), &headers(None)).unwrap();
        assert_eq!(got.as_deref(), Some("default"));
    }

    #[test]
    fn passthrough_uses_the_pushers_header_first() {
        let p = policy(|c| {
            c.passthrough = true;
            c.from_label = Some("tenant".into());
        });
        let k = key(&[("job", "j"), ("tenant", "from-label")]);
        assert_eq!(
            p.resolve(&k, &headers(Some("from-header")))
                .unwrap()
                .as_deref(),
            Some("from-header")
        );
        assert_eq!(
            p.resolve(&k, &headers(None)).unwrap().as_deref(),
            Some("from-label")
        );
        let err = p
            .resolve(&key(&[("job", "j")]), &headers(None))
            .unwrap_err();
        assert!(err.message.contains("X-Scope-OrgID"), "{}", err.message);
        let err = p.resolve(&k, &headers(Some(".."))).unwrap_err();
        assert!(
            err.message.contains("X-Scope-OrgID header"),
            "{}",
            err.message
        );
        let mut two = headers(Some("a"));
        two.append("x-scope-orgid", HeaderValue::from_static("b"));
        assert!(p.resolve(&k, &two).is_err());
    }

    #[test]
    fn apply_sets_or_clears_the_configured_header() {
        let p = policy(|c| {
            c.header = "X-Tenant".into();
            c.id = Some("a".into());
        });
        let mut headers = HeaderMap::new();
        p.apply(Some("team-a"), &mut headers).unwrap();
        assert_eq!(headers["x-tenant"], "team-a");
        p.apply(None, &mut headers).unwrap();
        assert!(headers.is_empty());
    }

    #[test]
    fn not_required_gives_none() {
        let p = policy(|c| {
            c.passthrough = true;
            c.required = false;
        });
        assert_eq!(
            p.resolve(&key(&[("job", "j")]), &headers(None)).unwrap(),
            None
        );
    }

    #[test]
    fn bad_configuration_is_refused_with_the_key() {
        let bad = |edit: fn(&mut TenantConfig)| {
            let mut c = TenantConfig::default();
            edit(&mut c);
            TenantPolicy::new(&c).unwrap_err()
        };
        assert!(bad(|c| c.id = Some("a|b".into())).contains("remote_write.tenant.id"));
        assert!(bad(|c| c.id = Some("x".repeat(151))).contains("151"));
        assert!(bad(|c| c.header = "bad header".into()).contains("remote_write.tenant.header"));
        assert!(bad(|c| c.from_label = Some("1x".into())).contains("from_label"));
    }
}
