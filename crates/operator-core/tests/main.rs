//! Every integration test of this crate, in one binary: one link instead of one per file
//! (each links the whole dependency tree), which keeps a clean build small and fast.

mod admission;
mod against_testkit;
mod common;
mod events;
mod leadership;
mod macros;
mod memory;
mod operator_errors;
mod ownership;
mod runtime;
mod webhook_certificates;
mod workqueue;
