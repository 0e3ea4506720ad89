//! End-to-end tests of the `lookout` binary, one module per area. `harness` holds what they
//! share: starting and stopping the server, HTTP requests, and running the Python scripts in
//! `tests/python/`.

mod harness;

mod bad_input;
mod bridge;
mod durability;
mod lifecycle;
mod ops;
mod prometheus;
mod query_cli;
mod rule_tests;
mod rules;
mod sandbox;
mod seeds;
