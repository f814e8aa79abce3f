//! `remote_write.tenant`: the settings of tenancy, i.e. which tenant
//! (`X-Scope-OrgID` for Mimir, Cortex, Loki-style backends) a push is
//! written as. The rules that apply them live with ingest
//! (`crate::push::tenant`).

use serde::{Deserialize, Serialize};

/// The header that carries the tenant unless configured otherwise.
pub const DEFAULT_TENANT_HEADER: &str = "X-Scope-OrgID";

/// `remote_write.tenant` in the configuration.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TenantConfig {
    /// A static tenant for every push (the fallback when the other sources
    /// give none).
    pub id: Option<String>,
    /// A grouping label whose value is the tenant.
    pub from_label: Option<String>,
    /// Use the pusher's own tenant header when present.
    pub passthrough: bool,
    /// Refuse (400) a push that resolves to no tenant, when any source is
    /// configured.
    pub required: bool,
    /// The header the tenant travels in, both from pushers and to the
    /// backend.
    pub header: String,
}

impl Default for TenantConfig {
    fn default() -> Self {
        Self {
            id: None,
            from_label: None,
            passthrough: false,
            required: true,
            header: DEFAULT_TENANT_HEADER.into(),
        }
    }
}
