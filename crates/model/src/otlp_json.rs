//! OTLP/JSON: the OTLP/HTTP JSON encoding, decoded into and encoded from the protobuf
//! messages in [`crate::otlp::proto`].
//!
//! (Being written: see the JSON codec work item.)
