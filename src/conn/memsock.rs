//! An in-memory socket for driving a [`Conn`](super::Conn) without the kernel: input arrives
//! in chunks the test chooses, output is collected, and the write side can be throttled to
//! simulate a slow or stalled reader. Used by unit tests and by the fuzz targets.
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, IoSlice};
use std::os::unix::fs::FileExt;

use super::io::Socket;

#[derive(Default)]
pub struct MemSocket {
    /// Chunks the peer has sent and we have not read yet.
    pub input: VecDeque<Vec<u8>>,
    /// The peer has shut down its write side (after `input` is consumed, reads return 0).
    pub eof: bool,
    /// Everything written to the peer.
    pub output: Vec<u8>,
    /// Bytes the peer will accept before writes block; `None` is unlimited.
    pub write_room: Option<usize>,
    /// Our side called `shutdown(SHUT_WR)`.
    pub shut_write: bool,
    /// System calls made, by kind (reads, sends, sendfiles), for cost assertions.
    pub reads: usize,
    pub sends: usize,
    pub sendfiles: usize,
}

impl MemSocket {
    pub fn new() -> MemSocket {
        MemSocket::default()
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.input.push_back(bytes.to_vec());
    }

    fn room(&self, want: usize) -> io::Result<usize> {
        if self.shut_write {
            return Err(io::Error::from(io::ErrorKind::BrokenPipe));
        }
        match self.write_room {
            Some(0) => Err(io::Error::from(io::ErrorKind::WouldBlock)),
            Some(r) => Ok(r.min(want)),
            None => Ok(want),
        }
    }

    fn took(&mut self, n: usize) {
        if let Some(r) = &mut self.write_room {
            *r -= n;
        }
    }
}

impl Socket for MemSocket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reads += 1;
        let Some(front) = self.input.front_mut() else {
            return if self.eof {
                Ok(0)
            } else {
                Err(io::Error::from(io::ErrorKind::WouldBlock))
            };
        };
        let n = front.len().min(buf.len());
        buf[..n].copy_from_slice(&front[..n]);
        front.drain(..n);
        if front.is_empty() {
            self.input.pop_front();
        }
        Ok(n)
    }

    fn send(&mut self, bufs: &[IoSlice<'_>], _more: bool) -> io::Result<usize> {
        self.sends += 1;
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        let mut left = self.room(total)?;
        let n = left;
        for b in bufs {
            let take = left.min(b.len());
            self.output.extend_from_slice(&b[..take]);
            left -= take;
        }
        self.took(n);
        Ok(n)
    }

    fn sendfile(&mut self, file: &File, offset: &mut u64, len: usize) -> io::Result<usize> {
        // `pread` stands in for sendfile: the same offsets, and 0 past the end of a file that
        // shrank (which the driver reports as `FileTruncated`).
        self.sendfiles += 1;
        let want = self.room(len)?;
        let mut buf = vec![0; want];
        let n = file.read_at(&mut buf, *offset)?;
        self.output.extend_from_slice(&buf[..n]);
        *offset += n as u64;
        self.took(n);
        Ok(n)
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        self.shut_write = true;
        Ok(())
    }
}
