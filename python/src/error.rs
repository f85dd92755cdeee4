//! The crate's errors as Python exceptions, with where they happened.

use cassandra_commitlog::location::Location;
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(
    cassandra_commitlog,
    CommitLogError,
    PyException,
    "An error of the reader: its message says where and what; its attributes `file`, `segment_id`, \
     `offset` (file offset) and `position` (logical commit-log position) are set where known (else None)."
);

/// An exception of the crate's error, located.
pub fn located(message: String, loc: Option<&Location>) -> PyErr {
    let err = CommitLogError::new_err(message);
    Python::with_gil(|py| {
        let v = err.value(py);
        let loc = loc.cloned().unwrap_or_default();
        let _ = v.setattr("file", loc.file.as_ref().map(|f| f.display().to_string()));
        let _ = v.setattr("segment_id", loc.segment_id);
        let _ = v.setattr("offset", loc.file_offset);
        let _ = v.setattr("position", loc.logical);
    });
    err
}

/// A segment error.
pub fn segment(e: cassandra_commitlog::segment::Error) -> PyErr {
    let loc = e.location().clone();
    located(e.to_string(), Some(&loc))
}

/// A watcher error.
pub fn cdc(e: cassandra_commitlog::cdc::CdcError) -> PyErr {
    let loc = match &e {
        cassandra_commitlog::cdc::CdcError::Io { loc, .. }
        | cassandra_commitlog::cdc::CdcError::SchemaState { loc, .. } => Some(loc.clone()),
        _ => None,
    };
    located(e.to_string(), loc.as_ref())
}

/// A checkpoint error.
pub fn checkpoint(e: cassandra_commitlog::cdc::CheckpointError) -> PyErr {
    located(e.to_string(), None)
}

/// A value that does not decode.
pub fn value_error(e: cassandra_commitlog::value::ValueError) -> PyErr {
    located(e.to_string(), None)
}
