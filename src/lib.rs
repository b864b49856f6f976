//! tern: a small, very fast, secure HTTP server on one thread (static files first; HTTPS, CGI,
//! a reverse proxy and a key-value store in the same loop).
//!
//! Layers, each depending only on the ones before it:
//! - [`sys`]: the only `unsafe` code; thin wrappers over Linux syscalls.
//! - [`http`]: sans-IO HTTP/1.x parsing and formatting (bytes in, values out).
//! - [`conn`]: one connection as a state machine, time passed in; [`conn::io`] drives it.
//! - [`fs`]: the document root (contained opens, inotify-invalidated cache).
//! - [`handler`]: requests to responses (files, directories, errors, logs).
//! - [`dynamic`]: tasks bound to pending requests (CGI children, later upstreams, jobs).
//! - [`server`]: the mio event loop; [`config`] builds its settings from the command line.
//! - [`sandbox`]: the Landlock rules the process puts itself under once set up.
#![deny(unsafe_code)]

pub mod auth;
pub mod config;
pub mod conn;
pub mod dynamic;
pub mod fs;
#[doc(hidden)]
pub mod fuzzing;
pub mod handler;
pub mod http;
pub mod log;
pub mod sandbox;
pub mod server;
pub mod store;
#[allow(unsafe_code)]
pub mod sys;
pub mod tls;
