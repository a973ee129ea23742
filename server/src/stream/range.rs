//! The HTTP `Range` header (RFC 9110 §14) for one file of known length. Pure.
//!
//! Forms: `bytes=a-b`, `bytes=a-` and the suffix `bytes=-n`. A header that does not parse is
//! ignored and the whole file is sent (RFC 9110 §14.2 lets a server ignore `Range`); a header
//! that parses but asks only for bytes past the end is unsatisfiable (416). Of several ranges
//! the first satisfiable one is served as a single part: players ask for one range at a time,
//! and multipart bodies buy nothing here.

/// An inclusive byte range within a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte sent.
    pub start: u64,
    /// Last byte sent (inclusive), always below the file length.
    pub end: u64,
}

impl ByteRange {
    /// Number of bytes in the range.
    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }

    /// Always false: a range holds at least one byte. Present because `len` is.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The `Content-Range` value of a 206 answer for a file of `total` bytes.
    pub fn content_range(&self, total: u64) -> String {
        format!("bytes {}-{}/{}", self.start, self.end, total)
    }
}

/// What to send for a request, given its `Range` header and the file length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAnswer {
    /// No usable `Range`: 200 with the whole file.
    Full,
    /// 206 with this part of the file.
    Partial(ByteRange),
    /// 416 (the caller adds `Content-Range: bytes */len`).
    Unsatisfiable,
}

/// Decides what to send for `header` (the raw `Range` value, if any) on a file of `len` bytes.
pub fn answer(header: Option<&[u8]>, len: u64) -> RangeAnswer {
    let Some(text) = header.and_then(|h| std::str::from_utf8(h).ok()) else {
        return RangeAnswer::Full;
    };
    let Some(specs) = parse(text) else {
        return RangeAnswer::Full;
    };
    specs
        .into_iter()
        .find_map(|spec| spec.resolve(len))
        .map_or(RangeAnswer::Unsatisfiable, RangeAnswer::Partial)
}

/// One `range-spec` as written, before the file length is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RangeSpec {
    /// `a-b` or `a-` (`last` absent).
    FromTo { first: u64, last: Option<u64> },
    /// `-n`: the last n bytes.
    Suffix(u64),
}

impl RangeSpec {
    fn resolve(self, len: u64) -> Option<ByteRange> {
        match self {
            RangeSpec::FromTo { first, last } => {
                if first >= len {
                    return None;
                }
                let end = last.map_or(len - 1, |l| l.min(len - 1));
                Some(ByteRange { start: first, end })
            }
            RangeSpec::Suffix(n) => {
                if n == 0 || len == 0 {
                    return None;
                }
                Some(ByteRange {
                    start: len.saturating_sub(n),
                    end: len - 1,
                })
            }
        }
    }
}

/// Parses `bytes=spec[,spec]...`; `None` when any part is malformed.
fn parse(text: &str) -> Option<Vec<RangeSpec>> {
    let (unit, set) = text.trim().split_once('=')?;
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return None;
    }
    let mut specs = Vec::new();
    // RFC 9110 allows empty list elements (`bytes=0-1,,5-6`).
    for part in set.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (first, last) = part.split_once('-')?;
        let (first, last) = (first.trim(), last.trim());
        let spec = if first.is_empty() {
            RangeSpec::Suffix(number(last)?)
        } else {
            let first = number(first)?;
            let last = if last.is_empty() {
                None
            } else {
                Some(number(last)?)
            };
            if last.is_some_and(|l| l < first) {
                return None;
            }
            RangeSpec::FromTo { first, last }
        };
        specs.push(spec);
    }
    (!specs.is_empty()).then_some(specs)
}

/// Digits only: `+5`, `5.0` and the empty string are malformed.
fn number(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ans(header: &str, len: u64) -> RangeAnswer {
        answer(Some(header.as_bytes()), len)
    }

    fn part(start: u64, end: u64) -> RangeAnswer {
        RangeAnswer::Partial(ByteRange { start, end })
    }

    #[test]
    fn no_header_sends_the_whole_file() {
        assert_eq!(answer(None, 100), RangeAnswer::Full);
    }

    #[test]
    fn a_closed_range_is_served_as_asked() {
        assert_eq!(ans("bytes=0-9", 100), part(0, 9));
        assert_eq!(ans("bytes=10-10", 100), part(10, 10));
    }

    #[test]
    fn a_range_past_the_end_is_clipped_to_the_file() {
        assert_eq!(ans("bytes=90-200", 100), part(90, 99));
    }

    #[test]
    fn an_open_range_runs_to_the_end() {
        assert_eq!(ans("bytes=40-", 100), part(40, 99));
    }

    #[test]
    fn a_suffix_range_gives_the_last_bytes() {
        assert_eq!(ans("bytes=-10", 100), part(90, 99));
        assert_eq!(ans("bytes=-500", 100), part(0, 99));
    }

    #[test]
    fn a_range_that_starts_past_the_end_is_unsatisfiable() {
        assert_eq!(ans("bytes=100-", 100), RangeAnswer::Unsatisfiable);
        assert_eq!(ans("bytes=150-160", 100), RangeAnswer::Unsatisfiable);
        assert_eq!(ans("bytes=-0", 100), RangeAnswer::Unsatisfiable);
        assert_eq!(ans("bytes=0-", 0), RangeAnswer::Unsatisfiable);
        assert_eq!(ans("bytes=-5", 0), RangeAnswer::Unsatisfiable);
    }

    #[test]
    fn of_several_ranges_the_first_satisfiable_is_served() {
        assert_eq!(ans("bytes=0-4, 10-14", 100), part(0, 4));
        assert_eq!(ans("bytes=200-300,5-6", 100), part(5, 6));
        assert_eq!(ans("bytes=200-300,400-", 100), RangeAnswer::Unsatisfiable);
    }

    #[test]
    fn malformed_headers_are_ignored() {
        for bad in [
            "bytes=",
            "bytes=abc",
            "bytes=5-3",
            "bytes=--5",
            "bytes=1-2-3",
            "items=0-5",
            "0-5",
            "bytes=+1-5",
            "bytes=0-5,x",
            "bytes=-",
            "bytes=99999999999999999999999-",
        ] {
            assert_eq!(ans(bad, 100), RangeAnswer::Full, "{bad}");
        }
        assert_eq!(answer(Some(&[0xff, 0xfe]), 100), RangeAnswer::Full);
    }

    #[test]
    fn the_unit_and_spaces_are_lenient() {
        assert_eq!(ans("Bytes = 1 - 2", 100), part(1, 2));
        assert_eq!(ans("bytes=0-1,,5-6", 100), part(0, 1));
    }

    #[test]
    fn content_range_values_follow_the_rfc() {
        let range = ByteRange { start: 5, end: 9 };
        assert_eq!(range.content_range(100), "bytes 5-9/100");
        assert_eq!(range.len(), 5);
    }
}
