//! Prometheus's recording and alerting rules for Lookout: rule files in Prometheus's own
//! format, evaluated with our PromQL engine on each group's interval; recording rules write
//! their series back into the tsdb, alerting rules keep Prometheus's pending → firing →
//! resolved states (with `ALERTS` and `ALERTS_FOR_STATE`), expand their label and annotation
//! templates, and hand what must be sent to the [`notifier`], which speaks Alertmanager's
//! API v2.
//!
//! The parts, one module each:
//! - [`notifier`]: the alert as Alertmanager receives it, and the queue that delivers it.
//! - [`template`]: Go's `text/template` with Prometheus's functions, expanding alert labels
//!   and annotations as Prometheus does.

pub mod notifier;
pub mod template;
