//! cutover: a terminal cockpit for the maintenance window of a live database migration.
//!
//! See ARCHITECTURE.md for the codemap. The core is event-sourced: sources produce
//! [`event::Event`]s, [`state::State::apply`] folds them, `ui` draws the state.
//!
//! This package is the binary: it owns the command line ([`cli`]) and the modes that print
//! (check, drift, replay, report, resume, rehearse). The library crates under `crates/` are
//! re-exported here under their old module names so the integration tests and benches read
//! `cutover::event`, `cutover::sim`, ... whatever crate holds them.

pub use cutover_backends::{aws, backend, db, sim};
pub use cutover_core::{event, plan, redact, state};
pub use cutover_runtime::{action, autopilot, clock, net, session, source, task};
pub use cutover_transcript as transcript;
pub use cutover_tui::{app, share, ui};

pub mod check;
pub mod cli;
pub mod drift;
pub mod outside;
pub mod plan_show;
pub mod rehearse;
pub mod replay;
pub mod report;
pub mod resume;
pub mod status;
pub mod sweep;
