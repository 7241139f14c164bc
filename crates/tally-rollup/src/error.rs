//! What can go wrong in the rollup code itself (a backend's own failures
//! are its [`Source::Error`](crate::Source::Error)).

/// An error of the rollup code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Stored rollup data could not be read back.
    #[error("stored rollups are corrupt: {0}")]
    Corrupt(String),
    /// The query cannot be answered as asked.
    #[error("{0}")]
    Invalid(String),
}
