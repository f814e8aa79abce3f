//! The disk queue's files: segments of framed records, their recovery at
//! start, the group-committing writer and the reading of committed records.
//!
//! A segment is named after the sequence number of its first record
//! (`00000000000000000042.seg`) and holds records back to back, each
//! `[payload length: u32 LE][CRC-32 of the payload: u32 LE][payload]`; a
//! payload starts with the record's sequence number. Only the newest
//! segment is ever written; a new one is started when it passes the
//! segment size, and at every start (a recovered tail is never appended
//! to).
//!
//! Durability: the writer takes every append waiting (group commit),
//! writes them with one `write`, `fdatasync`s, and only then publishes the
//! new committed length and answers the pushers. A new segment's directory
//! entry is fsynced before anything in it is acknowledged. Readers never
//! read past the committed length, so they never see a half-written record.
//!
//! Recovery: every segment is read through at start; at the first record
//! that is cut short, too long, or fails its checksum, the file is cut back
//! to the last whole record with a warning naming the file and the bytes
//! dropped, and the segments after it are kept.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};

use tokio::sync::{mpsc, oneshot};

use crate::telemetry;

/// Bytes in front of every payload: its length and its CRC-32.
pub const RECORD_HEADER: usize = 8;
/// The largest payload a reader believes (a push is bounded far below).
const MAX_PAYLOAD: usize = 1 << 30;
/// Appends taken into one write and one fsync at most.
const GROUP_COMMIT_BYTES: usize = 8 << 20;
const SEGMENT_SUFFIX: &str = ".seg";

fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}{SEGMENT_SUFFIX}"))
}

/// Appends one framed record (`seq` then `body` as its payload) to `out`.
pub fn frame(seq: u64, body: &[u8], out: &mut Vec<u8>) {
    let mut crc = crc32fast::Hasher::new();
    let seq = seq.to_le_bytes();
    crc.update(&seq);
    crc.update(body);
    let len = (seq.len() + body.len()) as u32;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(&seq);
    out.extend_from_slice(body);
}

/// The framed size of a record with a `body` of `len` bytes.
pub fn framed_len(len: usize) -> u64 {
    (RECORD_HEADER + 8 + len) as u64
}

/// One segment as the queue tracks it.
#[derive(Debug)]
pub struct Segment {
    pub first_seq: u64,
    pub path: PathBuf,
    /// Bytes of whole, fsynced records.
    pub committed: u64,
    /// The sequence number of its last record, if it has any.
    pub last_seq: Option<u64>,
}

/// What the writer, the reader and the cleaner share.
pub struct Log {
    pub dir: PathBuf,
    /// Holds the directory's lock for as long as the queue runs.
    _lock: File,
    state: Mutex<State>,
    grown: Condvar,
    /// Signalled whenever delivered segments are deleted.
    pub freed: tokio::sync::Notify,
    max_bytes: u64,
    segment_bytes: u64,
}

pub struct State {
    /// Oldest first; the last one is the one being written.
    pub segments: VecDeque<Segment>,
    pub next_seq: u64,
    /// Bytes of all segments on disk.
    pub bytes: u64,
}

impl Log {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits until the log grows or `timeout` passes.
    pub fn wait_for_growth<'a>(
        &self,
        guard: MutexGuard<'a, State>,
        timeout: std::time::Duration,
    ) -> MutexGuard<'a, State> {
        self.grown
            .wait_timeout(guard, timeout)
            .map(|(guard, _)| guard)
            .unwrap_or_else(|poisoned| poisoned.into_inner().0)
    }

    /// Whether the segments on disk hold more than half of `max_bytes`.
    pub fn half_full(&self) -> bool {
        self.lock().bytes > self.max_bytes / 2
    }

    /// Whether the segments on disk leave less than one segment's worth of
    /// `max_bytes` free: a push is then refused before its body is read.
    pub fn nearly_full(&self) -> bool {
        self.lock().bytes > self.max_bytes.saturating_sub(self.segment_bytes)
    }

    /// Wakes the reader (e.g. to take a checkpoint now).
    pub fn nudge(&self) {
        self.grown.notify_all();
    }

    /// Deletes the segments (never the one being written) whose records
    /// are all delivered, i.e. at most `delivered`.
    pub fn release(&self, delivered: u64) {
        let mut state = self.lock();
        while state.segments.len() > 1 {
            let done = state.segments[0]
                .last_seq
                .is_none_or(|last| last <= delivered);
            if !done {
                break;
            }
            let segment = state.segments.pop_front().expect("checked above");
            match fs::remove_file(&segment.path) {
                Ok(()) => state.bytes = state.bytes.saturating_sub(segment.committed),
                Err(error) => {
                    tracing::warn!(file = %segment.path.display(), %error, "cannot remove a delivered queue segment");
                }
            }
        }
        metrics::gauge!(telemetry::DISK_QUEUE_BYTES).set(state.bytes as f64);
        drop(state);
        self.freed.notify_waiters();
    }
}

/// Reads whole records from one segment, never past a given length.
pub struct SegmentReader {
    file: File,
    pub offset: u64,
    buffer: Vec<u8>,
    /// File offset of `buffer[0]`.
    buffer_at: u64,
}

/// Why a segment stops before its end.
#[derive(Debug)]
pub enum Damage {
    /// The record at `offset` is damaged: `problem` says how.
    At {
        offset: u64,
        problem: &'static str,
    },
    Io(io::Error),
}

impl SegmentReader {
    pub fn open(path: &Path, offset: u64) -> io::Result<Self> {
        Ok(Self {
            file: File::open(path)?,
            offset,
            buffer: Vec::new(),
            buffer_at: offset,
        })
    }

    /// The next record's payload if a whole one lies before `limit`;
    /// `Ok(None)` when fewer bytes than a record are left.
    pub fn next(&mut self, limit: u64) -> Result<Option<Vec<u8>>, Damage> {
        let at = self.offset;
        if at + RECORD_HEADER as u64 > limit {
            return if at == limit {
                Ok(None)
            } else {
                Err(Damage::At {
                    offset: at,
                    problem: "record header cut short",
                })
            };
        }
        let header = self.read(at, RECORD_HEADER, limit)?;
        let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
        if !(8..=MAX_PAYLOAD).contains(&len) {
            return Err(Damage::At {
                offset: at,
                problem: "impossible record length",
            });
        }
        let start = at + RECORD_HEADER as u64;
        if start + len as u64 > limit {
            return Err(Damage::At {
                offset: at,
                problem: "record cut short",
            });
        }
        let payload = self.read(start, len, limit)?.to_vec();
        if crc32fast::hash(&payload) != crc {
            return Err(Damage::At {
                offset: at,
                problem: "checksum mismatch",
            });
        }
        self.offset = start + len as u64;
        Ok(Some(payload))
    }

    /// `len` bytes at `at`, reading ahead (up to `limit`) in large blocks.
    fn read(&mut self, at: u64, len: usize, limit: u64) -> Result<&[u8], Damage> {
        let end = at + len as u64;
        let buffered_end = self.buffer_at + self.buffer.len() as u64;
        if at < self.buffer_at || end > buffered_end {
            let want = (limit - at).min(4 << 20).max(len as u64) as usize;
            self.buffer.resize(want, 0);
            self.file
                .read_exact_at(&mut self.buffer, at)
                .map_err(Damage::Io)?;
            self.buffer_at = at;
        }
        let from = (at - self.buffer_at) as usize;
        Ok(&self.buffer[from..from + len])
    }
}

/// Reads the queue directory at start: cuts damaged segments back to their
/// last whole record, drops empty ones, and starts a fresh segment to
/// write, numbering new records from `min_next_seq` on at least. Returns
/// the log, the file to write and the number of damaged segments cut.
pub fn recover(dir: &Path, max_bytes: u64, min_next_seq: u64) -> io::Result<(Log, File, usize)> {
    let lock = lock_dir(dir)?;
    let mut found: Vec<(u64, PathBuf)> = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if let Some(seq) = name
            .strip_suffix(SEGMENT_SUFFIX)
            .and_then(|s| s.parse::<u64>().ok())
        {
            found.push((seq, path));
        }
    }
    found.sort();
    let mut segments = VecDeque::new();
    let mut damaged = 0;
    let mut next_seq = min_next_seq;
    let mut bytes = 0;
    for (first_seq, path) in found {
        let len = fs::metadata(&path)?.len();
        let mut reader = SegmentReader::open(&path, 0)?;
        let mut last_seq = None;
        let cut = loop {
            match reader.next(len) {
                Ok(Some(payload)) => {
                    let seq = u64::from_le_bytes(payload[..8].try_into().expect("8 bytes"));
                    last_seq = Some(seq);
                }
                Ok(None) => break None,
                Err(Damage::At { offset, problem }) => break Some((offset, problem)),
                Err(Damage::Io(error)) => return Err(error),
            }
        };
        let committed = reader.offset;
        if let Some((offset, problem)) = cut {
            damaged += 1;
            tracing::warn!(
                file = %path.display(),
                bytes_dropped = len - offset,
                problem,
                "disk queue segment damaged: cut back to its last whole record"
            );
            OpenOptions::new()
                .write(true)
                .open(&path)?
                .set_len(offset)?;
        }
        match last_seq {
            None => fs::remove_file(&path)?,
            Some(last) => {
                next_seq = next_seq.max(last + 1);
                bytes += committed;
                segments.push_back(Segment {
                    first_seq,
                    path,
                    committed,
                    last_seq,
                });
            }
        }
    }
    let path = segment_path(dir, next_seq);
    let file = create_segment(dir, &path)?;
    segments.push_back(Segment {
        first_seq: next_seq,
        path,
        committed: 0,
        last_seq: None,
    });
    metrics::gauge!(telemetry::DISK_QUEUE_BYTES).set(bytes as f64);
    let log = Log {
        dir: dir.to_path_buf(),
        _lock: lock,
        state: Mutex::new(State {
            segments,
            next_seq,
            bytes,
        }),
        grown: Condvar::new(),
        freed: tokio::sync::Notify::new(),
        max_bytes,
        // Small enough that delivered data is given back in steps of at
        // most an eighth of the bound, large enough to keep files few.
        segment_bytes: (max_bytes / 8).clamp(64 << 10, 64 << 20),
    };
    Ok((log, file, damaged))
}

/// Takes the queue directory for this process: two pushrelays writing one
/// queue would interleave records and delete each other's segments. The
/// lock is `flock(2)` on a file in it, so it ends with the process, also
/// after `kill -9`, and a restart is never locked out by a stale lock.
fn lock_dir(dir: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("lock"))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(io::Error::other(
                "it is in use by another pushrelay (one queue directory per process)",
            ));
        }
        Err(std::fs::TryLockError::Error(error)) => return Err(error),
    }
    Ok(file)
}

/// Creates an empty segment and makes its directory entry durable.
fn create_segment(dir: &Path, path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(path)?;
    File::open(dir)?.sync_all()?;
    Ok(file)
}

/// Why an append was not acknowledged.
#[derive(Debug)]
pub enum AppendError {
    /// The queue holds `max_bytes` already.
    Full,
    /// One record alone is larger than the queue may grow.
    TooLarge(u64),
    /// Writing or syncing failed.
    Io(String),
}

/// One push waiting to be written.
pub struct Append {
    pub body: Vec<u8>,
    pub reply: oneshot::Sender<Result<(), AppendError>>,
}

/// The writer thread: group commits until every sender is gone.
pub fn write_appends(log: &Log, mut file: File, mut appends: mpsc::Receiver<Append>) {
    while let Some(first) = appends.blocking_recv() {
        let mut batch = vec![first];
        let mut size = batch[0].body.len();
        while size < GROUP_COMMIT_BYTES {
            match appends.try_recv() {
                Ok(next) => {
                    size += next.body.len();
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        if let Err(error) = rotate_if_full(log, &mut file) {
            let message = format!("cannot start a new disk queue segment: {error}");
            for append in batch {
                let _ = append.reply.send(Err(AppendError::Io(message.clone())));
            }
            continue;
        }
        commit(log, &mut file, batch);
    }
}

fn rotate_if_full(log: &Log, file: &mut File) -> io::Result<()> {
    let (full, next_seq) = {
        let state = log.lock();
        let active = state.segments.back().expect("a segment is always open");
        (active.committed >= log.segment_bytes, state.next_seq)
    };
    if !full {
        return Ok(());
    }
    let path = segment_path(&log.dir, next_seq);
    *file = create_segment(&log.dir, &path)?;
    log.lock().segments.push_back(Segment {
        first_seq: next_seq,
        path,
        committed: 0,
        last_seq: None,
    });
    Ok(())
}

/// Writes and fsyncs one group of appends, then answers them.
fn commit(log: &Log, file: &mut File, batch: Vec<Append>) {
    let (mut seq, mut bytes, committed) = {
        let state = log.lock();
        let active = state.segments.back().expect("a segment is always open");
        (state.next_seq, state.bytes, active.committed)
    };
    let first_seq = seq;
    let mut framed = Vec::new();
    let mut answers = Vec::with_capacity(batch.len());
    for append in batch {
        let size = framed_len(append.body.len());
        let verdict = if size > log.max_bytes {
            Err(AppendError::TooLarge(size))
        } else if bytes + size > log.max_bytes {
            Err(AppendError::Full)
        } else {
            frame(seq, &append.body, &mut framed);
            seq += 1;
            bytes += size;
            Ok(())
        };
        answers.push((append.reply, verdict));
    }
    let written = seq - first_seq;
    if written > 0 {
        let outcome = file.write_all(&framed).and_then(|()| file.sync_data());
        if let Err(error) = outcome {
            // Nothing of this group is acknowledged; cut the file back so
            // the next group does not follow a partial write.
            let _ = file.set_len(committed);
            let message = format!("cannot write the disk queue: {error}");
            tracing::error!(%error, "cannot write the disk queue");
            for (reply, verdict) in answers {
                let verdict = verdict.and(Err(AppendError::Io(message.clone())));
                let _ = reply.send(verdict);
            }
            return;
        }
        let mut state = log.lock();
        state.next_seq = seq;
        state.bytes = bytes;
        let active = state.segments.back_mut().expect("a segment is always open");
        active.committed += framed.len() as u64;
        active.last_seq = Some(seq - 1);
        metrics::gauge!(telemetry::DISK_QUEUE_BYTES).set(bytes as f64);
        drop(state);
        log.grown.notify_all();
        metrics::counter!(telemetry::DISK_QUEUE_WRITTEN).increment(written);
    }
    for (reply, verdict) in answers {
        let _ = reply.send(verdict);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A segment with records 1..=3 holding `body-<n>`.
    fn write_segment(dir: &Path) -> (PathBuf, Vec<u64>) {
        let mut bytes = Vec::new();
        let mut ends = Vec::new();
        for seq in 1..=3u64 {
            frame(seq, format!("body-{seq}").as_bytes(), &mut bytes);
            ends.push(bytes.len() as u64);
        }
        let path = segment_path(dir, 1);
        fs::write(&path, bytes).expect("written");
        (path, ends)
    }

    fn bodies(log: &Log) -> Vec<String> {
        let state = log.lock();
        let mut out = Vec::new();
        for segment in &state.segments {
            let mut reader = SegmentReader::open(&segment.path, 0).expect("opens");
            while let Some(payload) = reader.next(segment.committed).expect("whole records") {
                out.push(String::from_utf8(payload[8..].to_vec()).expect("text"));
            }
        }
        out
    }

    #[test]
    fn a_torn_tail_is_cut_back_to_the_last_whole_record() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let (path, ends) = write_segment(dir.path());
        // Half of the third record, as a kill during its write leaves it.
        let torn = ends[1] + (ends[2] - ends[1]) / 2;
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(torn)
            .unwrap();
        let (log, _file, damaged) = recover(dir.path(), 1 << 20, 1).expect("recovers");
        assert_eq!(damaged, 1);
        assert_eq!(bodies(&log), ["body-1", "body-2"]);
        assert_eq!(fs::metadata(&path).unwrap().len(), ends[1]);
        // New records continue after the last whole one, in a new segment.
        assert_eq!(log.lock().next_seq, 3);
        assert_eq!(log.lock().segments.back().unwrap().first_seq, 3);
    }

    #[test]
    fn a_garbled_record_ends_the_segment_there() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let (path, ends) = write_segment(dir.path());
        let mut bytes = fs::read(&path).unwrap();
        bytes[ends[0] as usize + RECORD_HEADER + 9] ^= 0x55;
        fs::write(&path, bytes).unwrap();
        let (log, _file, damaged) = recover(dir.path(), 1 << 20, 1).expect("recovers");
        assert_eq!(damaged, 1);
        assert_eq!(bodies(&log), ["body-1"]);
    }

    #[test]
    fn a_queue_directory_has_one_owner_at_a_time() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let first = recover(dir.path(), 1 << 20, 1).expect("recovers");
        let error = recover(dir.path(), 1 << 20, 1).err().expect("locked out");
        assert!(
            error.to_string().contains("in use by another pushrelay"),
            "{error}"
        );
        drop(first);
        recover(dir.path(), 1 << 20, 1).expect("free again");
    }

    #[test]
    fn appends_are_committed_in_order_and_refused_beyond_the_bound() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let max = 1 << 20;
        let (log, file, _) = recover(dir.path(), max, 1).expect("recovers");
        let (sender, receiver) = mpsc::channel(16);
        let mut answers = Vec::new();
        for body in [b"one".to_vec(), b"two".to_vec(), vec![0; max as usize]] {
            let (reply, answer) = oneshot::channel();
            sender.blocking_send(Append { body, reply }).unwrap();
            answers.push(answer);
        }
        drop(sender);
        write_appends(&log, file, receiver);
        let answers: Vec<_> = answers
            .into_iter()
            .map(|a| a.blocking_recv().unwrap())
            .collect();
        assert!(answers[0].is_ok() && answers[1].is_ok());
        assert!(matches!(answers[2], Err(AppendError::TooLarge(_))));
        assert_eq!(bodies(&log), ["one", "two"]);
        assert_eq!(log.lock().bytes, framed_len(3) * 2);
    }
}
