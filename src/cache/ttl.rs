//! The TTL of cached groups (`cache.group_ttl`, `cache.group_ttl_rules`)
//! and when each group expires; the sweeper that removes them is
//! `crate::expiry`.
//!
//! - The TTL of a group is that of the first rule whose labels all match
//!   its grouping labels, else `cache.group_ttl`; `0` means never.
//! - The age is measured from the group's last successful push (its
//!   `push_time_seconds`, which persistence keeps, so expiry survives a
//!   restart); a group that never succeeded ages from its last failure.

use std::time::{Duration, SystemTime};

use super::store::Group;
use crate::config::CacheConfig;
use crate::push::GroupingKey;

/// Shortest and longest pause between two sweeps.
const SWEEP_BOUNDS: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(10));

/// The TTL of each group, from `cache.group_ttl` and its rules.
#[derive(Clone, Debug)]
pub struct TtlPolicy {
    default: Duration,
    rules: Vec<(Vec<(String, String)>, Duration)>,
}

impl TtlPolicy {
    pub fn new(config: &CacheConfig) -> Self {
        Self {
            default: config.group_ttl.0,
            rules: config
                .group_ttl_rules
                .iter()
                .map(|rule| {
                    let matches = rule.matches.clone().into_iter().collect();
                    (matches, rule.ttl.0)
                })
                .collect(),
        }
    }

    /// Whether any group can expire.
    pub fn is_enabled(&self) -> bool {
        !self.default.is_zero() || self.rules.iter().any(|(_, ttl)| !ttl.is_zero())
    }

    /// The TTL of the group with `key`; `None`: it never expires.
    pub fn ttl_of(&self, key: &GroupingKey) -> Option<Duration> {
        let ttl = self
            .rules
            .iter()
            .find(|(matches, _)| {
                matches
                    .iter()
                    .all(|(name, value)| key.get(name) == Some(value.as_str()))
            })
            .map_or(self.default, |(_, ttl)| *ttl);
        (!ttl.is_zero()).then_some(ttl)
    }

    /// When the group expires; `None`: never.
    pub fn expires_at(&self, group: &Group) -> Option<SystemTime> {
        let ttl = self.ttl_of(&group.key)?;
        Some(last_change(group) + ttl)
    }

    /// The pause between sweeps: a tenth of the shortest TTL, bounded.
    pub fn sweep_every(&self) -> Duration {
        let shortest = self
            .rules
            .iter()
            .map(|(_, ttl)| *ttl)
            .chain([self.default])
            .filter(|ttl| !ttl.is_zero())
            .min()
            .unwrap_or(SWEEP_BOUNDS.1);
        (shortest / 10).clamp(SWEEP_BOUNDS.0, SWEEP_BOUNDS.1)
    }
}

/// The last successful push to the group, or its last failure if none.
pub fn last_change(group: &Group) -> SystemTime {
    group
        .push_time
        .value
        .or(group.failure_time.value)
        .unwrap_or(group.push_time.stored_at)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::{GoDuration, GroupTtlRule};

    fn key(pairs: &[(&str, &str)]) -> GroupingKey {
        GroupingKey::new(pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())))
    }

    fn rule(matches: &[(&str, &str)], seconds: u64) -> GroupTtlRule {
        GroupTtlRule {
            matches: matches
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            ttl: GoDuration(Duration::from_secs(seconds)),
        }
    }

    #[test]
    fn the_first_matching_rule_wins_and_zero_is_never() {
        let config = CacheConfig {
            group_ttl: GoDuration(Duration::from_secs(60)),
            group_ttl_rules: vec![
                rule(&[("job", "backup")], 0),
                rule(&[("job", "batch"), ("env", "dev")], 5),
                rule(&[("job", "batch")], 30),
            ],
            ..CacheConfig::default()
        };
        let policy = TtlPolicy::new(&config);
        assert!(policy.is_enabled());
        assert_eq!(policy.ttl_of(&key(&[("job", "backup")])), None);
        assert_eq!(
            policy.ttl_of(&key(&[("job", "batch"), ("env", "dev")])),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            policy.ttl_of(&key(&[("job", "batch"), ("env", "prod")])),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            policy.ttl_of(&key(&[("job", "other")])),
            Some(Duration::from_secs(60))
        );
        assert_eq!(policy.sweep_every(), Duration::from_millis(500));
    }

    #[test]
    fn without_a_ttl_nothing_expires() {
        let policy = TtlPolicy::new(&CacheConfig::default());
        assert!(!policy.is_enabled());
        assert_eq!(policy.ttl_of(&key(&[("job", "any")])), None);
    }
}
