//! The series-memory snapshot saved beside the queue's segments, so that
//! stale markers (a DELETE, a PUT without a series) and per-group
//! timestamps survive a restart.
//!
//! A snapshot is taken in the record stream: the reader hands every shard a
//! snapshot request right after record `delivered`, so each shard answers
//! with its memory after exactly the records up to `delivered` and none
//! after. Replaying the records after `delivered` on top of it therefore
//! stamps the same timestamps and ends the same series as the first run
//! did, and records up to `delivered` may be deleted once it is on disk.
//!
//! File `series-memory.snapshot`: `PRSNAP1\n`, `delivered` (u64 LE), the
//! number of shard blobs (u32 LE), each blob length-prefixed, then a CRC-32
//! of everything before it. It is written to a temporary file, fsynced and
//! renamed over the old one; a damaged snapshot is ignored with a warning
//! (the whole queue on disk is then replayed; resending is harmless, as a
//! sample with the same timestamp and value is one sample to the backend).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use super::codec::{Malformed, Put, Take};

const MAGIC: &[u8] = b"PRSNAP1\n";
const FILE_NAME: &str = "series-memory.snapshot";

/// What a snapshot holds: the last record it covers and each shard's
/// encoded memory (see `SeriesMemory::save`).
#[derive(Debug, Default, PartialEq)]
pub struct Snapshot {
    pub delivered: u64,
    pub memories: Vec<Vec<u8>>,
}

/// Writes the snapshot durably, replacing the previous one.
pub fn save(dir: &Path, snapshot: &Snapshot) -> io::Result<()> {
    let mut out = MAGIC.to_vec();
    let mut put = Put(&mut out);
    put.u64(snapshot.delivered);
    put.len(snapshot.memories.len());
    for memory in &snapshot.memories {
        put.bytes(memory);
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    let temporary = dir.join(format!("{FILE_NAME}.tmp"));
    let mut file = File::create(&temporary)?;
    file.write_all(&out)?;
    file.sync_data()?;
    fs::rename(&temporary, dir.join(FILE_NAME))?;
    File::open(dir)?.sync_all()
}

/// The saved snapshot; an empty one when there is none or it is damaged.
pub fn load(dir: &Path) -> Snapshot {
    let path = dir.join(FILE_NAME);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Snapshot::default(),
        Err(error) => {
            tracing::warn!(file = %path.display(), %error, "cannot read the series-memory snapshot; replaying the whole queue");
            return Snapshot::default();
        }
    };
    decode(&bytes).unwrap_or_else(|Malformed(problem)| {
        tracing::warn!(file = %path.display(), problem, "series-memory snapshot damaged; ignored, replaying the whole queue");
        Snapshot::default()
    })
}

fn decode(bytes: &[u8]) -> Result<Snapshot, Malformed> {
    let body_len = bytes
        .len()
        .checked_sub(4)
        .ok_or(Malformed("shorter than its checksum"))?;
    let (body, crc) = bytes.split_at(body_len);
    if crc32fast::hash(body).to_le_bytes() != crc {
        return Err(Malformed("checksum mismatch"));
    }
    let mut take = Take(body);
    if take.raw(MAGIC.len())? != MAGIC {
        return Err(Malformed("not a pushrelay snapshot"));
    }
    let delivered = take.u64()?;
    let memories = (0..take.len()?)
        .map(|_| take.bytes().map(<[u8]>::to_vec))
        .collect::<Result<_, _>>()?;
    Ok(Snapshot {
        delivered,
        memories,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_reads_back_and_a_damaged_one_reads_as_empty() {
        let dir = tempfile::tempdir().expect("temporary directory");
        assert_eq!(load(dir.path()), Snapshot::default());
        let snapshot = Snapshot {
            delivered: 41,
            memories: vec![b"one".to_vec(), Vec::new()],
        };
        save(dir.path(), &snapshot).expect("saved");
        assert_eq!(load(dir.path()), snapshot);
        let path = dir.path().join(FILE_NAME);
        let mut bytes = fs::read(&path).expect("read");
        bytes[10] ^= 0xff;
        fs::write(&path, bytes).expect("written");
        assert_eq!(load(dir.path()), Snapshot::default());
    }
}
