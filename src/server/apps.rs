//! Application processes tern keeps alive for proxy routes (`command = [...]`, pyminihttpd's
//! "wsgi: without running another service"): started when the loop starts (so after the
//! privilege drop, as the user tern runs as), each in a process group of its own with
//! tern's environment, a clean signal mask and its output on tern's stderr, restarted with back-off (100 ms doubling to
//! 30 s, reset once it ran for 10 s) when it exits, and stopped at shutdown (SIGTERM to the
//! group, SIGKILL 5 s later). Children are reaped on SIGCHLD, never waited for in the loop.
//! Until the application accepts connections its route answers 503 (see the proxy task).
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

use super::Server;
use crate::config::{Config, RouteKind};
use crate::conn::Millis;
use crate::log::Level;

const FIRST_BACKOFF: Millis = 100;
const MAX_BACKOFF: Millis = 30_000;
const STABLE: Millis = 10_000;
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

pub struct App {
    argv: Vec<String>,
    child: Option<Child>,
    started: Millis,
    /// When to start it (again); `None` while it runs.
    next_start: Option<Millis>,
    backoff: Millis,
}

/// Every distinct `command` of the configuration's proxy routes.
pub fn from_config(cfg: &Config) -> Vec<App> {
    let mut apps: Vec<App> = Vec::new();
    for r in cfg.hosts.iter().flat_map(|h| h.routes.iter()) {
        if let RouteKind::Proxy(u) = &r.kind {
            if !u.command.is_empty() && !apps.iter().any(|a| a.argv == u.command) {
                apps.push(App {
                    argv: u.command.clone(),
                    child: None,
                    started: 0,
                    next_start: Some(0),
                    backoff: FIRST_BACKOFF,
                });
            }
        }
    }
    apps
}

impl Server {
    /// Starts the applications whose time has come.
    pub(super) fn start_apps(&mut self, now: Millis) {
        for i in 0..self.apps.len() {
            let app = &mut self.apps[i];
            if app.next_start.is_none_or(|t| now < t) {
                continue;
            }
            app.next_start = None;
            // Its output goes to tern's stderr (tern's stdout carries the listening lines).
            let out = std::os::fd::AsFd::as_fd(&std::io::stderr())
                .try_clone_to_owned()
                .map_or(Stdio::null(), Stdio::from);
            let spawned = Command::new(&app.argv[0])
                .args(&app.argv[1..])
                .stdin(Stdio::null())
                .stdout(out)
                .process_group(0)
                .spawn();
            match spawned {
                Ok(child) => {
                    let pid = child.id();
                    app.child = Some(child);
                    app.started = now;
                    let cmd = app.argv.join(" ");
                    self.handler
                        .log(Level::Info, format_args!("started {cmd} (pid {pid})"));
                }
                Err(e) => {
                    app.next_start = Some(now + app.backoff);
                    app.backoff = (app.backoff * 2).min(MAX_BACKOFF);
                    let cmd = app.argv.join(" ");
                    self.handler
                        .log(Level::Error, format_args!("cannot start {cmd}: {e}"));
                }
            }
        }
    }

    /// SIGCHLD: an application that exited is reaped and scheduled to start again.
    pub(super) fn reap_apps(&mut self, now: Millis) {
        for app in &mut self.apps {
            let Some(child) = &mut app.child else {
                continue;
            };
            let Ok(Some(status)) = child.try_wait() else {
                continue;
            };
            let pid = child.id();
            // Whatever it left running in its group goes too.
            crate::sys::process::kill_group(pid, libc::SIGKILL);
            app.child = None;
            if now.saturating_sub(app.started) >= STABLE {
                app.backoff = FIRST_BACKOFF;
            }
            app.next_start = Some(now + app.backoff);
            let wait = app.backoff;
            app.backoff = (app.backoff * 2).min(MAX_BACKOFF);
            let cmd = app.argv.join(" ");
            self.handler.log(
                Level::Warn,
                format_args!("{cmd} (pid {pid}) exited ({status}); starting it again in {wait} ms"),
            );
        }
    }

    /// The next time an application is due to start.
    pub(super) fn apps_deadline(&self) -> Millis {
        self.apps
            .iter()
            .filter_map(|a| a.next_start)
            .min()
            .unwrap_or(Millis::MAX)
    }

    /// At exit: SIGTERM to every application's group, SIGKILL after a grace period.
    pub(super) fn stop_apps(&mut self) {
        for app in &mut self.apps {
            app.next_start = None;
            if let Some(c) = &app.child {
                crate::sys::process::kill_group(c.id(), libc::SIGTERM);
            }
        }
        let until = std::time::Instant::now() + STOP_GRACE;
        for app in &mut self.apps {
            let Some(mut child) = app.child.take() else {
                continue;
            };
            loop {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if std::time::Instant::now() >= until => {
                        crate::sys::process::kill_group(child.id(), libc::SIGKILL);
                        let _ = child.wait();
                        break;
                    }
                    // Exiting: the loop has stopped serving, so a short wait is fine here.
                    Ok(None) => std::thread::sleep(std::time::Duration::from_millis(20)),
                }
            }
        }
    }
}
