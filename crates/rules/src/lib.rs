//! Prometheus's recording and alerting rules for Lookout: rule files in Prometheus's own
//! format, evaluated with our PromQL engine on each group's interval; recording rules write
//! their series back into the tsdb, alerting rules keep Prometheus's pending → firing →
//! resolved states (with `ALERTS` and `ALERTS_FOR_STATE`), expand their label and annotation
//! templates, and hand what must be sent to the [`notifier`], which speaks Alertmanager's
//! API v2.
//!
//! The evaluation core is synchronous and owns no clock or timer: a caller (the server's
//! scheduler, `lookout test rules`) says when a [`group::Group`] evaluates, over which
//! [`tsdb::Querier`], writing through which [`writer::RuleWriter`].
//!
//! The parts, one module each:
//! - [`rulefmt`]: rule files, parsed and validated as Prometheus does.
//! - [`rule`]: what rules share: the evaluation context, errors, health, the query helper.
//! - [`recording`]: recording rules.
//! - [`alerting`]: alerting rules, their alerts' states, and the alerts due for sending.
//! - [`group`]: groups of rules evaluated in order, staleness, reload and `for` restoration.
//! - [`writer`]: where rule output is written, and the adapter onto the tsdb.
//! - [`config`]: where the server's rule files come from (`prometheus.yml`, `[rules]`).
//! - [`manager`]: the server's scheduler: one task per group, reloads, self-metrics.
//! - `expand`: the seam between rules and [`template`].
//! - [`notifier`]: the alert as Alertmanager receives it, and the queue that delivers it.
//! - [`template`]: Go's `text/template` with Prometheus's functions, expanding alert labels
//!   and annotations as Prometheus does.
//! - [`unittest`]: rule unit tests in promtool's format (`lookout test rules`).
//! - [`check`]: rule files checked as `promtool check rules` does (`lookout check rules`).

pub mod alerting;
pub mod check;
pub mod config;
mod expand;
pub mod group;
pub mod manager;
pub mod notifier;
pub mod recording;
pub mod rule;
pub mod rulefmt;
pub mod template;
pub mod unittest;
pub mod writer;

pub use alerting::{Alert, AlertState, AlertingRule, AlertingRuleSpec};
pub use group::{
    groups_of_file, reload, write_stale_markers, EvalSummary, Group, GroupDefaults, Reloaded,
};
pub use recording::RecordingRule;
pub use rule::{EvalContext, EvalError, Health, Rule, RuleHealth};
pub use rulefmt::{GroupSpec, RuleFile, RuleFileError, RuleFileErrors, RuleKind, RuleSpec};
pub use writer::{Refused, RuleSample, RuleWriter, TsdbWriter};
