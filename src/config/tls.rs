//! The TLS keys: `listen_tls`, `tls_cert` + `tls_key` (top level and per vhost),
//! `tls_min_version`, `redirect_to_https` and `hsts`, validated. Certificates are only
//! checked to exist here; the server reads and matches them (and `-t` does too).
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::build::{in_dir, Errors};
use super::file::quote;
use super::{values, HttpsOptions, Listen, TlsVersion};
use crate::tls::CertPair;

/// A `listen_tls` list (may be empty).
pub(super) fn listen_list(
    e: &mut Errors,
    key: &str,
    list: Option<&Spanned<super::raw::List>>,
) -> Vec<Listen> {
    let mut out: Vec<Listen> = Vec::new();
    let Some(list) = list else { return out };
    for (span, item) in &list.get_ref().0 {
        let at = span.clone().unwrap_or_else(|| list.span());
        match super::listen::parse(item) {
            Ok(l) if out.iter().any(|o| o.addr == l.addr) => {
                e.at(0, &at, format!("{key} {}: given twice", quote(item)))
            }
            Ok(l) => out.push(l),
            Err(m) => e.at(0, &at, format!("{key} {}: {m}", quote(item))),
        }
    }
    out
}

/// `tls_cert` and `tls_key` of one level of file `file` (both or neither), resolved
/// against the file's directory and checked to exist.
pub(super) fn pair(
    e: &mut Errors,
    file: usize,
    cert: Option<&Spanned<String>>,
    key: Option<&Spanned<String>>,
) -> Option<CertPair> {
    let path = |e: &mut Errors, name: &str, v: &Spanned<String>| -> Option<PathBuf> {
        if v.get_ref().is_empty() {
            e.at(file, &v.span(), format!("{name} = \"\": expected a path"));
            return None;
        }
        // Absolute: reloads read them again after a daemon's chdir("/").
        let p = in_dir(&e.files[file].dir, v.get_ref());
        let p = std::path::absolute(&p).unwrap_or(p);
        match check_file(&p) {
            Ok(()) => Some(p),
            Err(m) => {
                e.at(
                    file,
                    &v.span(),
                    format!("{name} {}: {m}", quote(v.get_ref())),
                );
                None
            }
        }
    };
    match (cert, key) {
        (None, None) => None,
        (Some(c), None) => {
            e.at(file, &c.span(), "tls_cert is set without tls_key");
            None
        }
        (None, Some(k)) => {
            e.at(file, &k.span(), "tls_key is set without tls_cert");
            None
        }
        (Some(c), Some(k)) => {
            let cert = path(e, "tls_cert", c);
            let key = path(e, "tls_key", k);
            Some(CertPair {
                cert: cert?,
                key: key?,
            })
        }
    }
}

/// The `--tls-cert` and `--tls-key` flags (both or neither).
pub(super) fn flag_pair(
    e: &mut Errors,
    cert: Option<&PathBuf>,
    key: Option<&PathBuf>,
) -> Option<CertPair> {
    match (cert, key) {
        (None, None) => None,
        (Some(_), None) => {
            e.plain("--tls-cert is given without --tls-key");
            None
        }
        (None, Some(_)) => {
            e.plain("--tls-key is given without --tls-cert");
            None
        }
        (Some(c), Some(k)) => {
            let mut ok = true;
            for (name, p) in [("--tls-cert", c), ("--tls-key", k)] {
                if let Err(m) = check_file(p) {
                    e.plain(format!("{name} {}: {m}", p.display()));
                    ok = false;
                }
            }
            let abs = |p: &PathBuf| std::path::absolute(p).unwrap_or_else(|_| p.clone());
            ok.then(|| CertPair {
                cert: abs(c),
                key: abs(k),
            })
        }
    }
}

fn check_file(p: &Path) -> Result<(), String> {
    match std::fs::metadata(p) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err("no such file".into()),
        Err(e) => Err(super::io_reason(&e)),
        Ok(m) if !m.is_file() => Err("not a regular file".into()),
        Ok(_) => Ok(()),
    }
}

pub(super) fn min_version(e: &mut Errors, v: Option<&Spanned<String>>) -> TlsVersion {
    match v.map(|v| (v, v.get_ref().as_str())) {
        None => TlsVersion::V12,
        Some((_, "1.2")) => TlsVersion::V12,
        Some((_, "1.3")) => TlsVersion::V13,
        Some((v, other)) => {
            e.at(
                0,
                &v.span(),
                format!(
                    "tls_min_version {}: expected \"1.2\" or \"1.3\"",
                    quote(other)
                ),
            );
            TlsVersion::V12
        }
    }
}

/// `redirect_to_https` and `hsts` of one level over the level around it.
pub(super) fn https(
    e: &mut Errors,
    file: usize,
    redirect: Option<bool>,
    hsts: Option<&Spanned<String>>,
    base: &HttpsOptions,
) -> HttpsOptions {
    let mut o = base.clone();
    if let Some(r) = redirect {
        o.redirect = r;
    }
    if let Some(v) = hsts {
        match values::header_value(v.get_ref()) {
            Ok(s) if s.is_empty() => o.hsts = None,
            Ok(s) => o.hsts = Some(s),
            Err(m) => e.at(file, &v.span(), format!("hsts: {m}")),
        }
    }
    o
}
