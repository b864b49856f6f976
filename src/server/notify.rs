//! systemd notification (`sd_notify(3)`), for `Type=notify` and `Type=notify-reload` alike:
//! `READY=1` once serving, `STATUS=` every few seconds, `RELOADING=1` + `MONOTONIC_USEC=` and
//! then `READY=1` around each SIGHUP, `STOPPING=1` when a graceful shutdown begins, and
//! `WATCHDOG=1` every half of `WATCHDOG_USEC`. It owns the schedule and the status text; the
//! socket is `sys::notify`. Nothing here runs per request: the request rate is computed from
//! the connections' own counters when the status is due.
use std::collections::VecDeque;
use std::ffi::OsString;

use super::Server;
use crate::conn::Millis;
use crate::log::Level;
use crate::sys::notify::{monotonic_usec, NotifySocket};

/// How often `STATUS=` is refreshed (sent only when its text changed).
const STATUS_EVERY: Millis = 5000;
/// The window of the request rate.
const RATE_WINDOW: Millis = 60_000;

/// The environment's request: where to notify, and how often to pet the watchdog.
#[derive(Debug, PartialEq)]
struct Wanted {
    socket: OsString,
    watchdog: Option<Millis>,
}

/// Parses `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` (our pid is `me`), as
/// `sd_watchdog_enabled(3)` does: a watchdog meant for another pid is not ours.
fn parse(
    socket: Option<OsString>,
    usec: Option<OsString>,
    pid: Option<OsString>,
    me: u32,
) -> Result<Option<Wanted>, String> {
    let Some(socket) = socket.filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let number = |name: &str, v: &OsString| {
        v.to_str()
            .and_then(|s| s.parse::<u64>().ok())
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("{name}={v:?}: not a positive integer"))
    };
    let ours = match &pid {
        Some(p) => number("WATCHDOG_PID", p)? == u64::from(me),
        None => true,
    };
    let watchdog = match usec {
        Some(u) if ours => {
            // Half the period, as systemd recommends, and at least a millisecond.
            Some((number("WATCHDOG_USEC", &u)? / 2000).max(1))
        }
        _ => None,
    };
    Ok(Some(Wanted { socket, watchdog }))
}

/// systemd's notification socket and the watchdog period, taken from the environment.
pub struct Notifier {
    sock: NotifySocket,
    watchdog: Option<Millis>,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` and removes them from the
    /// environment, so that no child process ever notifies systemd in tern's name. `None`
    /// when not started by systemd (or a notifying supervisor); an error for a variable that
    /// is set but unusable. Call it while tern has one thread (before the event loop).
    pub fn from_env() -> Result<Option<Notifier>, String> {
        let names = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"];
        let [socket, usec, pid] = names.map(std::env::var_os);
        for name in names {
            std::env::remove_var(name);
        }
        let Some(w) = parse(socket, usec, pid, std::process::id())? else {
            return Ok(None);
        };
        let sock = NotifySocket::new(&w.socket)
            .map_err(|e| format!("NOTIFY_SOCKET={:?}: {e}", w.socket))?;
        Ok(Some(Notifier {
            sock,
            watchdog: w.watchdog,
        }))
    }
}

/// The notifier and its schedule, as the server holds it.
pub(super) struct Notify {
    n: Notifier,
    next_status: Millis,
    next_watchdog: Millis,
    /// `(time, requests served so far)`, one per status refresh, spanning the rate window.
    samples: VecDeque<(Millis, u64)>,
    last_status: String,
    reload_failed: bool,
    send_failed: bool,
}

/// Requests per second between the oldest sample and `(now, total)`.
fn rate(samples: &VecDeque<(Millis, u64)>, now: Millis, total: u64) -> f64 {
    match samples.front() {
        Some(&(t, n)) if now > t => (total - n) as f64 * 1000.0 / (now - t) as f64,
        _ => 0.0,
    }
}

fn status_text(conns: usize, rate: f64, reload_failed: bool) -> String {
    let s = if conns == 1 { "" } else { "s" };
    let mut text = format!("{conns} connection{s}, {rate:.1} requests/s over the last minute");
    if reload_failed {
        text.push_str("; last reload failed, old configuration kept");
    }
    text
}

impl Server {
    /// Notifies systemd through `n` from now on.
    pub fn set_notifier(&mut self, n: Notifier) {
        self.notify = Some(Notify {
            n,
            next_status: 0,
            next_watchdog: 0,
            samples: VecDeque::with_capacity((RATE_WINDOW / STATUS_EVERY) as usize + 2),
            last_status: String::new(),
            reload_failed: false,
            send_failed: false,
        });
    }

    fn notify_send(&mut self, msg: &str) {
        let Some(n) = &mut self.notify else { return };
        match n.n.sock.send(msg) {
            Ok(()) => n.send_failed = false,
            Err(e) if !n.send_failed => {
                // Logged once per run of failures: a vanished systemd must not flood the log.
                n.send_failed = true;
                self.handler
                    .log(Level::Warn, format_args!("NOTIFY_SOCKET: {e}"));
            }
            Err(_) => {}
        }
    }

    /// `READY=1` (at start, once the `listening on` lines are out, and after a reload),
    /// followed by a fresh status.
    pub(super) fn notify_ready(&mut self, now: Millis) {
        if self.notify.is_none() {
            return;
        }
        self.notify_send("READY=1");
        self.notify_status(now);
    }

    /// The start of a reload: `MONOTONIC_USEC=` must travel in the same datagram.
    pub(super) fn notify_reloading(&mut self) {
        if self.notify.is_some() {
            let msg = format!("RELOADING=1\nMONOTONIC_USEC={}", monotonic_usec());
            self.notify_send(&msg);
        }
    }

    pub(super) fn notify_reload_failed(&mut self, failed: bool) {
        if let Some(n) = &mut self.notify {
            n.reload_failed = failed;
        }
    }

    pub(super) fn notify_stopping(&mut self) {
        self.notify_send("STOPPING=1");
    }

    /// When the loop must wake up next for systemd (`Millis::MAX`: never).
    pub(super) fn notify_deadline(&self) -> Millis {
        match &self.notify {
            Some(n) => n.next_status.min(n.next_watchdog),
            None => Millis::MAX,
        }
    }

    /// Sends whatever is due: the watchdog ping, the status.
    pub(super) fn notify_tick(&mut self, now: Millis) {
        let Some(n) = &mut self.notify else { return };
        if now >= n.next_watchdog {
            match n.n.watchdog {
                Some(every) => {
                    n.next_watchdog = now + every;
                    self.notify_send("WATCHDOG=1");
                }
                None => n.next_watchdog = Millis::MAX,
            }
        }
        if self.notify.as_ref().is_some_and(|n| now >= n.next_status) {
            self.notify_status(now);
        }
    }

    /// Samples the request count and sends `STATUS=` if its text changed.
    fn notify_status(&mut self, now: Millis) {
        let live: u64 = self.conns.iter().map(|(_, s)| s.conn.served() as u64).sum();
        let total = self.served_closed + live;
        let conns = self.conns.len();
        let Some(n) = &mut self.notify else { return };
        n.next_status = now + STATUS_EVERY;
        n.samples.push_back((now, total));
        // Keep the newest sample at least a window old, and everything after it.
        while n.samples.len() > 1 && n.samples[1].0 + RATE_WINDOW <= now {
            n.samples.pop_front();
        }
        let text = status_text(conns, rate(&n.samples, now, total), n.reload_failed);
        if text != n.last_status {
            let msg = format!("STATUS={text}");
            n.last_status = text;
            self.notify_send(&msg);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(s: &str) -> Option<OsString> {
        Some(s.into())
    }

    #[test]
    fn environment() {
        let want = |socket: &str, watchdog| {
            Ok(Some(Wanted {
                socket: socket.into(),
                watchdog,
            }))
        };
        assert_eq!(parse(None, os("200000"), None, 7), Ok(None));
        assert_eq!(parse(os(""), None, None, 7), Ok(None));
        assert_eq!(parse(os("/run/n"), None, None, 7), want("/run/n", None));
        assert_eq!(
            parse(os("@n"), os("200000"), None, 7),
            want("@n", Some(100))
        );
        assert_eq!(
            parse(os("@n"), os("200000"), os("7"), 7),
            want("@n", Some(100))
        );
        // Another process's watchdog, and one too short to halve in milliseconds.
        assert_eq!(parse(os("@n"), os("200000"), os("8"), 7), want("@n", None));
        assert_eq!(parse(os("@n"), os("1000"), None, 7), want("@n", Some(1)));
        assert!(parse(os("@n"), os("soon"), None, 7).is_err());
        assert!(parse(os("@n"), os("0"), None, 7).is_err());
        assert!(parse(os("@n"), os("200000"), os("x"), 7).is_err());
    }

    #[test]
    fn socket_names() {
        assert!(NotifySocket::new("relative".as_ref()).is_err());
        assert!(NotifySocket::new("@".as_ref()).is_err());
        assert!(NotifySocket::new("vsock:2:1234".as_ref()).is_err());
        assert!(NotifySocket::new("@abstract".as_ref()).is_ok());
        assert!(NotifySocket::new("/run/systemd/notify".as_ref()).is_ok());
    }

    #[test]
    fn rate_and_text() {
        let mut s = VecDeque::new();
        assert_eq!(rate(&s, 0, 0), 0.0);
        s.push_back((0, 0));
        assert_eq!(rate(&s, 0, 0), 0.0);
        assert_eq!(rate(&s, 4000, 10), 2.5);
        assert_eq!(
            status_text(1, 2.5, false),
            "1 connection, 2.5 requests/s over the last minute"
        );
        assert_eq!(
            status_text(0, 0.0, true),
            "0 connections, 0.0 requests/s over the last minute; \
             last reload failed, old configuration kept"
        );
    }
}
