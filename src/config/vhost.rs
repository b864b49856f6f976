//! `[vhost."NAME"]` blocks to [`Host`]s: names and aliases normalised and unique across
//! hosts, at most one `default = true`, the top level's settings under each block's own,
//! each block's own routes (its `root` is its `/` route).
use std::ops::Range;

use super::build::{self, Errors};
use super::file::{quote, VhostEntry};
use super::site::Layer;
use super::{values, Host, SiteOptions};
use crate::log::{LogFormat, LogTarget};

/// What a block inherits from the top level (besides its routes, which it never does).
pub(super) struct Top<'a> {
    pub site: &'a SiteOptions,
    pub log: Option<&'a (LogTarget, LogFormat)>,
    /// The top level's log format, which applies even where only a block has a log.
    pub format: LogFormat,
    /// `redirect_to_https` and `hsts` as the top level sets them.
    pub https: &'a super::HttpsOptions,
}

/// Appends one [`Host`] per block to `hosts` and returns the index of the default host (0,
/// the top level, unless a block says `default = true`).
pub(super) fn vhosts(
    e: &mut Errors,
    entries: Vec<VhostEntry>,
    top: &Top,
    hosts: &mut Vec<Host>,
) -> usize {
    let mut names = Names(Vec::new());
    let mut default: Option<(usize, usize, Range<usize>)> = None;
    for entry in entries {
        let (file, is_default) = (entry.entry.file, entry.entry.raw.default.clone());
        if let Some(d) = is_default.filter(|d| *d.get_ref()) {
            match &default {
                Some((_, f, s)) => {
                    let first = e.files[*f].at(s);
                    let msg = format!(
                        "default = true is already set at {first}; only one host can be the \
                         default"
                    );
                    e.at(file, &d.span(), msg);
                }
                None => default = Some((hosts.len(), file, d.span())),
            }
        }
        hosts.push(vhost(e, entry, &mut names, top));
    }
    default.map_or(0, |(i, _, _)| i)
}

fn vhost(e: &mut Errors, entry: VhostEntry, names: &mut Names, top: &Top) -> Host {
    let VhostEntry { entry, routes } = entry;
    let (file, key, mut raw) = (entry.file, entry.key, entry.raw);
    let name = names
        .claim(e, file, key.get_ref(), key.span(), false)
        .unwrap_or_default();
    let mut aliases = Vec::new();
    if let Some(list) = &raw.aliases {
        for (span, item) in &list.get_ref().0 {
            let span = span.clone().unwrap_or_else(|| list.span());
            aliases.extend(names.claim(e, file, item, span, true));
        }
    }
    let site = Layer::from_raw(e, file, raw.take_site()).merge_over(top.site);
    // Where and how this host logs: its own target and format, else the top level's.
    let target = match &raw.access_log {
        Some(v) => build::log_target(e, file, "access_log", v),
        None => top.log.map(|(t, _)| t.clone()),
    };
    let format = raw
        .log_format
        .as_ref()
        .and_then(|v| build::log_format(e, file, v))
        .unwrap_or(top.format);

    let ctx = format!(" in [vhost.{}]", quote(key.get_ref()));
    let mut routes = build::host_routes(e, routes, &site, &ctx);
    if let Some(root) = &raw.root {
        if routes.iter().any(|r| r.prefix == "/") {
            let msg = format!(
                "root and [vhost.{}.route.\"/\"] both set what / serves; keep one",
                quote(key.get_ref())
            );
            e.at(file, &root.span(), msg);
        } else if let Some(path) = build::static_path(e, file, "root", root, true) {
            routes.push(build::root_route(path, &site));
        }
    }
    build::slash_first(&mut routes);
    let cert = super::tls::pair(e, file, raw.tls_cert.as_ref(), raw.tls_key.as_ref());
    let https = super::tls::https(e, file, raw.redirect_to_https, raw.hsts.as_ref(), top.https);
    Host {
        name,
        aliases,
        access_log: target.map(|t| (t, format)),
        site,
        routes,
        cert,
        https,
    }
}

/// Every host name and alias so far, with where it was given.
struct Names(Vec<(String, usize, Range<usize>)>);

impl Names {
    /// The normalised name, if it is valid and no host has it yet.
    fn claim(
        &mut self,
        e: &mut Errors,
        file: usize,
        raw: &str,
        span: Range<usize>,
        alias: bool,
    ) -> Option<String> {
        let name = match values::host_name(raw) {
            Ok(n) if n.starts_with("*.") && !alias => {
                let msg = format!(
                    "host name {}: a wildcard is only allowed in aliases",
                    quote(raw)
                );
                e.at(file, &span, msg);
                return None;
            }
            Ok(n) => n,
            Err(m) => {
                e.at(file, &span, m);
                return None;
            }
        };
        if let Some((_, f, s)) = self.0.iter().find(|(n, _, _)| *n == name) {
            let first = e.files[*f].at(s);
            let msg = format!("host name {} is already used at {first}", quote(&name));
            e.at(file, &span, msg);
            return None;
        }
        self.0.push((name.clone(), file, span));
        Some(name)
    }
}
