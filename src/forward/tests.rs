//! Tests of the forwarder's own rules: which shard a group goes to.

use super::*;

/// The disk queue saves each shard's series memory: a group must find
/// the same shard whichever way its index is computed, and across
/// versions.
#[test]
fn a_group_and_its_parts_hash_to_the_same_shard() {
    for tenant in [None, Some("t1"), Some("")] {
        for job in ["a", "b", "job-with-a-longer-name"] {
            let key = GroupingKey::new([
                ("job".to_string(), job.to_string()),
                ("instance".to_string(), "i".to_string()),
            ]);
            let group = GroupId {
                tenant: tenant.map(str::to_string),
                key: key.clone(),
            };
            let mut hasher = DefaultHasher::new();
            group.hash(&mut hasher);
            let derived = (hasher.finish() % 7) as usize;
            assert_eq!(shard_index(&group, 7), derived);
            assert_eq!(shard_of(tenant, &key, 7), derived);
        }
    }
}
