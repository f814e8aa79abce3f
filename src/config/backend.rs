//! The settings for reaching the remote_write backend securely, as plain
//! data: TLS (`remote_write.tls`), basic auth (`remote_write.basic_auth`)
//! and extra headers (`remote_write.headers`). `crate::security::outbound`
//! builds the live connector and credentials from them and refuses what
//! they must not contain (e.g. a header the sender sets itself).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Secret;
use super::pairs::Pairs;

/// `remote_write.tls`: how the backend's certificate is checked and which
/// certificate pushrelay presents.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TlsClientConfig {
    /// PEM CA certificates that verify the backend instead of the system
    /// store.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (chain) for mTLS; needs `key_file`.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
    /// The name the backend's certificate must carry, instead of the URL's
    /// host.
    pub server_name: Option<String>,
    /// Accept any backend certificate. For tests only.
    pub insecure_skip_verify: bool,
}

/// `remote_write.basic_auth`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BasicAuthConfig {
    pub username: String,
    /// File holding the password (one trailing newline is trimmed).
    pub password_file: Option<PathBuf>,
}

/// `remote_write.headers`: extra headers sent with every remote_write
/// request, written as a map (`{X-Foo = "bar"}`) or a list of `Name: Value`
/// strings (as `--remote-write.header` gives them). Values are secrets: they
/// often carry API keys.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExtraHeaders(pub Vec<(String, Secret)>);

impl Serialize for ExtraHeaders {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let map: BTreeMap<&str, &Secret> = self.0.iter().map(|(n, v)| (n.as_str(), v)).collect();
        map.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for ExtraHeaders {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let entries = match Pairs::deserialize(deserializer)? {
            Pairs::Map(map) => {
                return Ok(Self(
                    map.into_iter().map(|(n, v)| (n, Secret::new(v))).collect(),
                ));
            }
            Pairs::Entries(entries) => entries,
        };
        let pairs = entries
            .into_iter()
            .map(|entry| match entry.split_once(':') {
                Some((name, value)) => Ok((name.trim().to_string(), Secret::new(value.trim()))),
                // The entry is not quoted: it may be a secret value.
                None => Err(serde::de::Error::custom(
                    "a header entry is not `Name: Value`",
                )),
            })
            .collect::<Result<_, _>>()?;
        Ok(Self(pairs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_headers_come_from_a_map_or_a_list() {
        let from_list: ExtraHeaders =
            serde_json::from_str(r#"["X-A: 1", "X-B:two: parts"]"#).unwrap();
        assert_eq!(from_list.0[0].0, "X-A");
        assert_eq!(from_list.0[0].1.expose(), "1");
        assert_eq!(from_list.0[1].1.expose(), "two: parts");
        let one: ExtraHeaders = serde_json::from_str(r#""X-A: 1""#).unwrap();
        assert_eq!(one.0.len(), 1);
        let from_map: ExtraHeaders = serde_json::from_str(r#"{"X-A": "1"}"#).unwrap();
        assert_eq!(from_map.0[0].1.expose(), "1");
        let err = serde_json::from_str::<ExtraHeaders>(r#"["no-colon"]"#).unwrap_err();
        assert!(err.to_string().contains("Name: Value"), "{err}");
        assert_eq!(
            serde_json::to_string(&from_map).unwrap(),
            r#"{"X-A":"<secret>"}"#
        );
    }
}
