//! Reading containers: a buffered source read at absolute offsets, little/big-endian fields
//! that read as 0 past the end, and sample counts as exact durations.

use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::time::Duration;

/// A duration of `samples` at `rate` Hz, exact to the nanosecond (saturating).
pub(super) fn samples_to_duration(samples: u64, rate: u32) -> Duration {
    if rate == 0 {
        return Duration::ZERO;
    }
    let ns = u128::from(samples) * 1_000_000_000 / u128::from(rate);
    Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
}

/// A buffered, seekable source that knows its length and reads at absolute offsets.
pub(super) struct Src<R> {
    pub(super) inner: BufReader<R>,
    pos: u64,
    pub(super) len: u64,
}

impl<R: Read + Seek> Src<R> {
    pub(super) fn new(r: R, len: u64) -> Self {
        Src {
            inner: BufReader::with_capacity(64 * 1024, r),
            pos: 0,
            len,
        }
    }

    /// Reads up to `buf.len()` bytes at `at`; fewer only at the end of the file.
    pub(super) fn read_at(&mut self, at: u64, buf: &mut [u8]) -> io::Result<usize> {
        if at != self.pos {
            let delta = i128::from(at) - i128::from(self.pos);
            match i64::try_from(delta) {
                Ok(d) => self.inner.seek_relative(d)?,
                Err(_) => {
                    self.inner.seek(SeekFrom::Start(at))?;
                }
            }
            self.pos = at;
        }
        let mut n = 0;
        while n < buf.len() {
            match self.inner.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.pos += n as u64;
        Ok(n)
    }

    /// Reads exactly `N` bytes at `at`, or `None` past the end of the file.
    pub(super) fn array<const N: usize>(&mut self, at: u64) -> io::Result<Option<[u8; N]>> {
        let mut b = [0u8; N];
        Ok((self.read_at(at, &mut b)? == N).then_some(b))
    }
}

pub(super) fn u16le(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2)
        .map_or(0, |s| u16::from_le_bytes([s[0], s[1]]))
}

pub(super) fn u32le(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map_or(0, |s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

pub(super) fn u32be(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map_or(0, |s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

pub(super) fn u64le(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8).map_or(0, |s| {
        u64::from_le_bytes([s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]])
    })
}
