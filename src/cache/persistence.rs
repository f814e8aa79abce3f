//! The persistence file: pushrelay's own format, atomic writes, and the
//! Pushgateway's write schedule (below).
//!
//! Format: the magic `PUSHRELAY-CACHE\n`, a little-endian `u32` format
//! version, a little-endian `u64` group count, then one varint-length-
//! delimited [`GroupRecord`] protobuf message per group, then a little-endian
//! CRC-32 of everything before it. Anything else (short, trailing bytes, bad
//! checksum, undecodable record) is an error: a corrupt file never loads as
//! an empty store.
//!
//! Writing: to `<file>.in_progress.<pid>` in the same directory (mode 0600),
//! fsync, rename over the file, fsync the directory.
//!
//! Schedule: after a write to the store, if no persist is pending, one is
//! scheduled `interval − (now − last persist)` later (at once when that is
//! not positive): at most one file write per interval, none while idle, and
//! the first change after a long idle period is persisted at once. The file
//! is written once more at shutdown.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use prost::Message;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::Cache;
use super::stored::{Group, Stamp, StoredFamily};
use crate::proto::client::{LabelPair, MetricFamily};
use crate::push::GroupingKey;

const MAGIC: &[u8; 16] = b"PUSHRELAY-CACHE\n";
const VERSION: u32 = 1;

/// One group in the file.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GroupRecord {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<LabelPair>,
    /// Unix nanoseconds of the last successful push; absent = never.
    #[prost(int64, optional, tag = "2")]
    pub push_time_ns: Option<i64>,
    #[prost(int64, tag = "3")]
    pub push_stored_ns: i64,
    /// Unix nanoseconds of the last failed push; absent = never.
    #[prost(int64, optional, tag = "4")]
    pub failure_time_ns: Option<i64>,
    #[prost(int64, tag = "5")]
    pub failure_stored_ns: i64,
    #[prost(message, repeated, tag = "6")]
    pub families: Vec<FamilyRecord>,
    /// The tenant the group was pushed as; absent: none.
    #[prost(string, optional, tag = "7")]
    pub tenant: Option<String>,
}

/// One family of a group and the time it was stored.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FamilyRecord {
    #[prost(message, optional, tag = "1")]
    pub family: Option<MetricFamily>,
    #[prost(int64, tag = "2")]
    pub stored_ns: i64,
}

/// A persistence file that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("persistence file {path}: {problem}")]
pub struct LoadError {
    path: PathBuf,
    problem: String,
}

fn to_ns(time: SystemTime) -> i64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

fn from_ns(ns: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_nanos(u64::try_from(ns).unwrap_or(0))
}

/// Serialises groups into the file format.
pub fn encode(groups: &[Arc<Group>]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(groups.len() as u64).to_le_bytes());
    for group in groups {
        let record = GroupRecord {
            labels: group.key.label_pairs(),
            push_time_ns: group.push_time.value.map(to_ns),
            push_stored_ns: to_ns(group.push_time.stored_at),
            failure_time_ns: group.failure_time.value.map(to_ns),
            failure_stored_ns: to_ns(group.failure_time.stored_at),
            families: group
                .families
                .values()
                .map(|s| FamilyRecord {
                    family: Some(s.family()),
                    stored_ns: to_ns(s.stored_at),
                })
                .collect(),
            tenant: group.tenant.clone(),
        };
        // Encoding into a Vec cannot run out of space.
        let _ = record.encode_length_delimited(&mut out);
    }
    let mut crc = flate2::Crc::new();
    crc.update(&out);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out
}

/// Parses the file format.
pub fn decode(bytes: &[u8]) -> Result<Vec<Group>, String> {
    let header = MAGIC.len() + 4 + 8;
    if bytes.len() < header + 4 || &bytes[..MAGIC.len()] != MAGIC {
        return Err("not a pushrelay cache file (bad header)".into());
    }
    let (body, trailer) = bytes.split_at(bytes.len() - 4);
    let mut crc = flate2::Crc::new();
    crc.update(body);
    if crc.sum().to_le_bytes() != trailer {
        return Err("checksum mismatch (truncated or corrupt)".into());
    }
    let version = u32::from_le_bytes(body[16..20].try_into().map_err(|_| "short header")?);
    if version != VERSION {
        return Err(format!("unsupported format version {version}"));
    }
    let count = u64::from_le_bytes(body[20..28].try_into().map_err(|_| "short header")?);
    let mut rest = &body[header..];
    let mut groups = Vec::new();
    for n in 0..count {
        let record = GroupRecord::decode_length_delimited(&mut rest)
            .map_err(|e| format!("group record {n}: {e}"))?;
        let key = GroupingKey::new(
            record
                .labels
                .iter()
                .map(|l| (l.name().to_string(), l.value().to_string())),
        );
        let mut families: BTreeMap<String, Arc<StoredFamily>> = BTreeMap::new();
        for record in record.families {
            let Some(family) = record.family else {
                continue;
            };
            let stored = StoredFamily::new(&family, from_ns(record.stored_ns))
                .map_err(|e| format!("group record {n}: {e}"))?;
            families.insert(family.name().to_string(), Arc::new(stored));
        }
        groups.push(Group {
            tenant: record.tenant,
            key,
            families,
            push_time: Stamp {
                value: record.push_time_ns.map(from_ns),
                stored_at: from_ns(record.push_stored_ns),
            },
            failure_time: Stamp {
                value: record.failure_time_ns.map(from_ns),
                stored_at: from_ns(record.failure_stored_ns),
            },
        });
    }
    if !rest.is_empty() {
        return Err(format!(
            "{} unexpected bytes after {count} groups",
            rest.len()
        ));
    }
    Ok(groups)
}

/// Loads `path` into `cache`. A missing file is an empty start; any other
/// problem is an error.
pub fn load(cache: &Cache, path: &Path) -> Result<usize, LoadError> {
    let fail = |problem: String| LoadError {
        path: path.to_path_buf(),
        problem,
    };
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(fail(e.to_string())),
    };
    let groups = decode(&bytes).map_err(fail)?;
    let count = groups.len();
    cache.store().restore(groups);
    Ok(count)
}

/// Writes `bytes` to `path` atomically (temp file, fsync, rename, fsync dir).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "pushrelay-cache".into());
    let temp = dir.join(format!("{file_name}.in_progress.{}", std::process::id()));
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&temp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&temp, path)?;
    File::open(&dir)?.sync_all()
}

/// The background writer of the persistence file.
pub struct Persister {
    stop: Arc<Notify>,
    task: JoinHandle<()>,
}

impl Persister {
    /// Starts persisting `cache` to `path` at most once per `interval`.
    pub fn start(cache: Cache, path: PathBuf, interval: Duration) -> Self {
        let stop = Arc::new(Notify::new());
        // What is on disk now (the file was just loaded, or there is none).
        let generation = cache.store().generation();
        let task = tokio::spawn(run(cache, path, interval, generation, stop.clone()));
        Self { stop, task }
    }

    /// Stops the schedule and writes the file one last time.
    pub async fn finish(self) {
        self.stop.notify_one();
        if let Err(error) = self.task.await {
            tracing::error!(%error, "persistence task failed");
        }
    }
}

async fn run(
    cache: Cache,
    path: PathBuf,
    interval: Duration,
    mut persisted_generation: u64,
    stop: Arc<Notify>,
) {
    let mut last_persist: Option<Instant> = None;
    loop {
        tokio::select! {
            () = cache.changed() => {}
            () = stop.notified() => break,
        }
        let delay = last_persist.map_or(Duration::ZERO, |at| interval.saturating_sub(at.elapsed()));
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = stop.notified() => break,
        }
        persisted_generation = persist(&cache, &path, persisted_generation).await;
        last_persist = Some(Instant::now());
    }
    persist(&cache, &path, persisted_generation).await;
}

/// Writes the file if the store changed since `generation`; returns the
/// generation now on disk.
async fn persist(cache: &Cache, path: &Path, generation: u64) -> u64 {
    let current = cache.store().generation();
    if current == generation {
        return generation;
    }
    let cache = cache.clone();
    let path = path.to_path_buf();
    let outcome = tokio::task::spawn_blocking(move || {
        let bytes = encode(&cache.store().snapshot());
        write_atomically(&path, &bytes).map(|()| (bytes.len(), path))
    })
    .await;
    match outcome {
        Ok(Ok((size, path))) => {
            tracing::debug!(file = %path.display(), bytes = size, "cache persisted");
            current
        }
        Ok(Err(error)) => {
            tracing::error!(%error, "could not persist the cache");
            generation
        }
        Err(error) => {
            tracing::error!(%error, "could not persist the cache");
            generation
        }
    }
}

#[cfg(test)]
mod tests;
