//! The pure core of cutover: the closed set of [`event::Event`]s, the [`plan::Plan`], the
//! gates and the fold [`state::State::apply`], and secret redaction.
//!
//! Architecture invariant, kept by Cargo: this crate depends on no async runtime, terminal,
//! database driver, AWS SDK, resolver or argument parser (`.ci/run` checks `cargo tree`).
//! The fold never awaits, never touches the network, the disk or the clock.

pub mod event;
pub mod plan;
pub mod redact;
pub mod state;
