//! Where rule results go: recorded series, `ALERTS`, `ALERTS_FOR_STATE` and staleness
//! markers are written through [`RuleWriter`], one batch per rule, and each batch must be
//! visible to queries before the next rule of the group runs (Prometheus commits each rule's
//! appender before evaluating the next).
//!
//! The evaluation core is synchronous (PromQL evaluation is CPU work and runs on a blocking
//! thread), while [`tsdb::Tsdb`]'s appends are async: [`TsdbWriter`] bridges the two by
//! blocking on the runtime's handle. The core itself never touches tokio; only this adapter
//! does, and it must be used from a thread that may block (`spawn_blocking`, a plain thread,
//! a test's main thread), never from inside an async task.

use model::labels::Labels;
use tsdb::{SampleValue, Tsdb};

/// One sample a rule writes: series, timestamp (ms), value.
pub type RuleSample = (Labels, i64, SampleValue);

/// A sample the storage refused.
#[derive(Clone, Debug, PartialEq)]
pub struct Refused {
    /// The series.
    pub labels: Labels,
    /// Why, in Prometheus's words (`out of order sample`, `duplicate sample for timestamp`,
    /// `out of bounds`).
    pub reason: String,
}

/// Stores rule output.
pub trait RuleWriter {
    /// Stores `samples` and makes them visible to queries before returning. Samples the
    /// storage refuses one by one (out of order, a different value at a stored timestamp)
    /// come back in the list (it may stop at the first few); the others are stored. `Err`
    /// means the write failed as a whole.
    fn append(&mut self, samples: Vec<RuleSample>) -> Result<Vec<Refused>, String>;
}

/// Most samples handed to the tsdb in one append (below its default batch bound).
const TSDB_BATCH: usize = 100_000;

/// A [`RuleWriter`] over a [`Tsdb`], for the server and `lookout test rules`.
#[derive(Debug)]
pub struct TsdbWriter<'a> {
    db: &'a Tsdb,
    runtime: tokio::runtime::Handle,
}

impl<'a> TsdbWriter<'a> {
    /// Writes to `db`, driving its async appends on `runtime`. Call [`RuleWriter::append`]
    /// only from a thread that may block.
    pub fn new(db: &'a Tsdb, runtime: tokio::runtime::Handle) -> TsdbWriter<'a> {
        TsdbWriter { db, runtime }
    }
}

impl RuleWriter for TsdbWriter<'_> {
    fn append(&mut self, mut samples: Vec<RuleSample>) -> Result<Vec<Refused>, String> {
        let mut refused = Vec::new();
        while !samples.is_empty() {
            let rest = samples.split_off(samples.len().min(TSDB_BATCH));
            let batch = std::mem::replace(&mut samples, rest);
            let report = self
                .runtime
                .block_on(self.db.append_values(batch, false))
                .map_err(|e| e.to_string())?;
            refused.extend(report.rejections.into_iter().map(|r| Refused {
                labels: r.labels,
                reason: r.reason.prometheus_message().to_string(),
            }));
        }
        Ok(refused)
    }
}
