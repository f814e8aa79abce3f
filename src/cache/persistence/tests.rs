use std::time::SystemTime;

use super::*;
use crate::cache::store::StoreOptions;
use crate::proto::client::{Gauge, Metric, MetricType};
use crate::push::{Push, PushOp};

fn cache_with_data() -> Cache {
    let cache = Cache::new(StoreOptions::default());
    let family = MetricFamily {
        name: Some("m".into()),
        help: Some("help".into()),
        r#type: Some(MetricType::Gauge as i32),
        metric: vec![Metric {
            gauge: Some(Gauge { value: Some(1.5) }),
            ..Default::default()
        }],
        unit: None,
    };
    for job in ["a", "b"] {
        cache
            .apply(Push {
                op: PushOp::Replace,
                key: GroupingKey::new([("job".to_string(), job.to_string())]),
                families: vec![family.clone()].into(),
                received_at: SystemTime::now(),
                tenant: None,
            })
            .unwrap();
    }
    let mut timestamped = family;
    timestamped.metric[0].timestamp_ms = Some(1);
    let refused = Push {
        op: PushOp::Replace,
        key: GroupingKey::new([("job".to_string(), "failed".to_string())]),
        families: vec![timestamped].into(),
        received_at: SystemTime::now(),
        tenant: None,
    };
    assert!(cache.apply(refused).is_err());
    cache
}

fn sorted(mut groups: Vec<Group>) -> Vec<Group> {
    groups.sort_by(|a, b| a.key.cmp(&b.key));
    groups
}

#[test]
fn round_trip_restores_groups_stamps_and_family_times_exactly() {
    let cache = cache_with_data();
    let before: Vec<Group> = cache
        .store()
        .snapshot()
        .iter()
        .map(|g| (**g).clone())
        .collect();
    let bytes = encode(&cache.store().snapshot());
    let after = decode(&bytes).unwrap();
    assert_eq!(sorted(after), sorted(before));
}

#[test]
fn corrupt_files_are_errors_never_an_empty_store() {
    let bytes = encode(&cache_with_data().store().snapshot());
    assert!(decode(&bytes[..bytes.len() - 1]).is_err(), "truncated");
    let mut flipped = bytes.clone();
    flipped[40] ^= 0x55;
    assert!(decode(&flipped).unwrap_err().contains("checksum"));
    assert!(decode(b"").is_err());
    assert!(
        decode(b"# some other file\n")
            .unwrap_err()
            .contains("bad header")
    );
}

#[test]
fn files_are_written_atomically_and_loaded_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.db");
    let cache = cache_with_data();
    write_atomically(&path, &encode(&cache.store().snapshot())).unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, [std::ffi::OsString::from("cache.db")]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let restored = Cache::new(StoreOptions::default());
    assert_eq!(load(&restored, &path).unwrap(), 3);
    assert_eq!(restored.store().snapshot().len(), 3);
    assert_eq!(load(&restored, &dir.path().join("missing")).unwrap(), 0);
    std::fs::write(&path, b"garbage").unwrap();
    let err = load(&restored, &path).unwrap_err().to_string();
    assert!(err.contains("cache.db"), "{err}");
}

// The paused clock jumps over the interval instead of waiting it out; file
// writes run on the blocking pool, which holds the clock while they run.
#[tokio::test(start_paused = true)]
async fn the_schedule_writes_at_once_after_idle_then_at_most_once_per_interval() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.db");
    let cache = Cache::new(StoreOptions::default());
    let interval = Duration::from_secs(60);
    let persister = Persister::start(cache.clone(), path.clone(), interval);
    let push = |job: &str| Push {
        op: PushOp::Replace,
        key: GroupingKey::new([("job".to_string(), job.to_string())]),
        families: Vec::new().into(),
        received_at: SystemTime::now(),
        tenant: None,
    };
    let groups_on_disk = || std::fs::read(&path).ok().map(|b| decode(&b).unwrap().len());
    cache.apply(push("a")).unwrap();
    for _ in 0..200 {
        if groups_on_disk() == Some(1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        groups_on_disk(),
        Some(1),
        "first change after idle is written at once"
    );
    cache.apply(push("b")).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(groups_on_disk(), Some(1), "not before the interval");
    tokio::time::sleep(interval).await;
    for _ in 0..200 {
        if groups_on_disk() == Some(2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        groups_on_disk(),
        Some(2),
        "written once the interval passed"
    );
    cache.apply(push("c")).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(groups_on_disk(), Some(2), "not before the next interval");
    persister.finish().await;
    assert_eq!(groups_on_disk(), Some(3), "written at shutdown");
}
