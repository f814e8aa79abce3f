//! gzip (RFC 1952): the framing around raw deflate read here, so that
//! each failure gets its own message and the output buffer stays under the
//! limit.

use flate2::{Crc, Decompress, FlushDecompress, Status};

use super::{DecodeError, MIN_GROWTH, corrupt, reserve_within};

pub(super) const GZIP_FHCRC: u8 = 0x02;
const GZIP_FEXTRA: u8 = 0x04;
const GZIP_FNAME: u8 = 0x08;
const GZIP_FCOMMENT: u8 = 0x10;

pub(super) fn gunzip(input: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
    if input.is_empty() {
        return Err(corrupt("gzip: empty body (EOF)"));
    }
    let mut out = Vec::new();
    let mut rest = input;
    loop {
        rest = &rest[gzip_header_len(rest)?..];
        let member_start = out.len();
        let consumed = inflate(rest, &mut out, limit)?;
        rest = &rest[consumed..];
        let Some((trailer, after)) = rest.split_first_chunk::<8>() else {
            return Err(corrupt("gzip: unexpected EOF (truncated trailer)"));
        };
        let [c0, c1, c2, c3, s0, s1, s2, s3] = *trailer;
        let mut crc = Crc::new();
        crc.update(&out[member_start..]);
        let size = (out.len() - member_start) as u32; // ISIZE is the size mod 2^32
        if crc.sum() != u32::from_le_bytes([c0, c1, c2, c3])
            || size != u32::from_le_bytes([s0, s1, s2, s3])
        {
            return Err(corrupt("gzip: invalid checksum"));
        }
        rest = after;
        if rest.is_empty() {
            return Ok(out);
        }
    }
}

/// The decoded size of a gzip body, through one scratch buffer; stops with
/// `TooLarge` as soon as it passes `limit`. Only the framing is checked
/// (the checksums are, when [`gunzip`] decodes the body for real).
pub(super) fn gunzip_len(input: &[u8], limit: usize) -> Result<usize, DecodeError> {
    let mut scratch = vec![0u8; MIN_GROWTH];
    let mut total: usize = 0;
    let mut rest = input;
    loop {
        rest = &rest[gzip_header_len(rest)?..];
        let mut inflater = Decompress::new(false);
        loop {
            let used = usize::try_from(inflater.total_in()).unwrap_or(usize::MAX);
            let remaining = input_after(rest, used);
            let out_before = inflater.total_out();
            let status = inflater
                .decompress(remaining, &mut scratch, FlushDecompress::None)
                .map_err(|e| {
                    corrupt(format!(
                        "gzip: corrupt deflate stream after {used} compressed bytes: {e}"
                    ))
                })?;
            let produced = usize::try_from(inflater.total_out() - out_before).unwrap_or(usize::MAX);
            total = total.saturating_add(produced);
            if total > limit {
                return Err(DecodeError::TooLarge);
            }
            if status == Status::StreamEnd {
                break;
            }
            let used_now = usize::try_from(inflater.total_in()).unwrap_or(usize::MAX);
            if used_now == used && produced == 0 {
                return Err(corrupt("gzip: unexpected EOF (truncated deflate stream)"));
            }
        }
        let used = usize::try_from(inflater.total_in()).unwrap_or(usize::MAX);
        let Some((_trailer, after)) = input_after(rest, used).split_first_chunk::<8>() else {
            return Err(corrupt("gzip: unexpected EOF (truncated trailer)"));
        };
        rest = after;
        if rest.is_empty() {
            return Ok(total);
        }
    }
}

fn input_after(input: &[u8], used: usize) -> &[u8] {
    input.get(used..).unwrap_or_default()
}

/// The length of the gzip member header at the start of `input`.
pub(super) fn gzip_header_len(input: &[u8]) -> Result<usize, DecodeError> {
    let truncated = || corrupt("gzip: unexpected EOF (truncated header)");
    let magic_ok = input.iter().zip([0x1f, 0x8b, 0x08]).all(|(&b, m)| b == m);
    if !magic_ok {
        return Err(corrupt("gzip: invalid header"));
    }
    let Some(&[_, _, _, flags, ..]) = input.get(..10) else {
        return Err(truncated());
    };
    let mut pos = 10;
    if flags & GZIP_FEXTRA != 0 {
        let Some(&[lo, hi]) = input.get(pos..pos + 2) else {
            return Err(truncated());
        };
        pos += 2 + usize::from(u16::from_le_bytes([lo, hi]));
    }
    for flag in [GZIP_FNAME, GZIP_FCOMMENT] {
        if flags & flag != 0 {
            let terminator = input
                .get(pos..)
                .and_then(|field| field.iter().position(|&b| b == 0))
                .ok_or_else(truncated)?;
            pos += terminator + 1;
        }
    }
    if flags & GZIP_FHCRC != 0 {
        let (Some(header), Some(&[lo, hi])) = (input.get(..pos), input.get(pos..pos + 2)) else {
            return Err(truncated());
        };
        let mut crc = Crc::new();
        crc.update(header);
        if crc.sum() as u16 != u16::from_le_bytes([lo, hi]) {
            return Err(corrupt("gzip: invalid header (header checksum mismatch)"));
        }
        pos += 2;
    }
    if pos > input.len() {
        return Err(truncated());
    }
    Ok(pos)
}

/// Inflates one raw deflate stream from `input` onto `out`; returns the
/// input bytes it used.
pub(super) fn inflate(input: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<usize, DecodeError> {
    let mut inflater = Decompress::new(false);
    loop {
        reserve_within(out, MIN_GROWTH, limit)?;
        let used = usize::try_from(inflater.total_in()).unwrap_or(usize::MAX);
        let remaining = input.get(used..).unwrap_or_default();
        let len_before = out.len();
        let status = inflater
            .decompress_vec(remaining, out, FlushDecompress::None)
            .map_err(|e| {
                corrupt(format!(
                    "gzip: corrupt deflate stream after {used} compressed bytes: {e}"
                ))
            })?;
        let used_now = usize::try_from(inflater.total_in()).unwrap_or(usize::MAX);
        if status == Status::StreamEnd {
            if out.len() > limit {
                return Err(DecodeError::TooLarge);
            }
            return Ok(used_now);
        }
        if used_now == used && out.len() == len_before {
            // No progress with room to write: the input ended mid-stream.
            return Err(corrupt("gzip: unexpected EOF (truncated deflate stream)"));
        }
    }
}
