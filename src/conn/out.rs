//! The output queue of one connection: response heads (and small generated bodies) in a
//! reused byte buffer, cached file bodies as shared memory, and file bodies as (fd, range)
//! for `sendfile`, and streamed body pieces (a CGI child's or an upstream's output, already
//! framed) in buffers of their own. Pipelined responses pile up here and leave in one
//! `sendmsg`.
use std::collections::VecDeque;
use std::fs::File;
use std::io::IoSlice;
use std::rc::Rc;

pub enum Chunk {
    /// `buf[start..end]` of the queue's own buffer.
    Buf { start: usize, end: usize },
    /// A slice of shared memory (a cached file body).
    Mem {
        data: Rc<[u8]>,
        start: usize,
        end: usize,
    },
    /// `file[pos..end]`, sent with `sendfile`.
    File { file: Rc<File>, pos: u64, end: u64 },
    /// `data[start..]`: a piece of a streamed body of unknown length, owned by the queue
    /// (not in `buf`, which only empties when everything is written: a stream that never
    /// lets the queue run dry would grow it without bound).
    Owned { data: Vec<u8>, start: usize },
}

#[derive(Default)]
pub struct Out {
    /// Heads and small bodies. Only appended to while chunks are pending; cleared when empty.
    pub buf: Vec<u8>,
    chunks: VecDeque<Chunk>,
    /// `buf[..sealed]` is covered by chunks.
    sealed: usize,
    queued: u64,
    /// The response being built answers HEAD: bodies are dropped (headers stay identical).
    head_only: bool,
}

/// At most this many iovecs per `sendmsg`.
pub const MAX_IOV: usize = 64;
/// Enough iovecs for almost every send (a head and its body); an array this small costs
/// next to nothing to initialise, where one of `MAX_IOV` cost ~150 instructions per send.
pub const FEW_IOV: usize = 4;
/// Memory bodies up to this size are copied into the head buffer rather than referenced.
pub const INLINE_MAX: usize = 2048;

impl Out {
    pub fn with_capacity(n: usize) -> Out {
        Out {
            buf: Vec::with_capacity(n),
            chunks: VecDeque::with_capacity(8),
            ..Out::default()
        }
    }

    /// Starts a response; with `head_only` every body pushed until the next call is dropped.
    pub fn begin(&mut self, head_only: bool) {
        self.head_only = head_only;
    }

    pub fn is_head_only(&self) -> bool {
        self.head_only
    }

    /// Covers bytes appended to `buf` since the last seal with a chunk.
    pub fn seal(&mut self) {
        let end = self.buf.len();
        if end == self.sealed {
            return;
        }
        self.queued += (end - self.sealed) as u64;
        match self.chunks.back_mut() {
            Some(Chunk::Buf { end: e, .. }) if *e == self.sealed => *e = end,
            _ => self.chunks.push_back(Chunk::Buf {
                start: self.sealed,
                end,
            }),
        }
        self.sealed = end;
    }

    /// Appends a body held in memory (unless answering HEAD). Small bodies are copied next
    /// to their head, so a batch of pipelined responses stays one iovec.
    pub fn push_mem(&mut self, data: &Rc<[u8]>, start: usize, end: usize) {
        if end.saturating_sub(start) <= INLINE_MAX {
            return self.push_bytes(data.get(start..end).unwrap_or(&[]));
        }
        self.seal();
        if self.head_only || start >= end {
            return;
        }
        self.queued += (end - start) as u64;
        self.chunks.push_back(Chunk::Mem {
            data: Rc::clone(data),
            start,
            end,
        });
    }

    /// Appends a body copied into the buffer (small generated bodies such as error pages).
    pub fn push_bytes(&mut self, bytes: &[u8]) {
        if !self.head_only {
            self.buf.extend_from_slice(bytes);
        }
        self.seal();
    }

    /// Appends a file range to be sent with `sendfile` (unless answering HEAD).
    pub fn push_file(&mut self, file: &Rc<File>, start: u64, end: u64) {
        self.seal();
        if self.head_only || start >= end {
            return;
        }
        self.queued += end - start;
        self.chunks.push_back(Chunk::File {
            file: Rc::clone(file),
            pos: start,
            end,
        });
    }

    /// Appends a piece of a streamed body that the queue takes ownership of (unless
    /// answering HEAD). Empty pieces are dropped.
    pub fn push_owned(&mut self, data: Vec<u8>) {
        self.seal();
        if self.head_only || data.is_empty() {
            return;
        }
        self.queued += data.len() as u64;
        self.chunks.push_back(Chunk::Owned { data, start: 0 });
    }

    /// Queued chunks: how many iovecs sending everything in memory would take.
    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty() && self.buf.len() == self.sealed
    }

    /// Bytes waiting to be written (used for back-pressure on pipelined input).
    pub fn queued(&self) -> u64 {
        self.queued
    }

    /// Fills `iov` with the leading memory chunks. Returns how many were filled and whether a
    /// file chunk follows them (so the caller can set `MSG_MORE`).
    pub fn gather<'a>(&'a self, iov: &mut [IoSlice<'a>]) -> (usize, bool) {
        let mut n = 0;
        for chunk in &self.chunks {
            if n == iov.len() {
                return (n, false);
            }
            iov[n] = match chunk {
                Chunk::Buf { start, end } => IoSlice::new(&self.buf[*start..*end]),
                Chunk::Mem { data, start, end } => IoSlice::new(&data[*start..*end]),
                Chunk::Owned { data, start } => IoSlice::new(&data[*start..]),
                Chunk::File { .. } => return (n, true),
            };
            n += 1;
        }
        (n, false)
    }

    /// The front chunk if it is a file: the file, the next offset, and the end offset.
    pub fn front_file(&mut self) -> Option<(&Rc<File>, &mut u64, u64)> {
        match self.chunks.front_mut() {
            Some(Chunk::File { file, pos, end }) => Some((file, pos, *end)),
            _ => None,
        }
    }

    /// Records that `n` bytes from the front were written.
    pub fn advance(&mut self, mut n: usize) {
        self.queued -= n as u64;
        while n > 0 {
            let Some(front) = self.chunks.front_mut() else {
                break;
            };
            let left = match front {
                Chunk::Buf { start, end } | Chunk::Mem { start, end, .. } => {
                    let take = n.min(*end - *start);
                    *start += take;
                    n -= take;
                    *end - *start
                }
                Chunk::File { pos, end, .. } => {
                    let take = (n as u64).min(*end - *pos);
                    *pos += take;
                    n -= take as usize;
                    (*end - *pos) as usize
                }
                Chunk::Owned { data, start } => {
                    let take = n.min(data.len() - *start);
                    *start += take;
                    n -= take;
                    data.len() - *start
                }
            };
            if left == 0 {
                self.chunks.pop_front();
            }
        }
        self.pop_empty();
    }

    /// Drops finished chunks at the front; once everything is written the buffer is reset.
    fn pop_empty(&mut self) {
        while let Some(front) = self.chunks.front() {
            let done = match front {
                Chunk::Buf { start, end } | Chunk::Mem { start, end, .. } => start >= end,
                Chunk::File { pos, end, .. } => pos >= end,
                Chunk::Owned { data, start } => *start >= data.len(),
            };
            if !done {
                return;
            }
            self.chunks.pop_front();
        }
        if self.buf.len() == self.sealed {
            self.buf.clear();
            self.sealed = 0;
        }
    }

    /// Notes that a file chunk at the front advanced to `pos` (after `sendfile`).
    pub fn file_advanced(&mut self, n: usize) {
        self.queued -= n as u64;
        self.pop_empty();
    }

    /// Forgets everything queued (the connection is closing).
    pub fn clear(&mut self) {
        self.chunks.clear();
        self.buf.clear();
        self.sealed = 0;
        self.queued = 0;
        self.head_only = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coalesces_and_advances() {
        let mut out = Out::default();
        out.buf.extend_from_slice(b"head1");
        let big: Rc<[u8]> = Rc::from(vec![b'B'; INLINE_MAX + 1]);
        out.push_mem(&big, 0, INLINE_MAX + 1);
        out.buf.extend_from_slice(b"head2");
        out.push_mem(&Rc::from(&b"small"[..]), 0, 5);
        out.push_bytes(b"xy");
        let gathered = |out: &Out| {
            let mut iov = [IoSlice::new(&[]); MAX_IOV];
            let (n, more) = out.gather(&mut iov);
            (
                n,
                more,
                iov[..n]
                    .iter()
                    .flat_map(|s| s.iter().copied())
                    .collect::<Vec<u8>>(),
            )
        };
        let want = [&b"head1"[..], &big[..], b"head2smallxy"].concat();
        assert_eq!(out.queued(), want.len() as u64);
        let (n, more, all) = gathered(&out);
        assert_eq!(
            (n, more),
            (3, false),
            "small bodies are inlined, big ones referenced"
        );
        assert_eq!(all, want);
        out.advance(7);
        assert_eq!(gathered(&out).2, &want[7..]);
        out.advance(want.len() - 7);
        assert!(out.is_empty());
        assert!(out.buf.is_empty());
    }

    #[test]
    fn owned_pieces_interleave_with_heads() {
        let mut out = Out::default();
        out.buf.extend_from_slice(b"HEAD");
        out.push_owned(b"one".to_vec());
        out.push_owned(Vec::new());
        out.push_owned(b"two".to_vec());
        out.push_bytes(b"end");
        assert_eq!((out.queued(), out.chunk_count()), (13, 4));
        out.advance(5);
        let mut iov = [IoSlice::new(&[]); MAX_IOV];
        let (n, _) = out.gather(&mut iov);
        let rest: Vec<u8> = iov[..n].iter().flat_map(|s| s.iter().copied()).collect();
        assert_eq!(rest, b"netwoend");
        out.advance(8);
        assert!(out.is_empty());
    }

    #[test]
    fn head_only_drops_bodies() {
        let mut out = Out::default();
        out.begin(true);
        out.buf.extend_from_slice(b"head");
        let body: Rc<[u8]> = Rc::from(&b"BODY"[..]);
        out.push_mem(&body, 0, 4);
        out.push_bytes(b"page");
        assert_eq!(out.queued(), 4);
    }
}
