//! The server's routes, called through its router without a socket
//! (`tower::ServiceExt::oneshot`), and over a socket where the transport is
//! what is tested.

mod api;
mod bad_input;
mod compat;
mod compat_input;
mod erase;
mod forward;
mod hostile;
mod leaks;
mod public;
mod schema;
mod support;
