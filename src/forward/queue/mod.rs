//! The durable disk queue of `remote_write.ack = "durable"`: pushes are
//! written to disk and fsynced before they are acknowledged, then fed to
//! the shards in order from disk, also after a restart.
//!
//! Where it sits: between convert and the shards. A record holds the
//! converted push with its receive time, not stamped samples; the shard
//! stamps timestamps from the receive time and its series memory, as
//! without the queue. The memory is saved with the queue (see [`snapshot`])
//! at a point in the record stream, so a replay after a restart stamps the
//! same timestamps and ends the same series as the first attempt did: a
//! record delivered before a crash but not yet known delivered is sent
//! again identically, which the backend takes as the sample it already
//! has.
//!
//! Contract:
//! - [`DiskQueue::append`] answers `Ok` only once the push is fsynced
//!   (group commit: every append waiting shares one write and one fsync);
//!   a queue at `max_bytes` answers [`SinkError::Overloaded`] (429 with
//!   `Retry-After`) and never drops what it acknowledged.
//! - [`DiskQueue::admit`] answers the same before a push's body is read
//!   while less than one segment's worth is free (after a short wait for
//!   room), so a full queue does not parse and convert what it refuses.
//! - Room comes back when a checkpoint deletes delivered segments: every
//!   [`CHECKPOINT_INTERVAL`], and sooner (at most every
//!   `PRESSED_CHECKPOINT_INTERVAL`) while the queue is past half full.
//! - One reader thread hands the records to the shards in sequence order:
//!   the records found at start first, then new ones. Shards retry a
//!   record until the backend takes it (no deadline); a record the backend
//!   refuses (4xx) is dropped and counted by reason ([`count_refused`]):
//!   after a long outage Prometheus refuses old samples as "out of bounds",
//!   and delivery goes on with the rest.
//! - Every [`CHECKPOINT_INTERVAL`] (at least), once records were handed
//!   out since the last one, the reader asks every shard for its memory
//!   right after the last record handed out; when all have answered (so
//!   all those records are done) the snapshot is saved and the segments
//!   holding only records up to it are deleted.
//! - A damaged queue (torn tail after `kill -9`, bad checksum) is cut back
//!   to its last whole record at start with a warning; it never stops
//!   pushrelay from starting. A queue directory that cannot be created or
//!   read does, and so does one another pushrelay holds (`flock` on its
//!   `lock` file, released when that process ends, however it ends).

pub mod codec;
mod reader;
pub mod segment;
pub mod snapshot;

use std::collections::VecDeque;
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::convert::Converted;
use super::series_memory::{GroupId, SeriesMemory};
use super::shard::Message;
use crate::config::DiskQueueConfig;
use crate::push::{PushOp, SinkError};
use crate::telemetry;
use reader::Reader;
use segment::{Append, AppendError, Log};
use snapshot::Snapshot;

/// Least time between two snapshots of the series memory: records
/// delivered since the last one are sent again after a crash.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(2);

/// Least time between two checkpoints while the queue is past half full.
const PRESSED_CHECKPOINT_INTERVAL: Duration = Duration::from_millis(250);
/// What a pusher is told to wait when the queue is full.
const FULL_RETRY_AFTER: Duration = Duration::from_secs(5);
/// Pushes waiting for the writer before pushers wait for room.
const APPENDS_WAITING: usize = 4096;
/// "No deadline" for a record: a shard retries it until it is taken.
const NO_DEADLINE: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// A queue directory read back at start, before the shards run.
pub struct Recovered {
    log: Log,
    file: File,
    delivered: u64,
    memories: Vec<SeriesMemory>,
    max_series: usize,
}

impl Recovered {
    /// Recovers `config.dir`: cuts damage, loads the series-memory
    /// snapshot and spreads its groups over `shards` memories of
    /// `max_series` each (with `shard_of`, the forwarder's own choice).
    pub fn open(
        config: &DiskQueueConfig,
        shards: usize,
        max_series: usize,
        shard_of: impl Fn(&GroupId) -> usize,
    ) -> Result<Self, String> {
        let dir: PathBuf = config
            .dir
            .clone()
            .ok_or("remote_write.queue.dir is not set")?;
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create the disk queue {}: {e}", dir.display()))?;
        let Snapshot {
            delivered,
            memories: saved,
        } = snapshot::load(&dir);
        // Sequence numbers are never reused, also when every segment was
        // delivered and deleted: the snapshot skips records up to its own.
        let (log, file, damaged) = segment::recover(&dir, config.max_bytes, delivered + 1)
            .map_err(|e| format!("cannot open the disk queue {}: {e}", dir.display()))?;
        metrics::counter!(telemetry::DISK_QUEUE_DROPPED, "reason" => "corrupt")
            .increment(damaged as u64);
        let mut memories: Vec<SeriesMemory> =
            (0..shards).map(|_| SeriesMemory::new(max_series)).collect();
        for bytes in saved {
            match SeriesMemory::load(&bytes) {
                Ok(groups) => {
                    for (id, group) in groups {
                        memories[shard_of(&id)].insert(&id, group);
                    }
                }
                Err(codec::Malformed(problem)) => {
                    tracing::warn!(problem, "a shard's saved series memory is damaged; ignored")
                }
            }
        }
        let (first, next) = {
            let state = log.lock();
            let first = state
                .segments
                .front()
                .map_or(state.next_seq, |s| s.first_seq);
            (first.max(delivered + 1), state.next_seq)
        };
        tracing::info!(
            dir = %dir.display(),
            replaying = next - first,
            "disk queue opened"
        );
        Ok(Self {
            log,
            file,
            delivered,
            memories,
            max_series,
        })
    }

    /// The series memory saved for shard `index`.
    pub fn take_memory(&mut self, index: usize) -> SeriesMemory {
        std::mem::replace(
            &mut self.memories[index],
            SeriesMemory::new(self.max_series),
        )
    }

    /// Starts the writer, the reader feeding `shards` (chosen by
    /// `shard_of`) and the checkpointing; must be called inside a tokio
    /// runtime.
    pub fn start(
        self,
        shards: Vec<mpsc::Sender<Message>>,
        shard_of: impl Fn(&GroupId) -> usize + Send + 'static,
    ) -> DiskQueue {
        let log = Arc::new(self.log);
        let (appends, receiver) = mpsc::channel(APPENDS_WAITING);
        let writer_log = log.clone();
        let file = self.file;
        std::thread::Builder::new()
            .name("disk-queue-writer".into())
            .spawn(move || segment::write_appends(&writer_log, file, receiver))
            .expect("starting the disk queue writer");
        let pending = Arc::new(Pending::default());
        let busy = Arc::new(AtomicBool::new(false));
        let progress = Arc::new(Progress::default());
        progress.handed_out.store(self.delivered, Ordering::Release);
        progress.confirmed.store(self.delivered, Ordering::Release);
        let (checkpoints, confirmations) = mpsc::unbounded_channel();
        let reader = Reader {
            log: log.clone(),
            shards,
            shard_of: Box::new(shard_of),
            pending: pending.clone(),
            busy: busy.clone(),
            checkpoints,
            delivered: self.delivered,
            progress: progress.clone(),
        };
        std::thread::Builder::new()
            .name("disk-queue-reader".into())
            .spawn(move || reader.run())
            .expect("starting the disk queue reader");
        let tasks = vec![
            tokio::spawn(confirm(
                log.clone(),
                confirmations,
                pending.clone(),
                busy,
                progress.clone(),
            )),
            tokio::spawn(watch_age(pending)),
        ];
        DiskQueue {
            appends,
            tasks,
            log,
            progress,
        }
    }
}

/// The answer to a push the queue has no room for.
fn full() -> SinkError {
    SinkError::Overloaded {
        message: "the disk queue is full (remote_write.queue.max_bytes)".into(),
        retry_after: FULL_RETRY_AFTER,
    }
}

/// The running queue: where the forwarder appends.
pub struct DiskQueue {
    appends: mpsc::Sender<Append>,
    tasks: Vec<JoinHandle<()>>,
    log: Arc<Log>,
    progress: Arc<Progress>,
}

impl DiskQueue {
    /// Decides, before a push's body is read, whether the queue has room
    /// for it: while the queue is nearly full (less than one segment's
    /// worth free) it waits at most `patience` for delivered segments to
    /// be deleted, asking for a checkpoint, then answers
    /// [`SinkError::Overloaded`]. A push admitted can still find the queue
    /// full when appended (pushes admitted together), and is then refused
    /// as before; what this saves is parsing and converting the pushes a
    /// full queue would refuse.
    pub async fn admit(&self, patience: Duration) -> Result<(), SinkError> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let freed = self.log.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if !self.log.nearly_full() {
                return Ok(());
            }
            self.progress.pressed.store(true, Ordering::Release);
            self.log.nudge();
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                return Err(full());
            }
        }
    }

    /// Writes a push durably; see the module docs for the answers.
    pub async fn append(
        &self,
        op: PushOp,
        group: &GroupId,
        received_at: SystemTime,
        converted: &Converted,
    ) -> Result<(), SinkError> {
        let body = codec::encode_push(op, group, received_at, converted);
        let (reply, answer) = oneshot::channel();
        let stopped = || SinkError::Unavailable {
            message: "the disk queue is shutting down".into(),
            retry_after: FULL_RETRY_AFTER,
        };
        self.appends
            .send(Append { body, reply })
            .await
            .map_err(|_| stopped())?;
        let answer = answer.await.map_err(|_| stopped())?;
        // Room comes back only when a checkpoint deletes delivered
        // segments: a queue past half full asks for one now rather than at
        // the next interval, or pushes acknowledged as fast as the disk
        // syncs fill it while the backend keeps up.
        if self.log.half_full() {
            self.progress.pressed.store(true, Ordering::Release);
            self.log.nudge();
        }
        match answer {
            Ok(()) => Ok(()),
            Err(AppendError::Full) => Err(full()),
            Err(AppendError::TooLarge(size)) => Err(SinkError::Rejected(format!(
                "the push takes {size} bytes in the disk queue, more than \
                 remote_write.queue.max_bytes"
            ))),
            Err(AppendError::Io(message)) => Err(SinkError::Unavailable {
                message,
                retry_after: FULL_RETRY_AFTER,
            }),
        }
    }
}

impl DiskQueue {
    /// Takes a checkpoint of everything handed to the shards so far and
    /// waits (at most `limit`) until it is saved, so that a restart after
    /// a clean stop sends nothing twice. Nothing is lost when it times out
    /// (the backend is down): the records stay queued.
    pub async fn checkpoint(&self, limit: Duration) {
        let target = self.progress.handed_out.load(Ordering::Acquire);
        self.progress.wanted.store(true, Ordering::Release);
        self.log.nudge();
        let saved = async {
            while self.progress.confirmed.load(Ordering::Acquire) < target {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        if tokio::time::timeout(limit, saved).await.is_err() {
            tracing::warn!(
                "disk queue checkpoint not saved before stopping; its records are sent again at start"
            );
        }
    }
}

impl Drop for DiskQueue {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Counts and logs a record the backend refused; it is not retried.
pub fn count_refused(failure: &SinkError) {
    let text = failure.to_string();
    let lower = text.to_lowercase();
    let reason = if lower.contains("out of bounds") || lower.contains("too old") {
        "too_old"
    } else if lower.contains("out of order") || lower.contains("duplicate sample") {
        "out_of_order"
    } else {
        "rejected"
    };
    tracing::warn!(reason, error = %text, "disk queue entry dropped: the backend refused it");
    metrics::counter!(telemetry::DISK_QUEUE_DROPPED, "reason" => reason).increment(1);
}

/// How far the reader and the checkpoints have got, for a checkpoint on
/// demand ([`DiskQueue::checkpoint`]).
#[derive(Default)]
struct Progress {
    /// The last record handed to a shard.
    handed_out: AtomicU64,
    /// The last record covered by a saved snapshot.
    confirmed: AtomicU64,
    /// A checkpoint is asked for now, not after the interval.
    wanted: AtomicBool,
    /// The queue is past half full: a checkpoint is asked for once
    /// [`PRESSED_CHECKPOINT_INTERVAL`] has passed since the last one (each
    /// saves every shard's series memory, too costly to take back to back).
    pressed: AtomicBool,
}

/// Records handed to the shards and not yet confirmed done: their
/// sequence numbers and receive times, oldest first.
#[derive(Default)]
struct Pending(Mutex<VecDeque<(u64, SystemTime)>>);

impl Pending {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(u64, SystemTime)>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A snapshot on its way: the last record it covers and the shards'
/// answers.
struct Checkpoint {
    upto: u64,
    memories: Vec<oneshot::Receiver<Vec<u8>>>,
}

/// Saves each checkpoint once every shard has answered, then deletes what
/// it covers.
async fn confirm(
    log: Arc<Log>,
    mut checkpoints: mpsc::UnboundedReceiver<Checkpoint>,
    pending: Arc<Pending>,
    busy: Arc<AtomicBool>,
    progress: Arc<Progress>,
) {
    while let Some(Checkpoint { upto, memories }) = checkpoints.recv().await {
        let mut saved = Vec::with_capacity(memories.len());
        for memory in memories {
            match memory.await {
                Ok(bytes) => saved.push(bytes),
                Err(_) => return,
            }
        }
        let writer = log.clone();
        let written = tokio::task::spawn_blocking(move || {
            let snapshot = Snapshot {
                delivered: upto,
                memories: saved,
            };
            snapshot::save(&writer.dir, &snapshot).map(|()| writer.release(upto))
        })
        .await;
        match written {
            Ok(Ok(())) => {
                let mut pending = pending.lock();
                let before = pending.len();
                while pending.front().is_some_and(|&(seq, _)| seq <= upto) {
                    pending.pop_front();
                }
                metrics::counter!(telemetry::DISK_QUEUE_DELIVERED)
                    .increment((before - pending.len()) as u64);
                progress.confirmed.store(upto, Ordering::Release);
            }
            Ok(Err(error)) => {
                tracing::warn!(%error, "cannot save the series-memory snapshot; the queue keeps its records");
            }
            Err(_) => return,
        }
        busy.store(false, Ordering::Release);
        log.nudge();
    }
}

/// Keeps the oldest-entry-age gauge current.
async fn watch_age(pending: Arc<Pending>) {
    let gauge = metrics::gauge!(telemetry::DISK_QUEUE_OLDEST_AGE);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let oldest = pending.lock().front().map(|&(_, at)| at);
        let age = oldest.map_or(0.0, |at| {
            SystemTime::now()
                .duration_since(at)
                .unwrap_or_default()
                .as_secs_f64()
        });
        gauge.set(age);
    }
}
