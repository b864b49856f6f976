//! The checks every request of a site passes before its route runs: the address rules
//! (`allow`/`deny`, 403) and Basic authentication (401 with the realm's challenge, 429 when
//! the address failed too often). A site with neither costs one branch.
use std::rc::Rc;

use super::{Handler, Sent};
use crate::auth::state::{HashJob, Verdict};
use crate::conn::{Exchange, Out};
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
            Verdict::TooMany => Some(self.error(out, 429, ex.persist, b"Retry-After: 60\r\n")),
            Verdict::Hash(job) => {
                let ok = self.run_hash(&job, ex.now);
                if ok {
                    None
                } else {
                    Some(self.error(out, 401, ex.persist, &auth.challenge))
                }
            }
        }
    }

    /// Computes a hash and records its verdict.
    fn run_hash(&mut self, job: &HashJob, now: crate::conn::Millis) -> bool {
        let ok = job.run();
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
