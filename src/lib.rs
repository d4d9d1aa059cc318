//! cutover: a terminal cockpit for the maintenance window of a live database migration.
//!
//! See ARCHITECTURE.md for the codemap. The core is event-sourced: sources produce
//! [`event::Event`]s, [`state::State::apply`] folds them, `ui` draws the state.

pub mod action;
pub mod app;
pub mod autopilot;
pub mod aws;
pub mod backend;
pub mod check;
pub mod db;
pub mod event;
pub mod plan;
pub mod redact;
pub mod rehearse;
pub mod replay;
pub mod report;
pub mod resume;
pub mod session;
pub mod share;
pub mod sim;
pub mod source;
pub mod state;
pub mod transcript;
pub mod ui;
