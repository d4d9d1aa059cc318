//! Native replication engines against real private servers started by `.ci/run`
//! (`tests/support/private_mariadb.sh`, `tests/support/private_postgres.sh`): the binary's
//! `check` on a binlog replica and on a logical subscription, and whole drives.

#[path = "native/common.rs"]
mod common;
#[path = "native/drive.rs"]
mod drive;
#[path = "native/moto.rs"]
mod moto;
#[path = "native/mysql.rs"]
mod mysql;
#[path = "native/postgres.rs"]
mod postgres;
#[path = "support/pty.rs"]
mod pty;
