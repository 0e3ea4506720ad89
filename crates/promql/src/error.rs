//! The engine's errors, one variant per Prometheus API error type.
//!
//! The HTTP layer maps [`Error::error_type`] to Prometheus's `errorType` field and status code
//! (`bad_data` 400, `execution` 422, `timeout` 503, `canceled` 422): the variants are chosen so
//! that mapping is a plain match, and the messages are Prometheus's own wording where clients or
//! the conformance scripts compare them.

/// Why a query did not produce a result.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// The query does not parse or is ill-typed (`bad_data`).
    #[error("{0}")]
    BadData(String),
    /// Evaluation failed (`execution`): duplicate label sets, bad function arguments...
    #[error("{0}")]
    Execution(String),
    /// The query loaded more samples into memory at once than the limit allows (`execution`).
    #[error("query processing would load too many samples into memory in query execution")]
    TooManySamples,
    /// The query ran past its deadline (`timeout`).
    #[error("query timed out in query execution")]
    Timeout,
    /// The caller canceled the query (`canceled`).
    #[error("query was canceled in query execution")]
    Canceled,
    /// The storage failed to answer a select (`execution`).
    #[error("storage error: {0}")]
    Storage(String),
}

impl Error {
    /// The HTTP status Prometheus's API answers with for this error (`bad_data` 400,
    /// `execution` 422, `timeout` 503, `canceled` 499).
    pub fn http_status(&self) -> u16 {
        match self {
            Error::BadData(_) => 400,
            Error::Execution(_) | Error::TooManySamples | Error::Storage(_) => 422,
            Error::Timeout => 503,
            Error::Canceled => 499,
        }
    }

    /// Prometheus's API `errorType` for this error.
    pub fn error_type(&self) -> &'static str {
        match self {
            Error::BadData(_) => "bad_data",
            Error::Execution(_) | Error::TooManySamples | Error::Storage(_) => "execution",
            Error::Timeout => "timeout",
            Error::Canceled => "canceled",
        }
    }
}

impl From<tsdb::TsdbError> for Error {
    fn from(e: tsdb::TsdbError) -> Error {
        Error::Storage(e.to_string())
    }
}

pub(crate) fn exec(msg: impl Into<String>) -> Error {
    Error::Execution(msg.into())
}
