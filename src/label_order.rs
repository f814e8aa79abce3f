//! How label names compare on the hot paths (the parser's sort, the
//! grouping merge, the check, the conversion): byte order, as Prometheus
//! and the Pushgateway sort them, decided on the first byte when it
//! differs, as label names mostly do, without a call to `memcmp`.

use std::cmp::Ordering;

/// `a.cmp(b)` for label names.
#[inline]
pub(crate) fn compare(a: &[u8], b: &[u8]) -> Ordering {
    match (a.first(), b.first()) {
        (Some(x), Some(y)) if x != y => x.cmp(y),
        _ => a.cmp(b),
    }
}

/// `a == b` for label names.
#[inline]
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    a.first() == b.first() && a == b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_compare_as_bytes_do() {
        let names: [&[u8]; 8] = [b"", b"_", b"__name__", b"a", b"ab", b"b", b"code", b"path"];
        for a in names {
            for b in names {
                assert_eq!(compare(a, b), a.cmp(b), "{a:?} {b:?}");
                assert_eq!(same(a, b), a == b, "{a:?} {b:?}");
            }
        }
    }
}
