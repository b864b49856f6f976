//! The checks every request of a site passes before its route runs: the address rules
//! (`allow`/`deny`, 403) and Basic authentication (401 with the realm's challenge, 429 when
//! the address failed too often). A site with neither costs one branch.
use std::rc::Rc;

use super::{Handler, Sent, Site};
use crate::auth::state::{HashJob, Verdict};
use crate::conn::{Exchange, Out};
use crate::dynamic::{Cx, Event, Leftover, Logged, Task};
use crate::fs::Fs;
use crate::log::Level;

impl<F: Fs> Handler<F> {
    /// `Some` when the request was answered here (refused).
    #[inline(always)]
    pub(super) fn guard(&mut self, ex: &mut Exchange<'_>, out: &mut Out) -> Option<Sent> {
        if self.site.access.is_none() && self.site.auth.is_none() {
            return None;
        }
        self.guard_checks(ex, out)
    }

    #[inline(never)]
    fn guard_checks(&mut self, ex: &mut Exchange<'_>, out: &mut Out) -> Option<Sent> {
        let site = Rc::clone(&self.site);
        if let Some(rules) = &site.access {
            if !rules.admits(ex.peer) {
                return Some(self.error(out, 403, ex.persist, b""));
            }
        }
        let auth = site.auth.as_ref()?;
        if !auth.covers(ex.req.method) {
            return None;
        }
        let value = ex.req.authorization.map(|s| s.get(ex.head));
        let mut note = None;
        let verdict = self
            .auth
            .check(auth.file, value, ex.peer, ex.now, &mut note);
        if let Some(n) = note {
            self.log(Level::Warn, format_args!("{n}"));
        }
        match verdict {
            Verdict::Admit => None,
            Verdict::Challenge(why) => {
                self.debug(format_args!("{}: 401: {why}", ex.peer));
                Some(self.error(out, 401, ex.persist, &auth.challenge))
            }
            Verdict::TooMany { retry_after } => {
                let extra: &[u8] = if retry_after <= 1 {
                    b"Retry-After: 1\r\n"
                } else {
                    b"Retry-After: 60\r\n"
                };
                Some(self.error(out, 429, ex.persist, extra))
            }
            Verdict::Hash(job) => {
                // The hash runs on a job thread; the request waits (its body unread, no
                // 100 Continue) and starts over once the verdict is in the cache.
                let task = AuthTask {
                    job: Some(job),
                    site: Rc::clone(&site),
                    logged: Logged::of(ex),
                    head: ex.head.to_vec(),
                };
                let how = crate::conn::Await {
                    body: crate::conn::BodyUse::Hold,
                    max_body: site.max_body,
                };
                Some(self.answer_later(how, Box::new(task)))
            }
        }
    }

    /// Records the verdict of a hash (see [`AuthTask`]).
    pub(super) fn hash_verdict(
        &mut self,
        job: &HashJob,
        ok: bool,
        now: crate::conn::Millis,
    ) -> bool {
        let admitted = self.auth.finish(job, ok, now);
        self.debug(format_args!(
            "{}: auth: hash {} for {} user {}: {} (hashes so far: {})",
            job.peer,
            job.hash.scheme(),
            if job.known { "known" } else { "unknown" },
            job.user.escape_debug(),
            if admitted { "verified" } else { "failed" },
            crate::auth::verify::count(),
        ));
        admitted
    }

    fn debug(&mut self, msg: std::fmt::Arguments<'_>) {
        if self
            .error_log
            .as_ref()
            .is_some_and(|l| l.enabled(Level::Debug))
        {
            self.log(Level::Debug, msg);
        }
    }
}

/// A request waiting for its password hash: posts the hash to the job thread, then either
/// makes the connection serve the request again (now admitted from the cache) or answers
/// 401. Holds no descriptor.
struct AuthTask {
    job: Option<HashJob>,
    site: Rc<Site>,
    logged: Logged,
    /// The whole head, for a request that reached this route by an internal redirect
    /// (which `Conn::restart` cannot take back): it is redirected to itself instead.
    head: Vec<u8>,
}

impl Task for AuthTask {
    fn on(&mut self, ev: Event, cx: &mut Cx<'_>) {
        match ev {
            Event::Start => {
                if let Some(job) = self.job.take() {
                    let posted = cx.post(move || {
                        let ok = job.run();
                        (job, ok)
                    });
                    if posted.is_err() {
                        // No helper thread to hash on: the loop must not do it itself.
                        let len = cx.answer_error(&self.site, 503);
                        self.log(cx, 503, len);
                    }
                }
            }
            Event::Job(result) => {
                let Ok(done) = result.downcast::<(HashJob, bool)>() else {
                    return;
                };
                let (job, ok) = *done;
                if cx.heads.auth_verdict(&job, ok, cx.now) {
                    if cx.conn.restart(cx.now, cx.lim)
                        || cx.conn.internal_redirect(std::mem::take(&mut self.head))
                    {
                        return;
                    }
                    // Neither could take the head back: let the client try again.
                    let len = cx.answer_error(&self.site, 503);
                    self.log(cx, 503, len);
                    return;
                }
                let challenge = self.site.auth.as_ref().map_or(&[][..], |a| &a.challenge);
                let (heads, site) = (&mut *cx.heads, &self.site);
                let mut len = 0;
                cx.conn
                    .answer(cx.now, cx.lim, crate::conn::AnswerBody::Complete, |a| {
                        len = heads.error_with(site, a.out, 401, a.persist, challenge);
                    });
                self.log(cx, 401, len);
            }
            _ => {}
        }
    }

    fn end(&mut self, _registry: &mio::Registry) -> Leftover {
        Leftover::None
    }
}

impl AuthTask {
    fn log(&self, cx: &mut Cx<'_>, status: u16, bytes: u64) {
        self.logged.write(cx.heads, &self.site, status, bytes);
    }
}
