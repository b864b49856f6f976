//! TLS set-up, off the request path: certificate/key pairs read from PEM files and checked to
//! match, the SNI lookup that picks a virtual host's certificate (the router's own name
//! rules: exact names, then the longest wildcard), and the rustls `ServerConfig` new
//! handshakes use (TLS 1.2 and 1.3, ALPN `http/1.1`, rotating session tickets plus a
//! stateful session cache). Nothing here touches a socket: the per-connection TLS layer is
//! [`crate::conn::transport`].
//!
//! A reload (SIGHUP, or a certificate file changing) builds a new `ServerConfig` and swaps
//! the `Arc`: connections already established keep the one they started with, and the
//! ticket keys and session cache carry over, so resumption survives a reload.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ProducesTickets, ResolvesServerCert, StoresServerSessions};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

use crate::config::{Config, TlsVersion};
use crate::handler::route::{normalize_host, HostNames, MAX_HOST};

/// Sessions the stateful cache remembers (TLS 1.2 clients without ticket support).
const SESSION_CACHE: usize = 4096;

/// A certificate chain and its key, as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertPair {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Reads a PEM certificate chain (leaf first) and a PEM private key (PKCS#8, PKCS#1 or
/// SEC1), and checks that the key belongs to the leaf certificate.
pub fn load_pair(pair: &CertPair) -> Result<Arc<CertifiedKey>, String> {
    let cert = &pair.cert;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("tls_cert {}: {}", cert.display(), pem_reason(e)))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("tls_cert {}: {}", cert.display(), pem_reason(e)))?;
    if chain.is_empty() {
        return Err(format!(
            "tls_cert {}: no CERTIFICATE in the file",
            cert.display()
        ));
    }
    let key = &pair.key;
    let der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("tls_key {}: {}", key.display(), pem_reason(e)))?;
    let ck = CertifiedKey::from_der(chain, der, &provider()).map_err(|e| {
        format!(
            "tls_key {} does not go with tls_cert {}: {e}",
            key.display(),
            cert.display()
        )
    })?;
    Ok(Arc::new(ck))
}

fn pem_reason(e: rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error as E;
    match e {
        E::Io(e) => crate::config::io_reason(&e),
        E::NoItemsFound => "no PEM item of that kind in the file".into(),
        other => format!("not valid PEM: {other:?}"),
    }
}

/// Picks the certificate for a handshake from its SNI name.
#[derive(Debug)]
struct Certs {
    names: HostNames,
    /// Per host (as the router numbers them): its own certificate, if it has one.
    per_host: Vec<Option<Arc<CertifiedKey>>>,
    default: Arc<CertifiedKey>,
}

impl Certs {
    /// The host an SNI name selects, if it names one (never the default by fallback).
    fn host_of(&self, sni: &str) -> Option<usize> {
        sni_host(&self.names, sni)
    }
}

/// The host a TLS server name selects under `names`, if it names one.
pub fn sni_host(names: &HostNames, sni: &str) -> Option<usize> {
    let mut buf = [0u8; MAX_HOST];
    let norm = normalize_host(sni.as_bytes(), &mut buf)?;
    names.lookup(norm)
}

impl ResolvesServerCert for Certs {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let own = hello
            .server_name()
            .and_then(|n| self.host_of(n))
            .and_then(|h| self.per_host.get(h).cloned().flatten());
        Some(own.unwrap_or_else(|| Arc::clone(&self.default)))
    }
}

/// What the server keeps between reloads: the current `ServerConfig`, the names its SNI
/// lookup uses, and the session state shared by every config it builds.
pub struct Tls {
    pub config: Arc<ServerConfig>,
    pub names: Arc<HostNames>,
    tickets: Arc<dyn ProducesTickets>,
    cache: Arc<dyn StoresServerSessions>,
}

/// The certificate pairs of `cfg`: each host's own, and the default one (the top level's,
/// else the default host's, else the first host's that has one). `None` when no host has
/// one.
pub fn pairs(cfg: &Config) -> Option<(Vec<Option<CertPair>>, CertPair)> {
    let per_host: Vec<Option<CertPair>> = cfg.hosts.iter().map(|h| h.cert.clone()).collect();
    let default = per_host[0]
        .clone()
        .or_else(|| per_host.get(cfg.default_host).cloned().flatten())
        .or_else(|| per_host.iter().flatten().next().cloned())?;
    Some((per_host, default))
}

/// Every file TLS reads (certificates and keys), for watching and for the sandbox.
pub fn files(cfg: &Config) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = cfg
        .hosts
        .iter()
        .filter_map(|h| h.cert.as_ref())
        .flat_map(|p| [p.cert.clone(), p.key.clone()])
        .collect();
    v.sort();
    v.dedup();
    v
}

impl Tls {
    /// Loads every certificate of `cfg` and builds the first `ServerConfig`. `None` when no
    /// host has a certificate (then there must be no TLS listener: the config checked).
    pub fn new(cfg: &Config, names: HostNames) -> Result<Option<Tls>, String> {
        if pairs(cfg).is_none() {
            return Ok(None);
        }
        let tickets = rustls::crypto::aws_lc_rs::Ticketer::new()
            .map_err(|e| format!("TLS session tickets: {e}"))?;
        let cache: Arc<dyn StoresServerSessions> =
            rustls::server::ServerSessionMemoryCache::new(SESSION_CACHE);
        let config = build_config(cfg, names.clone(), &tickets, &cache)?;
        Ok(Some(Tls {
            config,
            names: Arc::new(names),
            tickets,
            cache,
        }))
    }

    /// A new `ServerConfig` for `cfg` (certificates read again), sharing this one's session
    /// state; the current one stays in use until [`Tls::install`].
    pub fn build(&self, cfg: &Config, names: HostNames) -> Result<Arc<ServerConfig>, String> {
        build_config(cfg, names, &self.tickets, &self.cache)
    }

    /// Makes `config` (from [`Tls::build`]) the one new handshakes use.
    pub fn install(&mut self, config: Arc<ServerConfig>, names: HostNames) {
        self.config = config;
        self.names = Arc::new(names);
    }
}

fn build_config(
    cfg: &Config,
    names: HostNames,
    tickets: &Arc<dyn ProducesTickets>,
    cache: &Arc<dyn StoresServerSessions>,
) -> Result<Arc<ServerConfig>, String> {
    {
        let Some((per_host, default)) = pairs(cfg) else {
            return Err("no certificate configured (tls_cert, tls_key)".into());
        };
        // A pair named by several hosts is read once.
        let mut loaded: Vec<(CertPair, Arc<CertifiedKey>)> = Vec::new();
        let mut get = |p: &CertPair| -> Result<Arc<CertifiedKey>, String> {
            if let Some((_, k)) = loaded.iter().find(|(q, _)| q == p) {
                return Ok(Arc::clone(k));
            }
            let k = load_pair(p)?;
            loaded.push((p.clone(), Arc::clone(&k)));
            Ok(k)
        };
        let default = get(&default)?;
        let per_host = per_host
            .iter()
            .map(|p| p.as_ref().map(&mut get).transpose())
            .collect::<Result<Vec<_>, _>>()?;
        let versions: &[&'static rustls::SupportedProtocolVersion] = match cfg.tls.min_version {
            TlsVersion::V12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
            TlsVersion::V13 => &[&rustls::version::TLS13],
        };
        let certs = Certs {
            names,
            per_host,
            default,
        };
        let mut sc = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(versions)
            .map_err(|e| format!("TLS versions: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(certs));
        // HTTP/2 is not spoken: a client that offers only h2 fails the handshake with
        // no_application_protocol (RFC 7301 §3.2); one offering nothing is served.
        sc.alpn_protocols = vec![b"http/1.1".to_vec()];
        sc.ticketer = Arc::clone(tickets);
        sc.session_storage = Arc::clone(cache);
        sc.max_early_data_size = 0;
        Ok(Arc::new(sc))
    }
}

/// The directories to watch for a certificate or key file: the file's own directory, and,
/// when the path is a symlink (certbot's `live/NAME/cert.pem -> ../../archive/NAME/certN.pem`),
/// the directory of each link target along the way.
pub fn watch_dirs(file: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    let mut p = file.to_path_buf();
    for _ in 0..8 {
        if let Some(d) = p.parent() {
            let d = if d.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                d.to_path_buf()
            };
            if !dirs.contains(&d) {
                dirs.push(d);
            }
        }
        match std::fs::read_link(&p) {
            Ok(target) => {
                p = match p.parent() {
                    Some(d) => d.join(target),
                    None => target,
                };
            }
            Err(_) => break,
        }
    }
    dirs
}
