//! The second slab: descriptors that are not clients (a CGI child's pipes, an upstream
//! socket), each entry a [`Task`] bound to one connection. This file is the one place where
//! a task is bound to its connection ([`Server::after_turn`], right after the handler made
//! it) and unbound ([`Server::unbind`]: the connection no longer awaits, or closes), and
//! where events reach tasks: readiness of their descriptors, SIGCHLD, finished jobs, and a
//! nudge after each turn of their connection.
//!
//! Tokens: aux key `k` owns tokens `AUX_BASE + k * MAX_FDS ..`, far above the connections'.
//! Upstream connections of the proxy's pool have tokens of their own (`POOL_BASE + key`,
//! between the two): they outlive the tasks that use them, and their events go to the task
//! using one at the time ([`Server::on_pool_event`]).
//! A stale event for a descriptor closed earlier in the batch can reach a task that reused
//! the key: tasks treat readiness as a hint (the next call says `EAGAIN`), so it costs a
//! syscall, never a wrong answer. Jobs name their task by key and generation, so a job of a
//! task unbound meanwhile is dropped, never delivered to its successor.
use mio::event::Event as MioEvent;

use super::{Server, AUX_BASE};
use crate::conn::Millis;
use crate::dynamic::{Cx, Event, Leftover, Task, MAX_FDS};
use crate::log::Level;

pub struct Aux {
    /// The connection (slab key) this serves, and its generation.
    owner: usize,
    owner_gen: u32,
    generation: u32,
    task: Box<dyn Task>,
}

/// A child whose task was unbound: terminated, then reaped.
pub struct Orphan {
    child: std::process::Child,
    /// When SIGKILL follows (the SIGTERM went out at once unless the child was done).
    kill_at: Millis,
    /// Dropped once reaped.
    _guard: Option<Box<dyn std::any::Any>>,
}

/// How long a child gets between SIGTERM and SIGKILL.
const KILL_GRACE: Millis = 2_000;

fn job_owner(key: usize, generation: u32) -> u64 {
    ((key as u64) << 32) | u64::from(generation)
}

/// Sends `sig` to the process group the child leads (tasks start children in a group of
/// their own, so grandchildren go too).
fn signal_group(child: &std::process::Child, sig: i32) {
    crate::sys::process::kill_group(child.id(), sig);
}

impl Server {
    /// After a turn of connection `key`: binds the task the handler just made (only while
    /// the connection awaits; a request refused at once drops it), unbinds a task whose
    /// connection stopped awaiting, and nudges a bound task.
    pub(super) fn after_turn(&mut self, key: usize, now: Millis) {
        if let Some(task) = self.handler.started.take() {
            let Some(slot) = self.conns.get_mut(key) else {
                return;
            };
            if let (true, Some(old)) = (slot.conn.is_awaiting(), slot.aux) {
                // An internal redirect to another late answer, or a request that started
                // over (`Conn::restart`) and went pending again: the new task replaces the
                // old one.
                self.unbind(old);
            }
            let Some(slot) = self.conns.get_mut(key) else {
                return;
            };
            if slot.conn.is_awaiting() && slot.aux.is_none() {
                self.generation = self.generation.wrapping_add(1);
                let a = self.aux.insert(Aux {
                    owner: key,
                    owner_gen: slot.generation,
                    generation: self.generation,
                    task,
                });
                slot.aux = Some(a);
                self.run_task(a, Event::Start, now);
            } else {
                let mut task = task;
                let left = task.end(self.poll.registry());
                self.adopt(left, now);
            }
        }
        let Some(slot) = self.conns.get(key) else {
            return;
        };
        let Some(a) = slot.aux else { return };
        if !slot.conn.is_awaiting() {
            self.unbind(a);
            // The connection may go on with a pipelined request.
            self.again.push(key);
            return;
        }
        self.run_task(a, Event::Nudge, now);
    }

    /// Runs one event of task `a`; afterwards its connection is driven again if the task
    /// gave it something to do.
    fn run_task(&mut self, a: usize, ev: Event, now: Millis) {
        let Some(aux) = self.aux.get_mut(a) else {
            return;
        };
        let Some(slot) = self
            .conns
            .get_mut(aux.owner)
            .filter(|s| s.generation == aux.owner_gen)
        else {
            return;
        };
        let before = slot.conn.progress_mark();
        let sock = &slot.sock;
        let addrs = || sock.peer_addr().ok().zip(sock.local_addr().ok());
        let mut cx = Cx {
            conn: &mut slot.conn,
            lim: &self.lim,
            now,
            heads: &mut self.handler,
            registry: self.poll.registry(),
            jobs: &mut self.jobs,
            pool: &mut self.upstreams,
            scratch: &mut self.scratch,
            me: job_owner(a, aux.generation),
            base: AUX_BASE + a * MAX_FDS,
            addrs: &addrs,
        };
        aux.task.on(ev, &mut cx);
        // New output to write, the answer finished, or body bytes taken (room to read):
        // the connection gets a turn (never recursively: through `again`).
        if slot.conn.progress_mark() != before {
            let owner = aux.owner;
            if !self.again.contains(&owner) {
                self.again.push(owner);
            }
        }
    }

    /// An event of an upstream connection of the proxy's pool: for the task using it.
    pub(super) fn on_pool_event(&mut self, k: usize, event: &MioEvent, now: Millis) {
        let closed = event.is_read_closed() || event.is_write_closed() || event.is_error();
        let Some(user) = self.upstreams.event(k, event.is_readable(), closed) else {
            return;
        };
        let (a, generation) = ((user >> 32) as usize, user as u32);
        if self.aux.get(a).is_some_and(|x| x.generation == generation) {
            let ev = Event::Ready {
                fd: 0,
                readable: event.is_readable(),
                writable: event.is_writable(),
                closed,
            };
            self.run_task(a, ev, now);
        }
    }

    pub(super) fn on_aux_event(&mut self, t: usize, event: &MioEvent, now: Millis) {
        let (a, fd) = (t / MAX_FDS, t % MAX_FDS);
        if !self.aux.contains(a) {
            return;
        }
        let ev = Event::Ready {
            fd,
            readable: event.is_readable(),
            writable: event.is_writable(),
            closed: event.is_read_closed() || event.is_write_closed() || event.is_error(),
        };
        self.run_task(a, ev, now);
    }

    /// Unbinds task `a` from its connection: the one place a task ends.
    pub(super) fn unbind(&mut self, a: usize) {
        let Some(mut aux) = self.aux.try_remove(a) else {
            return;
        };
        if let Some(slot) = self.conns.get_mut(aux.owner) {
            if slot.aux == Some(a) {
                slot.aux = None;
            }
        }
        let left = aux.task.end(self.poll.registry());
        let now = self.now();
        self.adopt(left, now);
    }

    fn adopt(&mut self, left: Leftover, now: Millis) {
        if let Leftover::Upstream(k) = left {
            self.upstreams.close(k);
            return;
        }
        if let Leftover::Child {
            mut child,
            done,
            guard,
        } = left
        {
            if matches!(child.try_wait(), Ok(Some(_))) {
                // Its group may live on (a background grandchild): it goes too, unless the
                // script finished normally.
                if !done {
                    signal_group(&child, libc::SIGKILL);
                }
                return;
            }
            if !done {
                signal_group(&child, libc::SIGTERM);
            }
            self.orphans.push(Orphan {
                child,
                kill_at: now + KILL_GRACE,
                _guard: guard,
            });
        }
    }

    /// Results of jobs: each goes to the task that posted it, if it is still bound.
    pub(super) fn on_jobs(&mut self, now: Millis) {
        for done in self.jobs.take_done() {
            let a = (done.owner >> 32) as usize;
            let generation = done.owner as u32;
            if self.aux.get(a).is_some_and(|x| x.generation == generation) {
                self.run_task(a, Event::Job(done.result), now);
            }
        }
    }

    /// SIGCHLD: every task with a child looks, then the orphans are reaped.
    pub(super) fn on_child(&mut self, now: Millis) {
        let keys: Vec<usize> = self.aux.iter().map(|(k, _)| k).collect();
        for a in keys {
            self.run_task(a, Event::Child, now);
        }
        self.reap_orphans(now);
    }

    /// Reaps orphans that exited; SIGKILLs the groups of those past their grace.
    pub(super) fn reap_orphans(&mut self, now: Millis) {
        self.orphans.retain_mut(|o| {
            if matches!(o.child.try_wait(), Ok(Some(_)) | Err(_)) {
                return false;
            }
            if now >= o.kill_at {
                signal_group(&o.child, libc::SIGTERM);
                signal_group(&o.child, libc::SIGKILL);
                o.kill_at = Millis::MAX;
            }
            true
        });
    }

    /// At exit: every task ends, every child group is killed and reaped.
    pub(super) fn end_all_tasks(&mut self) {
        let keys: Vec<usize> = self.aux.iter().map(|(k, _)| k).collect();
        for a in keys {
            self.unbind(a);
        }
        for mut o in self.orphans.drain(..) {
            signal_group(&o.child, libc::SIGKILL);
            if o.child.wait().is_err() {
                self.handler.log(
                    Level::Warn,
                    format_args!("could not reap child {}", o.child.id()),
                );
            }
        }
    }
}
