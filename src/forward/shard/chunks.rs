//! The requests a shard builds from one push: its series (named, encoded
//! when the request is sent), stale markers, `push_time_seconds` and
//! metadata, cut into chunks within the request limits.

use crate::forward::batch::{Chunk, Limits, Piece};
use crate::forward::convert::SeriesValue;
use crate::forward::series_memory::SharedPush;
use crate::forward::wire;
use crate::forward::wire_v2::Extras;
use crate::proto::prompb::metric_metadata::MetricType as RwType;

/// Builds a push's chunks, starting a new one when the current one is full.
/// The push's own series are only named (see [`Piece::Series`]); the rest
/// is encoded here.
pub(super) struct ChunkBuilder {
    limits: Limits,
    chunks: Vec<Chunk>,
    current: Chunk,
    /// Entries encoded since the current chunk's last piece.
    encoded: Vec<u8>,
}

impl ChunkBuilder {
    pub(super) fn new(limits: Limits) -> Self {
        Self {
            limits,
            chunks: Vec::new(),
            current: Chunk::default(),
            encoded: Vec::new(),
        }
    }

    fn make_room(&mut self, bytes: usize) {
        let full = self.current.samples >= self.limits.max_samples
            || self.current.len + bytes > self.limits.max_bytes;
        if full && self.current.len != 0 {
            self.close_chunk();
        }
    }

    fn close_chunk(&mut self) {
        self.close_encoded();
        self.chunks.push(std::mem::take(&mut self.current));
    }

    /// Ends the current run of encoded entries as a piece of the chunk.
    fn close_encoded(&mut self) {
        if !self.encoded.is_empty() {
            let bytes = std::mem::take(&mut self.encoded);
            self.current.pieces.push(Piece::Encoded(bytes));
        }
    }

    /// Appends entries `write` encodes, counting their bytes.
    fn put(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        let before = self.encoded.len();
        write(&mut self.encoded);
        self.current.len += self.encoded.len() - before;
    }

    pub(super) fn float(&mut self, labels: &[u8], value: f64, timestamp_ms: i64) {
        self.make_room(wire::float_series_size(labels.len(), timestamp_ms));
        self.put(|out| wire::put_float_series(out, labels, value, timestamp_ms));
        self.current.samples += 1;
    }

    /// Adds series `index` of `source`, stamped `timestamp_ms` unless it
    /// carries its own, to be encoded when its request is built.
    pub(super) fn series(&mut self, source: &SharedPush, index: usize, timestamp_ms: i64) {
        let series = &source.series()[index];
        let labels = series.labels().len();
        let at = source.timestamp(index).unwrap_or(timestamp_ms);
        let size = match series.value() {
            SeriesValue::Float(_) => {
                let size = wire::float_series_size(labels, at);
                self.make_room(size);
                size
            }
            SeriesValue::Histogram(h) => {
                let histogram = source.histogram(h).len();
                self.make_room(labels + histogram + 24);
                wire::histogram_series_size(labels, histogram, at)
            }
        };
        self.close_encoded();
        match self.current.pieces.last_mut() {
            Some(Piece::Series {
                series,
                timestamp_ms: stamped,
            }) if series.end == index && *stamped == timestamp_ms => series.end += 1,
            _ => self.current.pieces.push(Piece::Series {
                series: index..index + 1,
                timestamp_ms,
            }),
        }
        self.current.len += size;
        self.current.samples += 1;
    }

    /// Gives the series added last what only 2.0 carries.
    pub(super) fn extras(&mut self, extras: &Extras) {
        let index = self.current.samples - 1;
        self.current.extras.push((index, extras.clone()));
    }

    pub(super) fn metadata(&mut self, r#type: RwType, name: &str, help: &str) {
        self.put(|out| wire::put_metadata(out, r#type as i32, name, help, ""));
    }

    pub(super) fn raw_metadata(&mut self, encoded: &[u8]) {
        if !encoded.is_empty() {
            self.put(|out| out.extend_from_slice(encoded));
        }
    }

    pub(super) fn finish(mut self) -> Vec<Chunk> {
        if self.current.len != 0 {
            self.close_chunk();
        }
        self.chunks
    }
}
