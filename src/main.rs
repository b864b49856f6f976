//! `tern [OPTIONS] [ROOT]`: parse flags, load the configuration (file and flags), then check
//! it (`-t`), print it (`--print-config`), or bind, open logs and the roots, announce each
//! listener on stdout and run the event loop until SIGTERM/SIGINT.
use std::io::Write;
use std::process::ExitCode;

use tern::config::{self, Mode};

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

fn run(
    cfg: &config::Config,
    reloader: config::Reloader,
    mut activation: tern::server::Activation,
) -> std::io::Result<()> {
    // Start-up order (darkhttpd, nginx): sockets first, then logs and the root.
    let listeners = tern::server::bind(cfg, &mut activation)?;
    let mut server = tern::server::Server::new(cfg, listeners, activation)?;
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
    for addr in server.local_addrs() {
        writeln!(out, "listening on http://{addr}")?;
    }
    out.flush()?;
    drop(out);
    server.run()
}
