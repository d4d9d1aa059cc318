//! Native replication engines against real private servers (started by `.ci/run`).

#[path = "native/postgres.rs"]
mod postgres;
