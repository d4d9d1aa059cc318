//! cutover's backends: the real AWS services ([`aws`]), real databases ([`db`]), the rehearsal
//! world on SQLite ([`sim`]), and [`backend::Backends`], which builds what a real plan needs.

pub mod aws;
pub mod backend;
pub mod db;
pub mod dry_run;
pub mod sim;
