//! Signals as events: the signals tern handles get handlers (`signal-hook`, `SA_RESTART`)
//! that record the signal and write a byte to a non-blocking pipe, which the event loop
//! polls like any socket. Nothing is blocked: a child tern starts (`posix_spawn` keeps the
//! parent's signal mask) begins with an empty mask, and exec resets caught signals to their
//! default action, so a CGI script or an application gets SIGTERM, SIGINT, SIGHUP and
//! SIGCHLD like a process started from a shell. (A blocked `signalfd` set would be inherited
//! by every child: SIGTERM would not stop them, and a gunicorn master would never hear of
//! its workers' exits.)
use std::io;

use mio::event::Source;
use mio::{Interest, Registry, Token};
use signal_hook_mio::v1_0::Signals as Inner;

pub struct Signals {
    inner: Inner,
}

impl Signals {
    /// Installs handlers for `signals`; the returned source becomes readable when one of
    /// them arrived.
    pub fn new(signals: &[i32]) -> io::Result<Signals> {
        Ok(Signals {
            inner: Inner::new(signals)?,
        })
    }

    /// The signals that arrived since the last call (each once, however often it came).
    pub fn pending(&mut self) -> impl Iterator<Item = i32> + '_ {
        self.inner.pending()
    }
}

impl Source for Signals {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        self.inner.register(registry, token, interests)
    }

    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        self.inner.reregister(registry, token, interests)
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        self.inner.deregister(registry)
    }
}
