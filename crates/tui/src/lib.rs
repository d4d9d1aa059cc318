//! cutover's terminal: the pure view ([`ui`]), the cockpit loop ([`app`]) and pairing
//! ([`share`]: the sharing server and the attach cockpit).

pub mod app;
pub mod share;
pub mod ui;
