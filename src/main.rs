//! `tern [OPTIONS] [ROOT]`: parse flags, load the configuration (file and flags), then check
//! it (`-t`), print it (`--print-config`), or run: detach (`daemon`), take the pid file,
//! bind, open logs and the roots, chroot, drop privileges, announce each listener on stdout
//! and run the event loop until SIGTERM/SIGINT.
use std::io::Write;
use std::process::ExitCode;

use tern::config::{self, Mode};
use tern::log::Level;
use tern::sys::process;

mod service;

fn main() -> ExitCode {
    // First, while tern has one thread: take what systemd passed and clear LISTEN_*.
    let activation = tern::server::Activation::from_env();
    let inv = config::cli::parse(std::env::args_os());
    // Nothing is bound before the whole configuration is known to be good.
    let cfg = match config::load(inv.config.as_deref(), &inv.overrides) {
        Ok(cfg) => cfg,
        Err(errors) => {
            for e in &errors {
                eprintln!("tern: {e}");
            }
            return ExitCode::FAILURE;
        }
    };
    match inv.mode {
        Mode::Check => {
            // Certificates are read and matched against their keys, as at start.
            let broken: Vec<String> = cfg
                .hosts
                .iter()
                .filter_map(|h| h.cert.as_ref())
                .filter_map(|p| tern::tls::load_pair(p).err())
                .collect();
            if !broken.is_empty() {
                for e in &broken {
                    eprintln!("tern: {e}");
                }
                return ExitCode::FAILURE;
            }
            let name = inv.config.as_deref().unwrap_or(std::path::Path::new("-"));
            eprintln!("tern: configuration {} is ok", name.display());
            ExitCode::SUCCESS
        }
        Mode::Print => {
            print!("{}", config::to_toml(&cfg));
            ExitCode::SUCCESS
        }
        Mode::Run => match run(&cfg, inv.reloader(), activation) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("tern: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

/// Enforces the Landlock ruleset built before the chroot (none with `sandbox = false`) and
/// logs what is enforced.
fn sandbox(
    prepared: Option<tern::sandbox::Prepared>,
    server: &mut tern::server::Server,
) -> std::io::Result<()> {
    let Some(prepared) = prepared else {
        server.log(Level::Info, format_args!("landlock: off (sandbox = false)"));
        return Ok(());
    };
    for s in &prepared.skipped {
        server.log(Level::Debug, format_args!("landlock: left out {s}"));
    }
    let outcome = prepared.enforce().map_err(std::io::Error::other)?;
    let level = match outcome {
        tern::sandbox::Outcome::Enforced { .. } => Level::Info,
        tern::sandbox::Outcome::Unsupported => Level::Warn,
    };
    server.log(level, format_args!("{}", outcome.message()));
    Ok(())
}

fn run(
    cfg: &config::Config,
    reloader: config::Reloader,
    mut activation: tern::server::Activation,
) -> std::io::Result<()> {
    // Read (and removed from the environment) first, while tern has one thread.
    let notifier = tern::server::Notifier::from_env().map_err(std::io::Error::other)?;
    let svc = &cfg.service;
    // Detach first: everything below runs in the daemon, whose errors still reach the
    // starting terminal's stderr, and whose readiness the waiting parent exits 0 on.
    let ready = if svc.daemon {
        // /dev/null now: neither an empty chroot nor the sandbox has it later.
        Some((process::daemonize()?, process::open_null()?))
    } else {
        None
    };
    // The pid file before binding, so a second instance says who holds it rather than
    // "address in use".
    let _pid_file = match &svc.pid_file {
        Some(p) => Some(service::pid_file(p)?),
        None => None,
    };
    // Start-up order (darkhttpd, nginx): sockets, then logs and the roots, then chroot and
    // the privilege drop.
    let listeners = tern::server::bind(cfg, &mut activation)?;
    let drop_to = service::resolve(svc)?;
    // Roots name places inside the chroot; they are opened through it just before.
    let outside = match &svc.chroot {
        Some(dir) => std::borrow::Cow::Owned(service::through(cfg, dir)?),
        None => std::borrow::Cow::Borrowed(cfg),
    };
    let mut server = tern::server::Server::new(&outside, listeners, activation)?;
    // The sandbox's rules hold inodes: built now, from outside the chroot, enforced last.
    let prepared = match svc.sandbox {
        true => Some(
            tern::sandbox::prepare(&tern::sandbox::plan(&outside))
                .map_err(std::io::Error::other)?,
        ),
        false => None,
    };
    if let Some(d) = &drop_to {
        server.chown_logs(d.uid, d.gid)?;
    }
    if let Some(dir) = &svc.chroot {
        process::chroot(dir)
            .map_err(|e| std::io::Error::new(e.kind(), format!("chroot {}: {e}", dir.display())))?;
        server.entered_chroot(dir);
    }
    match &drop_to {
        Some(d) => process::drop_privileges(d.uid, d.gid, &d.groups)?,
        None if process::euid() == 0 => server.log(
            Level::Warn,
            format_args!("running as root: set user (or --user) to drop privileges"),
        ),
        None => {}
    }
    // Last of the set-up: from here the kernel refuses every open outside the plan.
    sandbox(prepared, &mut server)?;
    // SIGHUP reads the file again with the same flags over it; without -c it only reopens
    // the logs (the flags cannot change).
    if reloader.path().is_some() {
        server.set_reloader(Box::new(move || {
            reloader
                .load()
                .map_err(|errors| errors.iter().map(ToString::to_string).collect())
        }));
    }
    let mut out = std::io::stdout().lock();
    for (addr, tls) in server.local_addrs() {
        let scheme = if tls { "https" } else { "http" };
        writeln!(out, "listening on {scheme}://{addr}")?;
    }
    out.flush()?;
    drop(out);
    if let Some(n) = notifier {
        server.set_notifier(n);
    }
    if let Some((ready, null)) = ready {
        // Relative paths (roots, logs, the pid file) are open: leave the starting directory
        // so it can be unmounted.
        std::env::set_current_dir("/")?;
        if cfg.error_log == tern::log::LogTarget::Stderr {
            eprintln!(
                "tern: warning: the error log is stderr, /dev/null from now on; set error_log"
            );
        }
        process::null_stdio(&null)?;
        ready.ready()?;
    }
    server.run()
}
