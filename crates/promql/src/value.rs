//! Query results: the four PromQL value types as the API returns them.
//!
//! A sample is either a float or a native histogram (Prometheus's `Sample` with `F` or `H`):
//! vector samples carry `h: Some(..)` for histograms, and series keep their float points and
//! histogram points in two lists, as Prometheus's `Series` has `Floats` and `Histograms`.

use std::sync::Arc;

use model::histogram::FloatHistogram;
use tsdb::Labels;

/// One sample of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series' labels.
    pub metric: Labels,
    /// Evaluation time, Unix milliseconds.
    pub t: i64,
    /// The value (0 for a histogram sample).
    pub v: f64,
    /// The native histogram, when this sample is one.
    pub h: Option<Arc<FloatHistogram>>,
}

/// One series of a range vector or of a range query's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The series' labels.
    pub metric: Labels,
    /// `(t_ms, value)` pairs, oldest first.
    pub points: Vec<(i64, f64)>,
    /// `(t_ms, histogram)` pairs, oldest first; never at a time of `points`.
    pub histograms: Vec<(i64, Arc<FloatHistogram>)>,
}

/// A query's result value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A scalar at time `t`.
    Scalar {
        /// Evaluation time, Unix milliseconds.
        t: i64,
        /// The value.
        v: f64,
    },
    /// A string at time `t`.
    String {
        /// Evaluation time, Unix milliseconds.
        t: i64,
        /// The string.
        v: String,
    },
    /// An instant vector.
    Vector(Vec<Sample>),
    /// A range vector (instant query of a range selector) or a range query's result.
    Matrix(Vec<Series>),
}

impl Value {
    /// Prometheus's `resultType` name.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Scalar { .. } => "scalar",
            Value::String { .. } => "string",
            Value::Vector(_) => "vector",
            Value::Matrix(_) => "matrix",
        }
    }
}

/// A successful evaluation: the value plus the annotations Prometheus would attach.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult {
    /// The result.
    pub value: Value,
    /// `PromQL warning: ...` annotations.
    pub warnings: Vec<String>,
    /// `PromQL info: ...` annotations.
    pub infos: Vec<String>,
}
