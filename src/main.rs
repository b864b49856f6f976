//! `tern [OPTIONS] [ROOT]`: parse flags, bind, open logs and the root, announce each
//! listener on stdout, then run the event loop until SIGTERM/SIGINT.
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cfg = tern::config::cli::parse(std::env::args_os());
    match run(&cfg) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tern: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cfg: &tern::config::Config) -> std::io::Result<()> {
    // Start-up order (darkhttpd, nginx): sockets first, then logs and the root.
    let listeners = tern::server::bind(&cfg.listen, cfg.reuse_port)?;
    let mut server = tern::server::Server::new(cfg, listeners)?;
    let mut out = std::io::stdout().lock();
    for addr in server.local_addrs() {
        writeln!(out, "listening on http://{addr}")?;
    }
    out.flush()?;
    drop(out);
    server.run()
}
