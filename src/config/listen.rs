//! What a `listen` entry says, as plain data: an address, a bare port (every interface, IPv4
//! and IPv6), or a socket systemd passed (`sd:N`, `sd:NAME`), each with its own
//! `reuse_port`. Parsing and printing only: binding and adopting are the server's.
use std::fmt;
use std::net::SocketAddr;

/// Where one listener comes from. This is also how a reload recognises a listener it
/// already has: the same entry keeps its socket.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ListenAddr {
    /// `ADDR:PORT` or `[V6]:PORT`: that address only. `0.0.0.0:80` is IPv4 only and
    /// `[::]:80` is IPv6 only (`IPV6_V6ONLY=1`, as nginx does).
    Addr(SocketAddr),
    /// `80` or `:80`: every interface, IPv4 and IPv6 (one dual-stack socket where the system
    /// allows, else two).
    AllPort(u16),
    /// `sd:N` or `sd:NAME`: a socket passed by systemd, adopted rather than bound.
    Systemd(SdSocket),
}

/// Which passed socket an `sd:` entry names.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SdSocket {
    /// `sd:N`: the N-th passed socket, 1-based, in `ListenStream=` order.
    Index(usize),
    /// `sd:NAME`: the socket whose `FileDescriptorName=` (in `LISTEN_FDNAMES`) is NAME.
    Name(String),
}

/// One `listen` entry: where the socket comes from and whether it sets `SO_REUSEPORT`
/// itself (`ADDR reuse_port`; the top-level `reuse_port` sets it on every bound listener).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listen {
    pub addr: ListenAddr,
    pub reuse_port: bool,
}

impl Listen {
    pub fn addr(addr: SocketAddr) -> Listen {
        Listen {
            addr: ListenAddr::Addr(addr),
            reuse_port: false,
        }
    }
}

/// The suffix that turns on `SO_REUSEPORT` for one listener (nginx spells it `reuseport`,
/// which is accepted too).
const REUSE_PORT: &str = "reuse_port";

/// Parses `127.0.0.1:8080`, `[::1]:8080`, `80`, `:80`, `sd:1` or `sd:http`, optionally
/// followed by ` reuse_port`.
pub fn parse(s: &str) -> Result<Listen, String> {
    let mut words = s.split_ascii_whitespace();
    let addr = words.next().ok_or("give an address")?;
    let mut reuse_port = false;
    for w in words {
        match w {
            REUSE_PORT | "reuseport" => reuse_port = true,
            _ => return Err(format!("unknown listener option {w:?} (only {REUSE_PORT})")),
        }
    }
    let addr = parse_addr(addr)?;
    if reuse_port && matches!(addr, ListenAddr::Systemd(_)) {
        return Err("reuse_port cannot be set on a socket systemd binds (use ReusePort= in the .socket unit)".into());
    }
    Ok(Listen { addr, reuse_port })
}

impl std::str::FromStr for Listen {
    type Err = String;
    fn from_str(s: &str) -> Result<Listen, String> {
        parse(s)
    }
}

fn parse_addr(s: &str) -> Result<ListenAddr, String> {
    const FORMS: &str =
        "not an address such as 127.0.0.1:8080, [::1]:8080, 80, :80, sd:1 or sd:NAME";
    if let Some(rest) = s.strip_prefix("sd:") {
        if rest.is_empty() {
            return Err(format!("{FORMS}: sd: needs a number or a name"));
        }
        if rest.bytes().all(|b| b.is_ascii_digit()) {
            return match rest.parse::<usize>() {
                Ok(n) if n >= 1 => Ok(ListenAddr::Systemd(SdSocket::Index(n))),
                _ => Err("sd:N counts from 1, in ListenStream= order".into()),
            };
        }
        // systemd allows names of up to 255 printable characters without ':'.
        if rest.len() > 255 || !rest.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
            return Err(format!("{FORMS}: sd:{rest} is not a socket name"));
        }
        return Ok(ListenAddr::Systemd(SdSocket::Name(rest.to_string())));
    }
    let port = s.strip_prefix(':').unwrap_or(s);
    if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) {
        return port
            .parse::<u16>()
            .map(ListenAddr::AllPort)
            .map_err(|_| format!("port {port} is past 65535"));
    }
    s.parse::<SocketAddr>()
        .map(ListenAddr::Addr)
        .map_err(|_| FORMS.to_string())
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Addr(a) => write!(f, "{a}"),
            ListenAddr::AllPort(p) => write!(f, ":{p}"),
            ListenAddr::Systemd(SdSocket::Index(n)) => write!(f, "sd:{n}"),
            ListenAddr::Systemd(SdSocket::Name(n)) => write!(f, "sd:{n}"),
        }
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.addr)?;
        if self.reuse_port {
            write!(f, " {REUSE_PORT}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let ok = [
            ("127.0.0.1:8080", "127.0.0.1:8080"),
            ("[::1]:8080", "[::1]:8080"),
            ("0.0.0.0:80", "0.0.0.0:80"),
            ("[::]:80", "[::]:80"),
            ("80", ":80"),
            (":80", ":80"),
            (":0", ":0"),
            ("sd:1", "sd:1"),
            ("sd:http", "sd:http"),
            ("sd:0x", "sd:0x"),
            ("127.0.0.1:80 reuse_port", "127.0.0.1:80 reuse_port"),
            (":80  reuseport", ":80 reuse_port"),
        ];
        for (input, shown) in ok {
            let l = parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(l.to_string(), shown, "{input}");
            assert_eq!(parse(shown).unwrap(), l, "{shown} round-trips");
        }
        assert_eq!(parse("80").unwrap().addr, ListenAddr::AllPort(80));
        assert_eq!(
            parse("sd:2").unwrap().addr,
            ListenAddr::Systemd(SdSocket::Index(2))
        );
        assert_eq!(
            parse("sd:https").unwrap().addr,
            ListenAddr::Systemd(SdSocket::Name("https".into()))
        );
        let bad = [
            ("", "give an address"),
            ("localhost:80", "not an address"),
            ("65536", "past 65535"),
            (":", "not an address"),
            ("sd:", "needs a number or a name"),
            ("sd:0", "counts from 1"),
            ("sd:a:b", "not a socket name"),
            ("sd:1 reuse_port", "ReusePort="),
            ("127.0.0.1:80 fast", "unknown listener option"),
        ];
        for (input, want) in bad {
            let e = parse(input).expect_err(input);
            assert!(e.contains(want), "{input}: {e}");
        }
    }
}
