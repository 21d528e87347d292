//! Every integration test of this crate, in one binary: one link instead of one per file
//! (each links the whole dependency tree), which keeps a clean build small and fast.

mod admission;
mod batch_processor;
mod clearing_adapter;
mod conformance;
mod every_sample;
mod foreign;
mod initial_lists;
mod manifests;
mod metrics_access;
mod monitoring;
mod operator_core;
mod out_of_cluster;
mod own_certificate;
mod payment_service;
mod plugin;
mod saga_orchestrator;
mod seed_walkthroughs;
mod trading_algorithm;
mod transition_rules;
