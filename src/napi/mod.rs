//! The JavaScript binding: the only place with `#[napi]`. It converts types and errors, nothing else.
//!
//! Errors cross as `Error` objects whose message starts with the stable code (`"CODE: message"`);
//! the package entry (`calsync.js`) moves that code into `err.code`.

pub mod class;
pub mod options;
pub mod reports;
pub mod types;

use napi::Status;

use crate::error::Error;

/// Converts a library error into a JS error carrying its stable code.
pub(crate) fn js_error(e: Error) -> napi::Error {
    napi::Error::new(Status::GenericFailure, format!("{}: {}", e.code(), e))
}
