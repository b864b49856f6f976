//! Reading configuration files: TOML syntax, `include`, and serde into the raw structs of
//! [`super::raw`], one table at a time so that every broken table is reported and each error
//! names its file, line, column, key and table. Relative paths in a file (roots, `static`,
//! logs, includes) are relative to that file's directory. What the values mean is checked
//! later by [`super::build`]; nothing here looks at roots or logs.
use std::fmt::Write as _;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

use super::raw::{List, RawRoute, RawTop, RawVhost};
use super::ConfigError;

/// One file read: the name errors use, the directory its relative paths start from, and its
/// text (for line and column numbers).
pub(super) struct Source {
    pub name: PathBuf,
    pub dir: PathBuf,
    canonical: Option<PathBuf>,
    text: String,
}

impl Source {
    /// 1-based line and column (in characters) of a byte offset.
    fn line_col(&self, at: usize) -> (usize, usize) {
        let at = at.min(self.text.len());
        let before = self.text.get(..at).unwrap_or("");
        let line = before.matches('\n').count() + 1;
        let start = before.rfind('\n').map_or(0, |i| i + 1);
        (line, before[start..].chars().count() + 1)
    }

    /// An error at `span` (or at no particular place); one line whatever the message.
    pub fn err(&self, span: Option<&Range<usize>>, msg: impl Into<String>) -> ConfigError {
        let (line, col) = span.map_or((0, 0), |s| self.line_col(s.start));
        ConfigError {
            file: Some(self.name.clone()),
            line,
            col,
            msg: msg.into().trim_end().replace('\n', "; "),
        }
    }

    /// `tern.toml:3:1`, for "already defined at ...".
    pub fn at(&self, span: &Range<usize>) -> String {
        let (line, col) = self.line_col(span.start);
        format!("{}:{line}:{col}", self.name.display())
    }
}

/// A `[route."/prefix"]` or `[vhost."NAME"]` table as read, with where it was defined.
pub(super) struct Entry<T> {
    pub file: usize,
    pub key: Spanned<String>,
    pub raw: T,
    /// A key of the table was bad (and reported) and is missing from `raw`.
    pub partial: bool,
}

pub(super) struct VhostEntry {
    pub entry: Entry<RawVhost>,
    pub routes: Vec<Entry<RawRoute>>,
}

/// Everything read from a main file and its includes.
#[derive(Default)]
pub(super) struct Tree {
    pub files: Vec<Source>,
    /// The directory of each `include` glob (a reload may find new files there).
    pub include_dirs: Vec<PathBuf>,
    /// The main file's top level (empty without a file).
    pub top: RawTop,
    /// Top-level routes of every file, in file order.
    pub routes: Vec<Entry<RawRoute>>,
    pub vhosts: Vec<VhostEntry>,
}

/// Reads `path` and what it includes. The tree holds every table that could be read; the
/// errors are those of the others (the caller validates the tree anyway and reports all).
pub(super) fn read(path: &Path) -> (Tree, Vec<ConfigError>) {
    let mut tree = Tree::default();
    let mut errors = Vec::new();
    let Some(main) = open(&mut tree.files, &mut errors, path) else {
        return (tree, errors);
    };
    let src = &tree.files[main];
    let Some(table) = parse(src, &mut errors) else {
        return (tree, errors);
    };
    let top = de::<RawTop>(src, &table, "at the top level", &mut errors).map(|(t, _)| t);
    let mut parts = Parts::default();
    parts.tables(src, main, &table, &mut errors);
    drop(table);
    tree.top = top.unwrap_or_default();
    tree.absorb(parts);
    let Some(list) = tree.top.include.take() else {
        return (tree, errors);
    };
    let (paths, dirs) = include_paths(&tree.files[main], &list, &mut errors);
    tree.include_dirs = dirs;
    for p in paths {
        let Some(file) = open(&mut tree.files, &mut errors, &p) else {
            continue;
        };
        let src = &tree.files[file];
        let Some(table) = parse(src, &mut errors) else {
            continue;
        };
        for k in table.keys() {
            if !matches!(&**k.get_ref(), "vhost" | "route") {
                errors.push(src.err(
                    Some(&k.span()),
                    format!(
                        "key {} is not allowed in an included file; only [vhost.\"NAME\"] \
                         and [route.\"/prefix\"] tables are",
                        quote(k.get_ref())
                    ),
                ));
            }
        }
        let mut parts = Parts::default();
        parts.tables(src, file, &table, &mut errors);
        drop(table);
        tree.absorb(parts);
    }
    (tree, errors)
}

/// Reads one file into `files`; returns its index.
fn open(files: &mut Vec<Source>, errors: &mut Vec<ConfigError>, path: &Path) -> Option<usize> {
    let name = path.to_path_buf();
    match std::fs::read_to_string(path) {
        Ok(text) => {
            files.push(Source {
                dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
                canonical: std::fs::canonicalize(path).ok(),
                name,
                text,
            });
            Some(files.len() - 1)
        }
        Err(e) => {
            errors.push(ConfigError {
                file: Some(name),
                line: 0,
                col: 0,
                msg: format!("cannot read: {}", super::io_reason(&e)),
            });
            None
        }
    }
}

/// TOML syntax; every syntax error is reported (the parser recovers where it can).
fn parse<'i>(src: &'i Source, errors: &mut Vec<ConfigError>) -> Option<DeTable<'i>> {
    let (table, syntax) = DeTable::parse_recoverable(&src.text);
    if syntax.is_empty() {
        return Some(table.into_inner());
    }
    for e in syntax {
        let mut msg = e.message().to_string();
        // The parser says "duplicate key" without naming it: quote the text at the span.
        let named = e.span().and_then(|s| src.text.get(s)).map(str::trim);
        if let Some(key) = named.filter(|k| msg == "duplicate key" && !k.is_empty()) {
            msg = format!("duplicate key {key} (a table or key defined twice)");
        }
        errors.push(src.err(e.span().as_ref(), msg));
    }
    None
}

/// The tables of one file, before they join the tree.
#[derive(Default)]
struct Parts {
    routes: Vec<Entry<RawRoute>>,
    vhosts: Vec<VhostEntry>,
}

impl Parts {
    /// Reads the `route` and `vhost` tables of a file's top level.
    fn tables(
        &mut self,
        src: &Source,
        file: usize,
        top: &DeTable<'_>,
        errors: &mut Vec<ConfigError>,
    ) {
        for (k, v) in top.iter() {
            match &**k.get_ref() {
                "route" => self.routes.extend(routes(src, file, v, "", errors)),
                "vhost" => {
                    for (name, table) in subtables(src, v, "vhost", "[vhost.\"NAME\"]", errors) {
                        let ctx = format!("[vhost.{}]", quote(name.get_ref()));
                        let routes = table
                            .iter()
                            .filter(|(k, _)| k.get_ref() == "route")
                            .flat_map(|(_, v)| routes(src, file, v, &ctx, errors))
                            .collect();
                        let ctx = format!("in {ctx}");
                        if let Some((raw, partial)) = de::<RawVhost>(src, table, &ctx, errors) {
                            self.vhosts.push(VhostEntry {
                                entry: Entry {
                                    file,
                                    key: name,
                                    raw,
                                    partial,
                                },
                                routes,
                            });
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

impl Tree {
    fn absorb(&mut self, parts: Parts) {
        self.routes.extend(parts.routes);
        self.vhosts.extend(parts.vhosts);
    }
}

/// The `[route."/x"]` tables under `value` (a `route` key); `host` is the enclosing vhost's
/// table name, empty at the top level.
fn routes(
    src: &Source,
    file: usize,
    value: &Spanned<DeValue<'_>>,
    host: &str,
    errors: &mut Vec<ConfigError>,
) -> Vec<Entry<RawRoute>> {
    let mut out = Vec::new();
    let dotted = if host.is_empty() {
        String::new()
    } else {
        format!("{}.", &host[1..host.len() - 1])
    };
    let shape = format!("[{dotted}route.\"/prefix\"]");
    for (prefix, table) in subtables(src, value, "route", &shape, errors) {
        let ctx = format!("in [{dotted}route.{}]", quote(prefix.get_ref()));
        if let Some((raw, partial)) = de::<RawRoute>(src, table, &ctx, errors) {
            out.push(Entry {
                file,
                key: prefix,
                raw,
                partial,
            });
        }
    }
    out
}

/// The named tables of a `vhost` or `route` value, each checked to be a table.
fn subtables<'t, 'i>(
    src: &Source,
    value: &'t Spanned<DeValue<'i>>,
    what: &str,
    shape: &str,
    errors: &mut Vec<ConfigError>,
) -> Vec<(Spanned<String>, &'t DeTable<'i>)> {
    let DeValue::Table(t) = value.get_ref() else {
        errors.push(src.err(
            Some(&value.span()),
            format!("{what} must be a table of {shape} tables"),
        ));
        return Vec::new();
    };
    let mut out = Vec::new();
    for (k, v) in t.iter() {
        let name = Spanned::new(k.span(), k.get_ref().to_string());
        match v.get_ref() {
            DeValue::Table(table) => out.push((name, table)),
            _ => errors.push(src.err(
                Some(&v.span()),
                format!("{what} {} must be a table ({shape})", quote(name.get_ref())),
            )),
        }
    }
    out
}

/// serde into `T`, reporting every bad key of the table: on an error, the message names the
/// key and the table (`ctx`), and the key is dropped and the rest read again, so that what is
/// left can still be checked; `true` with it when a key was dropped. `None` only if an error
/// names no key.
fn de<T: for<'de> Deserialize<'de>>(
    src: &Source,
    table: &DeTable<'_>,
    ctx: &str,
    errors: &mut Vec<ConfigError>,
) -> Option<(T, bool)> {
    let mut table = table.clone();
    // Each round drops one key; past this many bad keys, the rest is not worth reading.
    for round in 0..64 {
        let value = Spanned::new(0..0, DeValue::Table(table.clone()));
        let e = match T::deserialize(ValueDeserializer::from(value)) {
            Ok(t) => return Some((t, round > 0)),
            Err(e) => e,
        };
        let span = e.span();
        let key = span.as_ref().and_then(|s| key_at(&table, s.start));
        let name = key.as_ref().map(|(_, name)| name.as_str());
        errors.push(src.err(span.as_ref(), describe(e.message(), name, ctx)));
        match key.and_then(|(i, _)| table.keys().nth(i).cloned()) {
            Some(k) => {
                table.remove(&k);
            }
            None => return None,
        }
    }
    None
}

/// The entry of `table` (its index) whose key or value covers byte `at`, and its dotted key
/// (`mime.md`). Nested tables are searched by their keys' spans, since a `[table]` header's
/// own span does not cover its body.
fn key_at(table: &DeTable<'_>, at: usize) -> Option<(usize, String)> {
    for (i, (k, v)) in table.iter().enumerate() {
        let name = bare_or_quoted(k.get_ref());
        if k.span().contains(&at) {
            return Some((i, name));
        }
        match v.get_ref() {
            DeValue::Table(t) => {
                if let Some((_, sub)) = key_at(t, at) {
                    return Some((i, format!("{name}.{sub}")));
                }
            }
            _ if v.span().contains(&at) => return Some((i, name)),
            _ => {}
        }
    }
    None
}

/// serde's messages in tern's words: `unknown key "x" in [..]; expected one of a, b` and
/// `key "x" in [..]: expected a boolean, found integer 3`.
fn describe(msg: &str, key: Option<&str>, ctx: &str) -> String {
    let msg = msg.trim_end_matches('\n');
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        let (name, rest) = rest.split_once('`').unwrap_or((rest, ""));
        let expected = rest.strip_prefix(", expected ").map(|e| {
            e.trim_start_matches("one of ")
                .replace('`', "")
                .replace(" or ", ", ")
        });
        return match expected {
            Some(e) => format!("unknown key {} {ctx}; expected one of {e}", quote(name)),
            None => format!("unknown key {} {ctx}", quote(name)),
        };
    }
    let mut out = match key {
        Some(k) => format!("key {} {ctx}: ", quote(k)),
        None => format!("{ctx}: "),
    };
    let body = msg
        .strip_prefix("invalid type: ")
        .or_else(|| msg.strip_prefix("invalid value: "))
        .and_then(|r| r.rsplit_once(", expected "));
    match body {
        Some((found, expected)) => {
            let _ = write!(out, "expected {expected}, found {}", found.replace('`', ""));
        }
        None => out.push_str(msg),
    }
    out
}

/// A TOML key as written in a table header: bare when it can be, else a basic string.
pub(super) fn bare_or_quoted(k: &str) -> String {
    if !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        k.to_string()
    } else {
        quote(k)
    }
}

/// A TOML basic string (also good for messages: `"example.com"`).
pub(super) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The files an `include` list names: each glob relative to the including file's directory,
/// sorted; a pattern may match nothing, a literal path must exist. A file is read once, and
/// never the including file itself. Also returns the directory each glob searches.
fn include_paths(
    src: &Source,
    list: &Spanned<List>,
    errors: &mut Vec<ConfigError>,
) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let mut out: Vec<PathBuf> = Vec::new();
    let mut dirs: Vec<PathBuf> = Vec::new();
    let mut seen: Vec<PathBuf> = src.canonical.iter().cloned().collect();
    for (span, item) in &list.get_ref().0 {
        let span = span.clone().unwrap_or_else(|| list.span());
        let mut add = |p: PathBuf| {
            let canon = std::fs::canonicalize(&p).unwrap_or_else(|_| p.clone());
            if !seen.contains(&canon) {
                seen.push(canon);
                out.push(p);
            }
        };
        if !item.contains(['*', '?', '[']) {
            let p = src.dir.join(item);
            match std::fs::metadata(&p) {
                Ok(m) if m.is_file() => add(p),
                Ok(_) => errors.push(src.err(
                    Some(&span),
                    format!("include {}: not a regular file", quote(item)),
                )),
                Err(e) => errors.push(src.err(
                    Some(&span),
                    format!("include {}: {}", quote(item), super::io_reason(&e)),
                )),
            }
            continue;
        }
        let pattern = if Path::new(item).is_absolute() || src.dir.as_os_str().is_empty() {
            item.clone()
        } else {
            let dir = src.dir.to_string_lossy();
            format!("{}/{item}", glob::Pattern::escape(&dir))
        };
        let literal: PathBuf = Path::new(&pattern)
            .components()
            .take_while(|c| !c.as_os_str().to_string_lossy().contains(['*', '?', '[']))
            .collect();
        dirs.push(literal);
        let paths = match glob::glob(&pattern) {
            Ok(paths) => paths,
            Err(e) => {
                errors.push(src.err(
                    Some(&span),
                    format!("include {}: bad pattern: {}", quote(item), e.msg),
                ));
                continue;
            }
        };
        let mut found = Vec::new();
        for p in paths {
            match p {
                Ok(p) if p.is_file() => found.push(p),
                Ok(_) => {}
                Err(e) => {
                    errors.push(src.err(Some(&span), format!("include {}: {}", quote(item), e)))
                }
            }
        }
        found.sort();
        found.into_iter().for_each(&mut add);
    }
    (out, dirs)
}
