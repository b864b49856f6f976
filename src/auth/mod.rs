//! Access control: address rules (`allow`/`deny`), HTTP Basic authentication against
//! htpasswd files, the cache of verified credentials and the failure limiter. Parsing and
//! verifying are pure ([`basic`], [`htpasswd`], [`verify`]); the state kept between
//! requests is in [`state`]. Nothing here does I/O on the event loop except reading an
//! htpasswd file that changed.
pub mod basic;
pub mod cidr;
pub mod htpasswd;
pub mod state;
pub mod verify;
