//! Background tasks that cannot take the cockpit down. A panic in a poller, an action or a
//! world task is caught where the task runs, turned into the failure event of what it was
//! doing (a source failure, a failed action) and so shown and recorded like any other
//! failure. Only the thread that owns the terminal restores it (see the TUI's panic hook).

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::FutureExt;

/// The text of a panic payload (`panic!("...")` carries a `&str` or a `String`).
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

/// Runs `fut`; a panic inside it comes back as `Err` with the panic's message instead of
/// unwinding into the caller.
pub async fn catch<F: Future>(fut: F) -> Result<F::Output, String> {
    AssertUnwindSafe(fut)
        .catch_unwind()
        .await
        .map_err(|p| panic_message(p.as_ref()))
}

/// The text recorded when the task named `what` panicked.
pub fn panicked(what: &str, message: &str) -> String {
    format!(
        "internal error: {what} panicked ({message}); it was stopped and the cockpit carries on — see the log file, and please report it"
    )
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn a_panic_becomes_an_error_with_its_message() {
        let r = super::catch(async { panic!("boom {}", 7) }).await;
        assert_eq!(r, Err::<(), _>("boom 7".to_string()));
        let r = super::catch(async { 5 }).await;
        assert_eq!(r, Ok(5));
    }
}
