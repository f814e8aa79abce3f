//! The reader thread: hands the queue's records to the shards in sequence
//! order, from the open segment on as it grows, and asks the shards for
//! their memory when a checkpoint is due.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use super::segment::{Log, SegmentReader};
use super::{
    CHECKPOINT_INTERVAL, Checkpoint, NO_DEADLINE, PRESSED_CHECKPOINT_INTERVAL, Pending, Progress,
    codec,
};
use crate::forward::series_memory::GroupId;
use crate::forward::shard::{Message, Queued};
use crate::telemetry;

/// The reader thread's state.
pub(super) struct Reader {
    pub(super) log: Arc<Log>,
    pub(super) shards: Vec<mpsc::Sender<Message>>,
    pub(super) shard_of: Box<dyn Fn(&GroupId) -> usize + Send>,
    pub(super) pending: Arc<Pending>,
    /// Set while a checkpoint is being confirmed (one at a time).
    pub(super) busy: Arc<AtomicBool>,
    pub(super) checkpoints: mpsc::UnboundedSender<Checkpoint>,
    /// Records up to this one are done (from the snapshot).
    pub(super) delivered: u64,
    pub(super) progress: Arc<Progress>,
}

/// Where the reader reads next.
enum Next {
    /// Records lie before `limit` in the open segment.
    Read(u64),
    /// The open segment is read through; the next one starts at this
    /// sequence number.
    Segment(u64, PathBuf),
    /// Nothing new yet.
    Idle,
}

impl Reader {
    pub(super) fn run(self) {
        // The open segment: its first sequence number and its reader
        // (`None` when it could not be opened: it is passed over).
        let mut open: Option<(u64, Option<SegmentReader>)> = None;
        let mut handed_out = self.delivered;
        let mut checkpointed = self.delivered;
        let mut last_checkpoint = Instant::now();
        loop {
            let at = open
                .as_ref()
                .map(|(first, reader)| (*first, reader.as_ref().map_or(u64::MAX, |r| r.offset)));
            match self.next(at) {
                Next::Segment(first, path) => {
                    let reader = SegmentReader::open(&path, 0)
                        .inspect_err(|error| {
                            tracing::error!(file = %path.display(), %error, "cannot open a disk queue segment; passing it over");
                            metrics::counter!(telemetry::DISK_QUEUE_DROPPED, "reason" => "corrupt")
                                .increment(1);
                        })
                        .ok();
                    open = Some((first, reader));
                }
                Next::Read(limit) => {
                    let Some((_, Some(reader))) = open.as_mut() else {
                        continue;
                    };
                    loop {
                        match reader.next(limit) {
                            Ok(Some(payload)) => match self.hand_out(&payload) {
                                Some(Some(seq)) => handed_out = seq,
                                Some(None) => {}
                                None => return,
                            },
                            Ok(None) => break,
                            Err(damage) => {
                                // Only recovery cuts files; committed bytes
                                // that read back wrong mean the disk changed
                                // under us: the rest of the file is passed
                                // over.
                                tracing::error!(
                                    ?damage,
                                    "disk queue segment unreadable past this point; passing the rest over"
                                );
                                metrics::counter!(telemetry::DISK_QUEUE_DROPPED, "reason" => "corrupt")
                                    .increment(1);
                                reader.offset = limit;
                                break;
                            }
                        }
                        if self.checkpoint_due(last_checkpoint) {
                            break;
                        }
                    }
                }
                Next::Idle => {
                    if self.shards.iter().all(mpsc::Sender::is_closed) {
                        return;
                    }
                }
            }
            self.progress
                .handed_out
                .store(handed_out, Ordering::Release);
            if handed_out > checkpointed
                && self.checkpoint_due(last_checkpoint)
                && !self.busy.swap(true, Ordering::AcqRel)
            {
                self.progress.wanted.store(false, Ordering::Release);
                self.progress.pressed.store(false, Ordering::Release);
                let mut memories = Vec::with_capacity(self.shards.len());
                for shard in &self.shards {
                    let (answer, memory) = oneshot::channel();
                    if shard.blocking_send(Message::Snapshot(answer)).is_err() {
                        return;
                    }
                    memories.push(memory);
                }
                let checkpoint = Checkpoint {
                    upto: handed_out,
                    memories,
                };
                if self.checkpoints.send(checkpoint).is_err() {
                    return;
                }
                checkpointed = handed_out;
                last_checkpoint = Instant::now();
            }
        }
    }

    fn checkpoint_due(&self, last: Instant) -> bool {
        let elapsed = last.elapsed();
        elapsed >= CHECKPOINT_INTERVAL
            || self.progress.wanted.load(Ordering::Acquire)
            || (elapsed >= PRESSED_CHECKPOINT_INTERVAL
                && self.progress.pressed.load(Ordering::Acquire))
    }

    /// Decides what to read next; waits (at most a checkpoint interval)
    /// when nothing is there.
    fn next(&self, at: Option<(u64, u64)>) -> Next {
        let mut state = self.log.lock();
        for waited in [false, true] {
            if waited {
                state = self.log.wait_for_growth(state, CHECKPOINT_INTERVAL);
            }
            let Some((first, offset)) = at else {
                return match state.segments.front() {
                    Some(s) => Next::Segment(s.first_seq, s.path.clone()),
                    None => Next::Idle,
                };
            };
            // The open segment, or the first after it if it was deleted.
            let current = state.segments.iter().position(|s| s.first_seq >= first);
            let Some(index) = current else {
                continue;
            };
            let segment = &state.segments[index];
            if segment.first_seq != first {
                return Next::Segment(segment.first_seq, segment.path.clone());
            }
            if offset < segment.committed {
                return Next::Read(segment.committed);
            }
            if let Some(after) = state.segments.get(index + 1) {
                return Next::Segment(after.first_seq, after.path.clone());
            }
        }
        Next::Idle
    }

    /// Sends one record to its shard. `None`: the shards are gone;
    /// `Some(None)`: nothing handed out (done already, or undecodable).
    fn hand_out(&self, payload: &[u8]) -> Option<Option<u64>> {
        let entry = match codec::decode_entry(payload) {
            Ok(entry) => entry,
            Err(codec::Malformed(problem)) => {
                tracing::error!(
                    problem,
                    "disk queue record passes its checksum but does not decode; dropped"
                );
                metrics::counter!(telemetry::DISK_QUEUE_DROPPED, "reason" => "corrupt")
                    .increment(1);
                return Some(None);
            }
        };
        if entry.seq <= self.delivered {
            return Some(None);
        }
        let seq = entry.seq;
        self.pending.lock().push_back((seq, entry.received_at));
        let shard = &self.shards[(self.shard_of)(&entry.group)];
        let message = Message::Push(Box::new(Queued {
            op: entry.op,
            group: entry.group,
            received_at: entry.received_at,
            converted: entry.converted,
            deadline: Instant::now() + NO_DEADLINE,
            reply: None,
            from_cache: None,
            hot_slot: None,
        }));
        shard.blocking_send(message).ok()?;
        Some(Some(seq))
    }
}
