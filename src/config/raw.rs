//! The configuration file as serde reads it: one `deny_unknown_fields` struct per kind of
//! table (top level, `[vhost."NAME"]`, `[route."/prefix"]`), every field optional, spans kept
//! on the values that are validated later. Only types and shapes are checked here; meaning
//! (ranges, paths, names) is [`super::build`]'s job.
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;

use super::values;
use crate::conn::Millis;

/// A string-to-string TOML table (`mime`, `headers`, `error_page`), keys and values spanned.
pub(super) type Table = BTreeMap<Spanned<String>, Spanned<String>>;

/// One string or an array of strings (`index = "a.html"` or `index = ["a.html", "b.html"]`).
/// Array items keep their own span; a lone string takes its field's.
#[derive(Debug, Default)]
pub(super) struct List(pub Vec<(Option<Range<usize>>, String)>);

impl<'de> Deserialize<'de> for List {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<List, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = List;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<List, E> {
                Ok(List(vec![(None, s.to_string())]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<List, A::Error> {
                let mut v = Vec::new();
                while let Some(item) = seq.next_element::<Spanned<String>>()? {
                    v.push((Some(item.span()), item.into_inner()));
                }
                Ok(List(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// `"10s"`, `"500ms"`, `"2.5s"` or a number of seconds.
#[derive(Clone, Copy, Debug)]
pub(super) struct Duration(pub Millis);

const DURATION: &str = "a duration such as \"10s\", \"500ms\" or a number of seconds";

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(DURATION)
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Duration, E> {
                self.visit_f64(n as f64)
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Duration, E> {
                self.visit_f64(n as f64)
            }
            fn visit_f64<E: de::Error>(self, secs: f64) -> Result<Duration, E> {
                values::duration_from_secs(secs)
                    .map(Duration)
                    .ok_or_else(|| E::custom(format!("{secs} seconds is out of range")))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Duration, E> {
                values::parse_duration(s).map(Duration).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// `"16KiB"`, `"1MiB"`, `"512B"` or a number of bytes.
#[derive(Clone, Copy, Debug)]
pub(super) struct Size(pub u64);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Size, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Size;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size such as \"16KiB\", \"1MiB\" or a number of bytes")
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Size, E> {
                u64::try_from(n)
                    .map(Size)
                    .map_err(|_| E::custom(format!("{n} is not a size")))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Size, E> {
                Ok(Size(n))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Size, E> {
                values::parse_size(s).map(Size).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// The per-site options, as any level gave them (all optional).
#[derive(Debug, Default)]
pub(super) struct RawSite {
    pub index: Option<Spanned<List>>,
    pub listing: Option<bool>,
    pub dotfiles: Option<bool>,
    pub cache_control: Option<Spanned<String>>,
    pub max_ranges: Option<Spanned<i64>>,
    pub error_page: Option<Table>,
    pub mime: Option<Table>,
    pub default_type: Option<Spanned<String>>,
    pub headers: Option<Table>,
    pub max_body: Option<Spanned<Size>>,
    pub cgi_timeout: Option<Duration>,
    pub cgi_max_processes: Option<Spanned<i64>>,
    pub cgi_env: Option<Spanned<List>>,
    pub proxy_upgrade: Option<Spanned<List>>,
    pub proxy_timeout: Option<Duration>,
    pub proxy_keepalive: Option<Spanned<i64>>,
    pub proxy_host: Option<Spanned<String>>,
    pub trust_forwarded: Option<bool>,
    pub proxy_via: Option<bool>,
    pub allow: Option<Spanned<List>>,
    pub deny: Option<Spanned<List>>,
    pub auth: Option<Spanned<RawAuth>>,
    pub auth_methods: Option<Spanned<List>>,
}

/// `auth = { realm = "...", htpasswd = "FILE" }`, or `auth = false` to lift it.
#[derive(Debug)]
pub(super) enum RawAuth {
    Off,
    On(RawAuthTable),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAuthTable {
    pub realm: Spanned<String>,
    pub htpasswd: Spanned<String>,
}

impl<'de> Deserialize<'de> for RawAuth {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RawAuth, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawAuth;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a table { realm = \"...\", htpasswd = \"FILE\" } or false")
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<RawAuth, E> {
                if b {
                    return Err(E::custom(
                        "auth = true: give a table { realm = \"...\", htpasswd = \"FILE\" }",
                    ));
                }
                Ok(RawAuth::Off)
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<RawAuth, A::Error> {
                RawAuthTable::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RawAuth::On)
            }
        }
        d.deserialize_any(V)
    }
}

/// Declares a table struct with its own fields followed by the per-site options, and
/// `take_site` to move those out. serde's `flatten` would lose both `deny_unknown_fields` and
/// the spans, so the shared fields are spelled out by this macro instead.
macro_rules! with_site_options {
    ($(#[$a:meta])* struct $name:ident { $($(#[$fa:meta])* $f:ident: $t:ty,)* }) => {
        $(#[$a])*
        #[derive(Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub(super) struct $name {
            $($(#[$fa])* pub $f: $t,)*
            pub index: Option<Spanned<List>>,
            pub listing: Option<bool>,
            pub dotfiles: Option<bool>,
            pub cache_control: Option<Spanned<String>>,
            pub max_ranges: Option<Spanned<i64>>,
            pub error_page: Option<Table>,
            pub mime: Option<Table>,
            pub default_type: Option<Spanned<String>>,
            pub headers: Option<Table>,
            pub max_body: Option<Spanned<Size>>,
            pub cgi_timeout: Option<Duration>,
            pub cgi_max_processes: Option<Spanned<i64>>,
            pub cgi_env: Option<Spanned<List>>,
            pub proxy_upgrade: Option<Spanned<List>>,
            pub proxy_timeout: Option<Duration>,
            pub proxy_keepalive: Option<Spanned<i64>>,
            pub proxy_host: Option<Spanned<String>>,
            pub trust_forwarded: Option<bool>,
            pub proxy_via: Option<bool>,
            pub allow: Option<Spanned<List>>,
            pub deny: Option<Spanned<List>>,
            pub auth: Option<Spanned<RawAuth>>,
            pub auth_methods: Option<Spanned<List>>,
        }

        impl $name {
            pub fn take_site(&mut self) -> RawSite {
                RawSite {
                    index: self.index.take(),
                    listing: self.listing.take(),
                    dotfiles: self.dotfiles.take(),
                    cache_control: self.cache_control.take(),
                    max_ranges: self.max_ranges.take(),
                    error_page: self.error_page.take(),
                    mime: self.mime.take(),
                    default_type: self.default_type.take(),
                    headers: self.headers.take(),
                    max_body: self.max_body.take(),
                    cgi_timeout: self.cgi_timeout.take(),
                    cgi_max_processes: self.cgi_max_processes.take(),
                    cgi_env: self.cgi_env.take(),
                    proxy_upgrade: self.proxy_upgrade.take(),
                    proxy_timeout: self.proxy_timeout.take(),
                    proxy_keepalive: self.proxy_keepalive.take(),
                    proxy_host: self.proxy_host.take(),
                    trust_forwarded: self.trust_forwarded.take(),
                    proxy_via: self.proxy_via.take(),
                    allow: self.allow.take(),
                    deny: self.deny.take(),
                    auth: self.auth.take(),
                    auth_methods: self.auth_methods.take(),
                }
            }
        }
    };
}

with_site_options! {
    /// The top level of the main file. `vhost` and `route` are read table by table (see
    /// [`super::file`]); they are named here so that "expected one of" lists them.
    struct RawTop {
        include: Option<Spanned<List>>,
        root: Option<Spanned<String>>,
        listen: Option<Spanned<List>>,
        listen_tls: Option<Spanned<List>>,
        tls_cert: Option<Spanned<String>>,
        tls_key: Option<Spanned<String>>,
        tls_min_version: Option<Spanned<String>>,
        redirect_to_https: Option<bool>,
        hsts: Option<Spanned<String>>,
        port: Option<Spanned<i64>>,
        reuse_port: Option<bool>,
        header_timeout: Option<Duration>,
        keepalive_timeout: Option<Duration>,
        send_timeout: Option<Duration>,
        shutdown_timeout: Option<Duration>,
        max_connections: Option<Spanned<i64>>,
        max_header_size: Option<Spanned<Size>>,
        max_request_line: Option<Spanned<Size>>,
        max_requests: Option<Spanned<i64>>,
        server_name: Option<Spanned<String>>,
        access_log: Option<Spanned<String>>,
        log_format: Option<Spanned<String>>,
        error_log: Option<Spanned<String>>,
        log_level: Option<Spanned<String>>,
        precompressed: Option<bool>,
        file_cache_entries: Option<Spanned<i64>>,
        vhost_dirs: Option<bool>,
        user: Option<Spanned<String>>,
        group: Option<Spanned<String>>,
        chroot: Option<Spanned<String>>,
        daemon: Option<bool>,
        pid_file: Option<Spanned<String>>,
        sandbox: Option<bool>,
        sandbox_read: Option<Spanned<List>>,
        sandbox_exec: Option<Spanned<List>>,
        sandbox_write: Option<Spanned<List>>,
        auth_max_failures: Option<Spanned<i64>>,
        #[allow(dead_code)] // listed for "expected one of"; read table by table
        route: Option<IgnoredAny>,
        #[allow(dead_code)]
        vhost: Option<IgnoredAny>,
    }
}

with_site_options! {
    /// `[vhost."NAME"]`; its `route` tables are read one by one.
    struct RawVhost {
        aliases: Option<Spanned<List>>,
        root: Option<Spanned<String>>,
        default: Option<Spanned<bool>>,
        tls_cert: Option<Spanned<String>>,
        tls_key: Option<Spanned<String>>,
        redirect_to_https: Option<bool>,
        hsts: Option<Spanned<String>>,
        access_log: Option<Spanned<String>>,
        log_format: Option<Spanned<String>>,
        #[allow(dead_code)] // listed for "expected one of"; read table by table
        route: Option<IgnoredAny>,
    }
}

with_site_options! {
    /// `[route."/prefix"]`. What the route does is decided by which of `static` and
    /// `redirect`, `cgi` is present (later: `proxy`, `store`).
    struct RawRoute {
        #[serde(rename = "static")]
        static_: Option<Spanned<String>>,
        redirect: Option<Spanned<String>>,
        cgi: Option<Spanned<String>>,
        proxy: Option<Spanned<String>>,
        status: Option<Spanned<i64>>,
        fallback: Option<Spanned<String>>,
        run: Option<Table>,
        command: Option<Spanned<List>>,
        store: Option<Spanned<String>>,
        create_dirs: Option<Spanned<bool>>,
        recursive: Option<Spanned<bool>>,
        all: Option<Spanned<String>>,
    }
}
