//! The live session of cutover: the [`source::Source`] trait and pollers, the
//! [`action::Actuator`] trait and runner, the [`session::Session`] that records, folds and
//! runs effects, and the headless [`autopilot`].

pub mod action;
pub mod autopilot;
pub mod clock;
pub mod net;
pub mod notify;
pub mod secrets;
pub mod session;
pub mod source;
pub mod task;
