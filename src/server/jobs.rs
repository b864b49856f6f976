//! Blocking work off the loop: a job (an fsync and rename, a password hash) runs on a helper
//! thread, and its result comes back through a descriptor in the poll set, with the id of
//! whoever posted it. The loop never waits: [`Jobs::post`] only queues, and
//! [`Jobs::take_done`] only takes what has finished.
//!
//! The wake-up is one end of a socket pair: a worker writes a byte after pushing a result,
//! the loop (woken by readability) drains the bytes and then the results. The write side is
//! non-blocking and a full buffer is fine: a byte already waiting guarantees a wake-up.
//! Threads are started on the first post, so a server that never posts has none; they
//! inherit the loop's blocked signal mask (signals reach only the signalfd).
use std::any::Any;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

/// A finished job: who posted it and what it produced.
pub struct Done {
    pub owner: u64,
    pub result: Box<dyn Any + Send>,
}

type Work = Box<dyn FnOnce() -> Box<dyn Any + Send> + Send>;
type Queue = Arc<Mutex<mpsc::Receiver<(u64, Work)>>>;

pub struct Jobs {
    threads: usize,
    tx: Option<mpsc::Sender<(u64, Work)>>,
    rx: Option<Queue>,
    done: Arc<Mutex<VecDeque<Done>>>,
    wake_rx: UnixStream,
    wake_tx: Arc<UnixStream>,
    workers: Vec<JoinHandle<()>>,
    in_flight: usize,
}

impl Jobs {
    /// A job queue served by up to `threads` helper threads (at least one).
    pub fn new(threads: usize) -> io::Result<Jobs> {
        let (wake_rx, wake_tx) = UnixStream::pair()?;
        wake_rx.set_nonblocking(true)?;
        wake_tx.set_nonblocking(true)?;
        let (tx, rx) = mpsc::channel();
        Ok(Jobs {
            threads: threads.max(1),
            tx: Some(tx),
            rx: Some(Arc::new(Mutex::new(rx))),
            done: Arc::new(Mutex::new(VecDeque::new())),
            wake_rx,
            wake_tx: Arc::new(wake_tx),
            workers: Vec::new(),
            in_flight: 0,
        })
    }

    /// The descriptor to poll for readability.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.wake_rx.as_fd()
    }

    /// Jobs posted and not yet taken back.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Runs `work` on a helper thread; its result comes back from [`take_done`] with
    /// `owner`. A result whose owner is gone by then is simply dropped (its `Drop` cleans
    /// up).
    pub fn post<R: Any + Send>(&mut self, owner: u64, work: impl FnOnce() -> R + Send + 'static) {
        if self.workers.len() < self.threads.min(self.in_flight + 1) {
            self.spawn_worker();
        }
        let job: Work = Box::new(move || Box::new(work()) as Box<dyn Any + Send>);
        if let Some(tx) = &self.tx {
            if tx.send((owner, job)).is_ok() {
                self.in_flight += 1;
            }
        }
    }

    fn spawn_worker(&mut self) {
        let Some(rx) = self.rx.clone() else { return };
        let done = Arc::clone(&self.done);
        let wake = Arc::clone(&self.wake_tx);
        let spawned = std::thread::Builder::new()
            .name("tern-job".into())
            .spawn(move || loop {
                let next = match rx.lock() {
                    Ok(rx) => rx.recv(),
                    Err(_) => return,
                };
                let Ok((owner, work)) = next else { return };
                let result = work();
                if let Ok(mut q) = done.lock() {
                    q.push_back(Done { owner, result });
                }
                let _ = (&*wake).write(&[1]);
            });
        if let Ok(handle) = spawned {
            self.workers.push(handle);
        }
    }

    /// Everything finished since the last call (call when the descriptor is readable).
    pub fn take_done(&mut self) -> Vec<Done> {
        let mut buf = [0u8; 64];
        while matches!((&self.wake_rx).read(&mut buf), Ok(n) if n > 0) {}
        let taken: Vec<Done> = match self.done.lock() {
            Ok(mut q) => q.drain(..).collect(),
            Err(_) => Vec::new(),
        };
        self.in_flight -= taken.len().min(self.in_flight);
        taken
    }
}

impl Drop for Jobs {
    fn drop(&mut self) {
        // Closing the queue ends each worker after its current job.
        self.tx = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Waits (in the test only) until the wake-up descriptor is readable.
    fn wait_readable(jobs: &Jobs) {
        use std::os::fd::AsRawFd;
        let mut poll = mio::Poll::new().unwrap();
        let fd = jobs.fd().as_raw_fd();
        poll.registry()
            .register(
                &mut mio::unix::SourceFd(&fd),
                mio::Token(0),
                mio::Interest::READABLE,
            )
            .unwrap();
        let mut events = mio::Events::with_capacity(4);
        poll.poll(&mut events, Some(std::time::Duration::from_secs(10)))
            .unwrap();
        assert!(!events.is_empty(), "no wake-up within 10 s");
    }

    #[test]
    fn results_come_back_with_their_owner_through_the_descriptor() {
        let mut jobs = Jobs::new(2).unwrap();
        assert!(jobs.take_done().is_empty(), "nothing posted, nothing done");
        assert!(jobs.workers.is_empty(), "no thread before the first post");
        let (go_tx, go_rx) = mpsc::channel::<()>();
        // The first job blocks until told: the loop side is never made to wait for it.
        jobs.post(7, move || {
            go_rx.recv().unwrap();
            "slow"
        });
        jobs.post(9, || 6 * 7);
        let mut got = Vec::new();
        while got.len() < 2 {
            wait_readable(&jobs);
            for d in jobs.take_done() {
                if d.owner == 9 {
                    let _ = go_tx.send(());
                }
                got.push(d);
            }
        }
        assert_eq!(jobs.in_flight(), 0);
        assert_eq!(got[0].owner, 9, "the quick job finished first");
        assert_eq!(got[0].result.downcast_ref::<i32>(), Some(&42));
        assert_eq!(got[1].owner, 7);
        assert_eq!(got[1].result.downcast_ref::<&str>(), Some(&"slow"));
        assert!(jobs.workers.len() <= 2);
    }
}
