//! Blocking work off the loop: a job (an fsync and rename, a password hash) runs on a helper
//! thread, and its result comes back through a descriptor in the poll set, with the id of
//! whoever posted it. The loop never waits: [`Jobs::post`] only queues, and
//! [`Jobs::take_done`] only takes what has finished.
//!
//! The wake-up is one end of a socket pair: a worker writes a byte after pushing a result,
//! the loop (woken by readability) drains the bytes and then the results. The write side is
//! non-blocking and a full buffer is fine: a byte already waiting guarantees a wake-up.
//! The socket pair and the threads are made on the first post (and the pair registered
//! then), so a server that never posts has neither (not even two descriptors). A signal
//! that lands on a worker runs the same handler (it records the signal and wakes the loop).
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
    /// The wake-up pair, made (and registered) on the first post.
    wake: Option<(UnixStream, Arc<UnixStream>)>,
    token: mio::Token,
    workers: Vec<JoinHandle<()>>,
    in_flight: usize,
}

impl Jobs {
    /// A job queue served by up to `threads` helper threads (at least one), whose wake-up
    /// descriptor is registered with `token` when first needed.
    pub fn new(threads: usize, token: mio::Token) -> Jobs {
        let (tx, rx) = mpsc::channel();
        Jobs {
            threads: threads.max(1),
            tx: Some(tx),
            rx: Some(Arc::new(Mutex::new(rx))),
            done: Arc::new(Mutex::new(VecDeque::new())),
            wake: None,
            token,
            workers: Vec::new(),
            in_flight: 0,
        }
    }

    /// The descriptor polled for readability (once made).
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.wake.as_ref().map(|(rx, _)| rx.as_fd())
    }

    /// Makes and registers the wake-up pair.
    fn wake_pair(&mut self, registry: &mio::Registry) -> io::Result<Arc<UnixStream>> {
        if let Some((_, tx)) = &self.wake {
            return Ok(Arc::clone(tx));
        }
        use std::os::fd::AsRawFd;
        let (rx, tx) = UnixStream::pair()?;
        rx.set_nonblocking(true)?;
        tx.set_nonblocking(true)?;
        registry.register(
            &mut mio::unix::SourceFd(&rx.as_raw_fd()),
            self.token,
            mio::Interest::READABLE,
        )?;
        let tx = Arc::new(tx);
        self.wake = Some((rx, Arc::clone(&tx)));
        Ok(tx)
    }

    /// Jobs posted and not yet taken back.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Runs `work` on a helper thread; its result comes back from [`take_done`] with
    /// `owner`. A result whose owner is gone by then is simply dropped (its `Drop` cleans
    /// up). Fails only if the wake-up pair cannot be made (out of descriptors).
    pub fn post<R: Any + Send>(
        &mut self,
        owner: u64,
        registry: &mio::Registry,
        work: impl FnOnce() -> R + Send + 'static,
    ) -> io::Result<()> {
        let wake = self.wake_pair(registry)?;
        if self.workers.len() < self.threads.min(self.in_flight + 1) {
            self.spawn_worker(wake);
        }
        let job: Work = Box::new(move || Box::new(work()) as Box<dyn Any + Send>);
        if let Some(tx) = &self.tx {
            if tx.send((owner, job)).is_ok() {
                self.in_flight += 1;
            }
        }
        Ok(())
    }

    fn spawn_worker(&mut self, wake: Arc<UnixStream>) {
        let Some(rx) = self.rx.clone() else { return };
        let done = Arc::clone(&self.done);
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
        if let Some((rx, _)) = &self.wake {
            while matches!((&*rx).read(&mut buf), Ok(n) if n > 0) {}
        }
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
    fn wait_readable(poll: &mut mio::Poll) {
        let mut events = mio::Events::with_capacity(4);
        poll.poll(&mut events, Some(std::time::Duration::from_secs(10)))
            .unwrap();
        assert!(
            events.iter().any(|e| e.token() == mio::Token(5)),
            "no wake-up within 10 s"
        );
    }

    #[test]
    fn results_come_back_with_their_owner_through_the_descriptor() {
        let mut poll = mio::Poll::new().unwrap();
        let mut jobs = Jobs::new(2, mio::Token(5));
        assert!(jobs.take_done().is_empty(), "nothing posted, nothing done");
        assert!(jobs.workers.is_empty(), "no thread before the first post");
        assert!(jobs.fd().is_none(), "no descriptor before the first post");
        let (go_tx, go_rx) = mpsc::channel::<()>();
        // The first job blocks until told: the loop side is never made to wait for it.
        let reg = poll.registry().try_clone().unwrap();
        jobs.post(7, &reg, move || {
            go_rx.recv().unwrap();
            "slow"
        })
        .unwrap();
        jobs.post(9, &reg, || 6 * 7).unwrap();
        let mut got = Vec::new();
        while got.len() < 2 {
            wait_readable(&mut poll);
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
