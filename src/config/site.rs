//! The per-site options one level (top level, vhost, route) sets, validated, and how they
//! merge over the wider level's [`SiteOptions`]: scalars and `index` replace; `mime` merges
//! per extension, `error_page` per code, `headers` per case-insensitive name (an empty value
//! removes an inherited header or error page).
use std::collections::HashMap;

use toml::Spanned;

use super::build::Errors;
use super::cli::Overrides;
use super::file::quote;
use super::raw::{List, RawAuth, RawAuthTable, RawSite, Table};
use super::{values, AuthConfig, SiteOptions};
use crate::auth::cidr::{Cidr, Rules};
use crate::fs::MimeTable;

#[derive(Debug, Default)]
pub(super) struct Layer {
    index: Option<Vec<String>>,
    listing: Option<bool>,
    dotfiles: Option<bool>,
    /// `""` turns an inherited value off.
    cache_control: Option<String>,
    max_ranges: Option<usize>,
    /// `None`: remove the inherited page for that code.
    error_pages: Vec<(u16, Option<String>)>,
    mime: Vec<(String, String)>,
    default_type: Option<String>,
    /// `None`: remove the inherited header.
    headers: Vec<(String, Option<String>)>,
    max_body: Option<u64>,
    cgi_timeout: Option<crate::conn::Millis>,
    cgi_max_processes: Option<usize>,
    cgi_env: Option<Vec<String>>,
    proxy_upgrade: Option<Vec<String>>,
    proxy_timeout: Option<crate::conn::Millis>,
    proxy_keepalive: Option<usize>,
    /// `""`: pass the client's `Host` (turns an inherited value off).
    proxy_host: Option<String>,
    trust_forwarded: Option<bool>,
    proxy_via: Option<bool>,
    /// Set when this level gives `allow` or `deny` (the other list then empty).
    access: Option<Rules>,
    /// `Some(None)`: `auth = false`.
    auth: Option<Option<AuthConfig>>,
    auth_methods: Option<Vec<String>>,
}

impl Layer {
    pub fn from_raw(e: &mut Errors, file: usize, raw: RawSite) -> Layer {
        let mut l = Layer {
            listing: raw.listing,
            dotfiles: raw.dotfiles,
            ..Layer::default()
        };
        if let Some(list) = raw.index {
            let mut names = Vec::new();
            for (span, item) in &list.get_ref().0 {
                match values::index_name(item) {
                    Ok(n) => names.push(n),
                    Err(m) => e.at(file, span.as_ref().unwrap_or(&list.span()), m),
                }
            }
            l.index = Some(names);
        }
        if let Some(v) = raw.cache_control {
            match values::header_value(v.get_ref()) {
                Ok(s) => l.cache_control = Some(s),
                Err(m) => e.at(file, &v.span(), format!("cache_control: {m}")),
            }
        }
        if let Some(v) = raw.max_ranges {
            l.max_ranges = e.int(file, "max_ranges", &v, 1..=1000).map(|n| n as usize);
        }
        for (code, page) in raw.error_page.iter().flatten() {
            let code_n = match values::error_code(code.get_ref()) {
                Ok(c) => c,
                Err(m) => {
                    e.at(file, &code.span(), format!("error_page: {m}"));
                    continue;
                }
            };
            if page.get_ref().is_empty() {
                l.error_pages.push((code_n, None));
                continue;
            }
            match values::root_relative(page.get_ref()) {
                Ok(p) => l.error_pages.push((code_n, Some(p))),
                Err(m) => e.at(
                    file,
                    &page.span(),
                    format!("error_page {code_n} = {}: {m}", quote(page.get_ref())),
                ),
            }
        }
        l.mime = mime(e, file, raw.mime.as_ref());
        if let Some(v) = raw.default_type {
            match values::mime_type(v.get_ref()) {
                Ok(t) => l.default_type = Some(t),
                Err(m) => e.at(file, &v.span(), format!("default_type: {m}")),
            }
        }
        l.headers = headers(e, file, raw.headers.as_ref());
        if let Some(v) = raw.max_body {
            l.max_body = Some(v.get_ref().0);
        }
        l.cgi_timeout = raw.cgi_timeout.map(|d| d.0.max(1));
        if let Some(v) = raw.cgi_max_processes {
            l.cgi_max_processes = e
                .int(file, "cgi_max_processes", &v, 1..=100_000)
                .map(|n| n as usize);
        }
        if let Some(list) = raw.cgi_env {
            let mut names = Vec::new();
            for (span, item) in &list.get_ref().0 {
                if values::is_env_name(item) {
                    names.push(item.clone());
                } else {
                    let msg = format!("cgi_env: {}: not a variable name", quote(item));
                    e.at(file, span.as_ref().unwrap_or(&list.span()), msg);
                }
            }
            l.cgi_env = Some(names);
        }
        if let Some(list) = raw.proxy_upgrade {
            let mut protocols = Vec::new();
            for (span, item) in &list.get_ref().0 {
                // RFC 9110 §7.8: protocol-name is a token (a version may follow a `/`).
                if !item.is_empty() && item.bytes().all(|b| crate::http::is_tchar(b) || b == b'/') {
                    protocols.push(item.to_ascii_lowercase());
                } else {
                    let msg = format!("proxy_upgrade: {}: not a protocol name", quote(item));
                    e.at(file, span.as_ref().unwrap_or(&list.span()), msg);
                }
            }
            l.proxy_upgrade = Some(protocols);
        }
        l.proxy_timeout = raw.proxy_timeout.map(|d| d.0.max(1));
        if let Some(v) = raw.proxy_keepalive {
            l.proxy_keepalive = e
                .int(file, "proxy_keepalive", &v, 0..=100_000)
                .map(|n| n as usize);
        }
        if let Some(v) = raw.proxy_host {
            let h = v.get_ref();
            if h.is_empty() || crate::http::request::valid_host(h.as_bytes()) {
                l.proxy_host = Some(h.clone());
            } else {
                e.at(
                    file,
                    &v.span(),
                    format!("proxy_host {}: not a host", quote(h)),
                );
            }
        }
        l.trust_forwarded = raw.trust_forwarded;
        l.proxy_via = raw.proxy_via;
        if raw.allow.is_some() || raw.deny.is_some() {
            l.access = Some(Rules {
                allow: cidrs(e, file, "allow", raw.allow.as_ref()),
                deny: cidrs(e, file, "deny", raw.deny.as_ref()),
            });
        }
        if let Some(a) = &raw.auth {
            l.auth = Some(match a.get_ref() {
                RawAuth::Off => None,
                RawAuth::On(t) => auth(e, file, t),
            });
        }
        if let Some(list) = &raw.auth_methods {
            l.auth_methods = Some(methods(e, file, list));
        }
        l
    }

    /// The flags given, over the file's top level: each replaces the file's value, lists and
    /// tables whole.
    pub fn apply_flags(&mut self, ov: &Overrides) {
        if let Some(index) = &ov.index {
            self.index = Some(index.iter().filter(|s| !s.is_empty()).cloned().collect());
        }
        self.listing = ov.listing.or(self.listing);
        self.dotfiles = ov.dotfiles.or(self.dotfiles);
        if let Some(c) = &ov.cache_control {
            self.cache_control = Some(c.clone());
        }
        if let Some(n) = ov.max_ranges {
            self.max_ranges = Some(n as usize);
        }
        if let Some(pages) = &ov.error_page {
            self.error_pages = pages.iter().map(|(c, p)| (*c, Some(p.clone()))).collect();
        }
        if let Some(m) = &ov.mime {
            self.mime = m.clone();
        }
        if let Some(t) = &ov.default_type {
            self.default_type = Some(t.clone());
        }
    }

    /// This level's values over `base`.
    pub fn merge_over(&self, base: &SiteOptions) -> SiteOptions {
        let mut o = base.clone();
        if let Some(i) = &self.index {
            o.index = i.clone();
        }
        o.listing = self.listing.unwrap_or(o.listing);
        o.dotfiles = self.dotfiles.unwrap_or(o.dotfiles);
        if let Some(c) = &self.cache_control {
            o.cache_control = (!c.is_empty()).then(|| c.clone());
        }
        o.max_ranges = self.max_ranges.unwrap_or(o.max_ranges);
        o.max_body = self.max_body.unwrap_or(o.max_body);
        o.cgi_timeout = self.cgi_timeout.unwrap_or(o.cgi_timeout);
        o.cgi_max_processes = self.cgi_max_processes.unwrap_or(o.cgi_max_processes);
        if let Some(p) = &self.proxy_upgrade {
            o.proxy_upgrade = p.clone();
        }
        if let Some(env) = &self.cgi_env {
            o.cgi_env = env.clone();
        }
        o.proxy_timeout = self.proxy_timeout.unwrap_or(o.proxy_timeout);
        o.proxy_keepalive = self.proxy_keepalive.unwrap_or(o.proxy_keepalive);
        if let Some(h) = &self.proxy_host {
            o.proxy_host = (!h.is_empty()).then(|| h.clone());
        }
        o.trust_forwarded = self.trust_forwarded.unwrap_or(o.trust_forwarded);
        o.proxy_via = self.proxy_via.unwrap_or(o.proxy_via);
        for (code, page) in &self.error_pages {
            o.error_pages.retain(|(c, _)| c != code);
            if let Some(p) = page {
                o.error_pages.push((*code, p.clone()));
            }
        }
        o.error_pages.sort_by_key(|(c, _)| *c);
        if !self.mime.is_empty() || self.default_type.is_some() {
            let mut table: HashMap<String, String> = base
                .mime
                .overrides()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            table.extend(self.mime.iter().cloned());
            let default = self
                .default_type
                .clone()
                .unwrap_or_else(|| base.mime.default_type().to_string());
            o.mime = MimeTable::new(table, default);
        }
        for (name, value) in &self.headers {
            o.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
            if let Some(v) = value {
                o.headers.push((name.clone(), v.clone()));
            }
        }
        o.headers
            .sort_by_cached_key(|(n, _)| n.to_ascii_lowercase());
        if let Some(a) = &self.access {
            o.access = Some(a.clone());
        }
        if let Some(a) = &self.auth {
            o.auth.clone_from(a);
        }
        if let Some(m) = &self.auth_methods {
            o.auth_methods = Some(m.clone());
        }
        o
    }
}

fn mime(e: &mut Errors, file: usize, table: Option<&Table>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (ext, ty) in table.into_iter().flatten() {
        let ext_n = match values::mime_ext(ext.get_ref()) {
            Ok(x) => x,
            Err(m) => {
                e.at(file, &ext.span(), format!("mime: {m}"));
                continue;
            }
        };
        if out.iter().any(|(x, _)| *x == ext_n) {
            e.at(
                file,
                &ext.span(),
                format!("mime: extension {} is set twice", quote(&ext_n)),
            );
            continue;
        }
        match values::mime_type(ty.get_ref()) {
            Ok(t) => out.push((ext_n, t)),
            Err(m) => e.at(
                file,
                &ty.span(),
                format!("mime {}: {m}", quote(ext.get_ref())),
            ),
        }
    }
    out
}

fn headers(e: &mut Errors, file: usize, table: Option<&Table>) -> Vec<(String, Option<String>)> {
    let mut out: Vec<(String, Option<String>)> = Vec::new();
    for (name, value) in table.into_iter().flatten() {
        let n: &Spanned<String> = name;
        let at = n.span();
        let n = n.get_ref();
        if !values::is_token(n) {
            e.at(
                file,
                &at,
                format!(
                    "header name {}: not a token (letters, digits and !#$%&'*+-.^_`|~)",
                    quote(n)
                ),
            );
            continue;
        }
        if let Some(why) = values::forbidden_header(n) {
            e.at(
                file,
                &at,
                format!("header {} cannot be set in headers: {why}", quote(n)),
            );
            continue;
        }
        if out.iter().any(|(x, _)| x.eq_ignore_ascii_case(n)) {
            e.at(
                file,
                &at,
                format!(
                    "header {} is set twice (names are case-insensitive)",
                    quote(n)
                ),
            );
            continue;
        }
        match values::header_value(value.get_ref()) {
            Ok(v) if v.is_empty() => out.push((n.clone(), None)),
            Ok(v) => out.push((n.clone(), Some(v))),
            Err(m) => e.at(file, &value.span(), format!("header {}: {m}", quote(n))),
        }
    }
    out
}

fn cidrs(e: &mut Errors, file: usize, key: &str, list: Option<&Spanned<List>>) -> Vec<Cidr> {
    let mut out = Vec::new();
    let Some(list) = list else { return out };
    for (span, item) in &list.get_ref().0 {
        match Cidr::parse(item) {
            Ok(c) => out.push(c),
            Err(m) => e.at(
                file,
                span.as_ref().unwrap_or(&list.span()),
                format!("{key}: {m}"),
            ),
        }
    }
    out
}

/// The methods `auth_methods` may name (those tern answers).
pub(super) const AUTH_METHODS: [&str; 7] =
    ["GET", "HEAD", "OPTIONS", "POST", "PUT", "DELETE", "PATCH"];

fn methods(e: &mut Errors, file: usize, list: &Spanned<List>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    if list.get_ref().0.is_empty() {
        e.at(
            file,
            &list.span(),
            "auth_methods = []: name at least one method (or remove auth)",
        );
    }
    for (span, item) in &list.get_ref().0 {
        let at = span.as_ref().unwrap_or(&list.span()).clone();
        if !AUTH_METHODS.contains(&item.as_str()) {
            let msg = format!(
                "auth_methods: {} is not one of {} (method names are case-sensitive)",
                quote(item),
                AUTH_METHODS.join(", ")
            );
            e.at(file, &at, msg);
        } else if !out.contains(item) {
            out.push(item.clone());
        }
    }
    out
}

/// `auth = { realm, htpasswd }`: the realm must fit in a quoted string; the htpasswd file is
/// read now, and any bad line (plain text, DES crypt, an unknown scheme) fails the load.
fn auth(e: &mut Errors, file: usize, t: &RawAuthTable) -> Option<AuthConfig> {
    let realm = t.realm.get_ref();
    let mut ok = true;
    if realm.is_empty()
        || realm
            .chars()
            .any(|c| c.is_control() || c == '"' || c == '\\')
    {
        e.at(
            file,
            &t.realm.span(),
            format!(
                "auth realm {}: expected a non-empty name without quotes, backslashes or control characters",
                quote(realm)
            ),
        );
        ok = false;
    }
    let raw = t.htpasswd.get_ref();
    if raw.is_empty() {
        e.at(file, &t.htpasswd.span(), "htpasswd = \"\": expected a file");
        return None;
    }
    let path = super::build::in_dir(&e.files[file].dir, raw);
    let path = std::path::absolute(&path).unwrap_or(path);
    let shown = format!("htpasswd {} ({})", quote(raw), path.display());
    match std::fs::read(e.outside(&path)) {
        Err(err) => {
            let msg = format!("{shown}: {}", super::io_reason(&err));
            e.at(file, &t.htpasswd.span(), msg);
            return None;
        }
        Ok(text) => match crate::auth::htpasswd::parse_file(&text) {
            Ok(h) if h.users.is_empty() => {
                e.at(file, &t.htpasswd.span(), format!("{shown}: no users"));
                return None;
            }
            Ok(_) => {}
            Err(errs) => {
                for le in errs {
                    let msg = format!("{shown} line {}: {}", le.line, le.msg);
                    e.at(file, &t.htpasswd.span(), msg);
                }
                return None;
            }
        },
    }
    ok.then(|| AuthConfig {
        realm: realm.clone(),
        htpasswd: path,
    })
}
