//! Reports panics through the host's log before the instance traps.
//!
//! On wasm a panic aborts the instance; the host only sees a trap. Logging
//! the message (and where it happened) first gives operators the reason. The
//! previous hook still runs afterwards, so the message also reaches stderr.

use std::sync::Once;

use crate::log::{Level, log};

/// Installs the hook once per instance; cheap to call on every export.
pub(crate) fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("(non-string panic payload)");
            let location = info
                .location()
                .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
                .unwrap_or_default();
            log(
                Level::Error,
                &format!("connector panicked: {message}"),
                &[("location", &location as &dyn core::fmt::Display)],
            );
            previous(info);
        }));
    });
}
