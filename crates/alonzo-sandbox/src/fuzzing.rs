//! Entry points for the fuzz targets in `crates/alonzo-fuzz`: the Runtime API's router
//! without a listener, so a target can feed it raw HTTP over an in-memory connection.
//! Nothing here is part of the API.

pub use crate::runtime_api::{Event, RuntimeChannel, RuntimeMessage, StreamItem};

/// The Runtime API of one environment as `serve` builds it, unbound.
pub fn runtime_api() -> (RuntimeChannel, axum::Router) {
    crate::runtime_api::app()
}
