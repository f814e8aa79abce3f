//! Tests of the forwarder's own rules: which shard a group goes to, when a
//! wait for room ends.

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

/// A wait for room lasts at least the patience and less than a tick more,
/// and waits that start within one tick end together.
#[test]
fn waits_for_room_end_on_a_shared_grid() {
    let origin = Instant::now();
    let mut ends = std::collections::BTreeSet::new();
    for start_us in (0..ADMISSION_TICK.as_micros() as u64).step_by(700) {
        let now = origin + Duration::from_micros(start_us + 3_000);
        let end = admission_deadline(origin, now);
        assert!(end >= now + ADMISSION_PATIENCE);
        assert!(end < now + ADMISSION_PATIENCE + ADMISSION_TICK);
        ends.insert(end);
    }
    // Starts spread over one tick: at most two distinct ends.
    assert!(ends.len() <= 2, "{ends:?}");
    let on_the_grid = origin + Duration::from_millis(20);
    assert_eq!(
        admission_deadline(origin, on_the_grid),
        on_the_grid + ADMISSION_PATIENCE
    );
}
