//! Native replication engines against real private servers started by `.ci/run`
//! (`tests/support/private_mariadb.sh`): the binary's `check` on a binlog replica.

#[path = "native/common.rs"]
mod common;
#[path = "native/drive.rs"]
mod drive;
#[path = "native/mysql.rs"]
mod mysql;
#[path = "support/pty.rs"]
mod pty;
